package transport

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// Nodes with another gossip key or another label never become members,
// however often they try.
func TestStrangersNeverJoin(t *testing.T) {
	nodes := startCluster(t, 2)
	seed := nodes[0].c.GossipAddr()
	strangers := map[string]func(*Config){
		"other-key":   func(c *Config) { c.Key = []byte("fedcba9876543210") },
		"other-label": func(c *Config) { c.Label = "other" },
		"no-key":      func(c *Config) { c.Key = nil },
	}
	var logs []*logRecorder
	var started []*node
	for name, cfg := range strangers {
		rec := newLogRecorder()
		logs = append(logs, rec)
		started = append(started, startNodeWith(t, name, nodeOpts{join: []string{seed}, config: cfg, log: rec}))
	}
	// Each stranger's join loop retries with backoff (200ms, then 400ms):
	// after two failures it has tried long enough to have got in.
	for i, s := range started {
		waitFor(t, s.name+" to fail joining twice", 5*time.Second, func() bool { return logs[i].count("join failed") >= 2 })
		if ms := s.c.Members(); len(ms) != 1 {
			t.Errorf("%s sees %d members, want only itself", s.name, len(ms))
		}
		if err := s.c.Ready(); err == nil {
			t.Errorf("%s is ready, want it still joining", s.name)
		}
	}
	for _, n := range nodes {
		for _, m := range n.c.Members() {
			for _, s := range started {
				if m.Name == s.c.Self() {
					t.Errorf("%s lists stranger %s as %s", n.name, m.Name, m.State)
				}
			}
		}
		if got := alive(n.c); got != 2 {
			t.Errorf("%s sees %d members alive, want 2", n.name, got)
		}
	}
}

