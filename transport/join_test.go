package transport

import (
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// freePort returns a loopback port that nothing listens on (TCP or UDP)
// right now.
func freePort(tb testing.TB) int {
	tb.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // the UDP port is taken
		}
		pc.Close()
		return port
	}
	tb.Fatal("no free port")
	return 0
}

// A node whose seed is not up yet keeps trying with backoff and joins once
// it is; and when every peer is replaced by a new process at the seed's
// address, the periodic rejoin finds it again, with no restart.
func TestJoinRetriesAndRejoins(t *testing.T) {
	t.Parallel() // mostly waiting for failure detection
	seed := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	rec := newLogRecorder()
	a := startNodeWith(t, "a", nodeOpts{
		join: []string{seed},
		log:  rec,
		config: func(c *Config) {
			c.RejoinInterval = 200 * time.Millisecond
			c.JoinTimeout = 30 * time.Second
		},
		timing:     fastTiming,
		memberlist: fastDetection,
	})
	waitFor(t, "a to fail joining the absent seed", 5*time.Second, func() bool { return rec.count("join failed") >= 1 })
	if err := a.c.Ready(); err == nil {
		t.Fatal("a is ready while its only seed is unreachable and the join timeout has not passed")
	}

	b := startNodeWith(t, "b", nodeOpts{config: func(c *Config) { c.BindAddr = seed }, timing: fastTiming, memberlist: fastDetection})
	waitConverged(t, a, b)
	id := publish(t, b.hub, broker.AckPeer, "x", "joined")
	waitFor(t, "a to hold b's event", 2*time.Second, func() bool { return holds(a.hub, b.hub.Origin(), id.Seq) })

	// b is replaced by a new process at the same address that knows no
	// seed: only a's rejoin can bring them together.
	b.crash()
	downs := &peerDowns{}
	b2 := startNodeWith(t, "b2", nodeOpts{
		config:     func(c *Config) { c.BindAddr = seed },
		timing:     fastTiming,
		memberlist: fastDetection,
		wrap:       func(h *broker.Hub) Hub { downs.Hub = h; return downs },
	})
	waitFor(t, "a and the new b to find each other", 10*time.Second, func() bool {
		return memberState(a.c, b2.c.Self()) == "alive" && memberState(b2.c, a.c.Self()) == "alive"
	})
	waitFor(t, "a relay link to the new b", 5*time.Second, func() bool { return a.c.connectedPeers() >= 1 && b2.c.connectedPeers() == 1 })
	id = publish(t, b2.hub, broker.AckPeer, "x", "rejoined")
	waitFor(t, "a to hold the new b's event", 2*time.Second, func() bool { return holds(a.hub, b2.hub.Origin(), id.Seq) })

	// Until a declares the old b dead, a's link to it keeps dialling the
	// old address, where the new b answers. That must not cut a's real
	// relay to the new b, which would take a out of its order.
	before := downs.count(a.hub.Origin())
	waitFor(t, "a to declare the old b dead", 20*time.Second, func() bool { return memberState(a.c, b.c.Self()) == "dead" })
	if n := downs.count(a.hub.Origin()) - before; n != 0 {
		t.Errorf("the new b took a out of its order %d times while a's stale link dialled its address", n)
	}
}

// peerDowns is a hub that counts PeerDown per origin.
type peerDowns struct {
	*broker.Hub
	mu sync.Mutex
	n  map[uint64]int
}

func (h *peerDowns) PeerDown(origin uint64) {
	h.mu.Lock()
	if h.n == nil {
		h.n = make(map[uint64]int)
	}
	h.n[origin]++
	h.mu.Unlock()
	h.Hub.PeerDown(origin)
}

func (h *peerDowns) count(origin uint64) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[origin]
}

