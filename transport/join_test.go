package transport

import (
	"net"
	"strconv"
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
		timing: fastTiming,
	})
	waitFor(t, "a to fail joining the absent seed", 5*time.Second, func() bool { return rec.count("join failed") >= 1 })
	if err := a.c.Ready(); err == nil {
		t.Fatal("a is ready while its only seed is unreachable and the join timeout has not passed")
	}

	b := startNodeWith(t, "b", nodeOpts{config: func(c *Config) { c.BindAddr = seed }, timing: fastTiming})
	waitConverged(t, a, b)
	id := publish(t, b.hub, broker.AckPeer, "x", "joined")
	waitFor(t, "a to hold b's event", 2*time.Second, func() bool { return holds(a.hub, b.hub.Origin(), id.Seq) })

	// b is replaced by a new process at the same address that knows no
	// seed: only a's rejoin can bring them together.
	b.crash()
	downs := &peerDowns{}
	b2 := startNodeWith(t, "b2", nodeOpts{
		config: func(c *Config) { c.BindAddr = seed },
		timing: fastTiming,
		wrap:   func(h *broker.Hub) Hub { downs.Hub = h; return downs },
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