// The relay shares the gossip port: a client without the key is refused
// at the handshake, counted, and cannot inject an event.
func TestRelayRefusesWrongKey(t *testing.T) {
	reg := newRegistry()
	a := startNodeWith(t, "a", nodeOpts{reg: reg, timing: fastTiming})
	sub := subscribe(t, a.hub, ">", broker.ID{})
	failures := func() float64 {
		v, _ := gather(t, reg, "rumor_relay_handshake_failures_total")
		return v
	}

	// Another key, and the right key with another label: the node's
	// answer does not verify, so a well-behaved dialler gives up.
	for _, alt := range []struct{ key, label string }{{"fedcba9876543210", testLabel}, {string(testKey), "other"}} {
		before := failures()
		if _, err := dialRaw(t, a.c.GossipAddr(), []byte(alt.key), alt.label, broker.NewOrigin()); !errors.Is(err, errAuth) {
			t.Fatalf("handshake with key %q label %q = %v, want errAuth", alt.key, alt.label, err)
		}
		waitFor(t, "the refused handshake to be counted", 2*time.Second, func() bool { return failures() > before })
	}

	// A hostile client ignores that and sends a made-up proof followed
	// by an event and a watermark.
	before := failures()
	conn, err := net.DialTimeout("tcp", a.c.GossipAddr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	origin := broker.NewOrigin()
	hello := append([]byte(relayMagic), relayVersion)
	hello = append(hello, make([]byte, 16)...)
	hello = binary.BigEndian.AppendUint64(hello, origin)
	if _, err := conn.Write(hello); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(conn, make([]byte, 16+8+32)); err != nil {
		t.Fatalf("reading the node's hello: %v", err)
	}
	mac := make([]byte, 32)
	_, _ = rand.Read(mac)
	injected := &broker.Event{ID: broker.ID{Time: hlcNow(), Origin: origin, Seq: 1}, Channel: "chat", Data: []byte("injected")}
	_, _ = conn.Write(append(append(mac, eventFrame(injected)...), watermarkFrame(hlcNow())...))
	if n, err := io.ReadFull(conn, make([]byte, 8)); err == nil {
		t.Fatalf("node answered a forged proof with %d bytes of contig", n)
	}
	waitFor(t, "the forged handshake to be counted", 2*time.Second, func() bool { return failures() > before })
	if st := a.hub.Stats(); st.Received != 0 || st.Peers != 0 {
		t.Errorf("after a forged handshake: received %d, peers %d; want 0, 0", st.Received, st.Peers)
	}
	noneQueued(t, sub)
}

// An authenticated peer that breaks the protocol loses its connection and
// nothing else: its frame is not delivered and the cluster keeps relaying.
func TestProtocolViolationsDisconnectOnlyTheOffender(t *testing.T) {
	nodes := startClusterWith(t, 2, func(int) nodeOpts { return nodeOpts{timing: fastTiming} })
	a, b := nodes[0], nodes[1]
	subA := subscribe(t, a.hub, ">", broker.ID{})
	subB := subscribe(t, b.hub, ">", broker.ID{})

	foreign := func(p *rawPeer) []byte {
		// An event claiming to come from node b, on p's link.
		return eventFrame(&broker.Event{ID: broker.ID{Time: hlcNow(), Origin: b.hub.Origin(), Seq: 1 << 40}, Channel: "chat", Data: []byte("forged")})
	}
	for name, bad := range map[string]func(*rawPeer) []byte{
		"foreign origin": foreign,
		"unknown kind":   func(*rawPeer) []byte { return appendFrame(nil, 99, []byte("?")) },
		"listener frame": func(*rawPeer) []byte { return appendFrame(nil, frameAck, []byte{1}) },
		"bad event": func(p *rawPeer) []byte {
			return appendFrame(nil, frameEvent, appendEvent(nil, &broker.Event{ID: broker.ID{Time: 1, Origin: p.origin, Seq: 1}, Channel: "a b", Data: []byte("x")}))
		},
		"truncated event": func(p *rawPeer) []byte {
			e := appendEvent(nil, &broker.Event{ID: broker.ID{Time: hlcNow(), Origin: p.origin, Seq: 1}, Channel: "chat", Data: []byte("x")})
			return appendFrame(nil, frameEvent, e[:len(e)-2])
		},
		"short watermark": func(*rawPeer) []byte { return appendFrame(nil, frameWatermark, []byte{1, 2, 3}) },
		"bad digest":      func(*rawPeer) []byte { return appendFrame(nil, frameDigest, []byte{0xff, 0xff, 0xff}) },
		"oversized frame": func(*rawPeer) []byte { return []byte{frameEvent, 0xff, 0xff, 0xff, 0xff, 0x7f} },
	} {
		p, err := dialRaw(t, a.c.GossipAddr(), testKey, testLabel, broker.NewOrigin())
		if err != nil {
			t.Fatalf("%s: handshake: %v", name, err)
		}
		// It is part of the order first, so cutting it must also take it
		// out of the order.
		p.write(t, watermarkFrame(hlcNow()))
		waitFor(t, name+": the offender in the order", 2*time.Second, func() bool { return a.hub.Stats().Peers == 2 })
		p.write(t, bad(p))
		p.waitClosed(t, 2*time.Second)
		waitFor(t, name+": the offender out of the order", 2*time.Second, func() bool { return a.hub.Stats().Peers == 1 })
	}
	if st := a.hub.Stats(); st.Received != 0 {
		t.Errorf("node a received %d events from offenders, want 0", st.Received)
	}
	// The real peers did not notice.
	if a.c.connectedPeers() != 1 || b.c.connectedPeers() != 1 {
		t.Errorf("relay links up: a %d, b %d; want 1 each", a.c.connectedPeers(), b.c.connectedPeers())
	}
	id := publish(t, b.hub, broker.AckPeer, "chat", "still fine")
	for _, s := range []*broker.Subscription{subA, subB} {
		got := recvUntil(t, s, id, 5*time.Second)
		if len(got) != 1 {
			t.Errorf("subscriber got %d events, want only %v", len(got), id)
		}
	}
}

// A peer that holds the key but sends another node's events on its link is
// a member gone wrong: the link closes, and the forgery is counted and
// logged as a warning, naming both origins.
func TestForgedOriginCounted(t *testing.T) {
	reg, logs := newRegistry(), newLogRecorder()
	nodes := startClusterWith(t, 2, func(i int) nodeOpts {
		if i == 0 {
			return nodeOpts{timing: fastTiming, reg: reg, log: logs}
		}
		return nodeOpts{timing: fastTiming}
	})
	a, b := nodes[0], nodes[1]
	p, err := dialRaw(t, a.c.GossipAddr(), testKey, testLabel, broker.NewOrigin())
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	p.write(t, eventFrame(&broker.Event{ID: broker.ID{Time: hlcNow(), Origin: b.hub.Origin(), Seq: 1 << 40}, Channel: "chat", Data: []byte("forged")}))
	p.waitClosed(t, 2*time.Second)
	waitFor(t, "the forgery to be counted", 2*time.Second, func() bool {
		v, _ := gather(t, reg, "rumor_relay_forged_origins_total")
		return v == 1
	})
	var warned bool
	for _, r := range logs.records() {
		warned = warned || r.level == slog.LevelWarn && strings.Contains(r.msg, "forged origin")
	}
	if !warned {
		t.Errorf("no warning logged for a forged origin")
	}
}