// A node whose seeds answer but cannot be joined (another key, another
// label, no key) is an island: after the join timeout it logs an error
// with the likely cause, reports rumor_cluster_isolated 1, counts its
// failed joins, and is not ready.
func TestJoinFailureIsLoud(t *testing.T) {
	seed := startNode(t, "seed").c.GossipAddr()
	for name, tc := range map[string]struct {
		cfg   func(*Config)
		cause string
	}{
		"other-key":   {func(c *Config) { c.Key = []byte("fedcba9876543210") }, "--gossip-key"},
		"no-key":      {func(c *Config) { c.Key = nil }, "--gossip-key"},
		"other-label": {func(c *Config) { c.Label = "other" }, "--cluster-label"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rec, reg := newLogRecorder(), newRegistry()
			n := startNodeWith(t, name, nodeOpts{join: []string{seed}, log: rec, reg: reg, config: func(c *Config) {
				tc.cfg(c)
				c.JoinTimeout = 300 * time.Millisecond
			}})
			waitFor(t, name+" to report itself isolated", 10*time.Second, func() bool { return rec.count("isolated") == 1 })
			var r logRecord
			for _, r = range rec.records() {
				if strings.Contains(r.msg, "isolated") {
					break
				}
			}
			if r.level != slog.LevelError || !strings.Contains(strings.Join(r.attrs["likely_cause"], ""), tc.cause) {
				t.Errorf("isolation logged at %v with likely_cause %q, want ERROR naming %s", r.level, r.attrs["likely_cause"], tc.cause)
			}
			if v, _ := gather(t, reg, "rumor_cluster_isolated"); v != 1 {
				t.Errorf("rumor_cluster_isolated = %v, want 1", v)
			}
			if v, _ := gather(t, reg, "rumor_cluster_join_failures_total"); v < 1 {
				t.Errorf("rumor_cluster_join_failures_total = %v, want at least 1", v)
			}
			if err := n.c.Ready(); err == nil || !strings.Contains(err.Error(), "isolated") || !strings.Contains(err.Error(), tc.cause) {
				t.Errorf("Ready() = %v, want not ready, isolated, naming %s", err, tc.cause)
			}
		})
	}
}

// An isolated node whose seed comes up joins it, stops being isolated and
// turns ready; a node whose seeds name only itself (a single replica, the
// first pod) is ready alone and never isolated.
func TestIsolatedNodeJoinsWhenSeedAppears(t *testing.T) {
	t.Parallel()
	seed := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	rec, reg := newLogRecorder(), newRegistry()
	a := startNodeWith(t, "a", nodeOpts{join: []string{seed}, log: rec, reg: reg, timing: fastTiming, config: func(c *Config) {
		c.JoinTimeout = 200 * time.Millisecond
	}})
	waitFor(t, "a to report itself isolated", 10*time.Second, func() bool { return rec.count("isolated") == 1 })
	if err := a.c.Ready(); err == nil || !strings.Contains(err.Error(), "nothing answers") {
		t.Errorf("Ready() with the seed down = %v, want isolated: nothing answers", err)
	}

	// The seed names itself only: alone, ready, not isolated.
	breg := newRegistry()
	b := startNodeWith(t, "b", nodeOpts{join: []string{seed}, reg: breg, timing: fastTiming, config: func(c *Config) {
		c.BindAddr = seed
		c.JoinTimeout = 200 * time.Millisecond
	}})
	waitConverged(t, a, b)
	if v, _ := gather(t, reg, "rumor_cluster_isolated"); v != 0 {
		t.Errorf("rumor_cluster_isolated = %v after joining, want 0", v)
	}
	if rec.count("no longer isolated") != 1 {
		t.Error(`no "no longer isolated" log line after joining`)
	}
	if v, _ := gather(t, breg, "rumor_cluster_isolated"); v != 0 {
		t.Errorf("the seed's rumor_cluster_isolated = %v, want 0", v)
	}
	if v, _ := gather(t, breg, "rumor_cluster_join_failures_total"); v != 0 {
		t.Errorf("the seed's rumor_cluster_join_failures_total = %v, want 0: it joined only itself", v)
	}
}
