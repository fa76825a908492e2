package transport

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// strangerHeader is how a stream that memberlist reads in full before it
// can authenticate it starts: the label (not secret), the encrypted-message
// type and a 20 MiB length.
func strangerHeader(label string) []byte {
	b := []byte{244, byte(len(label))} // memberlist's hasLabelMsg
	b = append(b, label...)
	b = append(b, 10) // memberlist's encryptMsg
	return binary.BigEndian.AppendUint32(b, 20<<20)
}

// dialStranger connects to addr from local (nil: any) and sends the
// stranger's header.
func dialStranger(tb testing.TB, addr string, local net.Addr) net.Conn {
	tb.Helper()
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: local}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	tb.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(strangerHeader(testLabel)); err != nil {
		tb.Fatalf("write: %v", err)
	}
	return conn
}

// waitClosedByNode waits until the node closes conn.
func waitClosedByNode(tb testing.TB, conn net.Conn, what string) {
	tb.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			tb.Fatalf("%s: the node did not close the connection", what)
		}
	}
}

// Strangers on the gossip port hold at most MaxStrangers connections, at
// most guardPerAddr from one address, each reading at most
// StrangerBytes before it proves to be a peer; the cluster keeps
// working meanwhile and afterwards.
func TestGossipStrangersBounded(t *testing.T) {
	const streams, budget = 10, 64 << 10
	reg := newRegistry()
	guarded := func(c *Config) { c.MaxStrangers, c.StrangerBytes = streams, budget }
	a := startNodeWith(t, "a", nodeOpts{reg: reg, timing: fastTiming, config: guarded})
	addr := a.c.GossipAddr()
	metric := func(name string, labels ...string) float64 {
		v, _ := gather(t, reg, name, labels...)
		return v
	}

	// One address takes guardPerAddr slots, and no more.
	var held []net.Conn
	for range guardPerAddr {
		held = append(held, dialStranger(t, addr, nil))
	}
	waitFor(t, "the strangers to hold their slots", 2*time.Second, func() bool { return metric("rumor_gossip_streams_unproven") == guardPerAddr })
	waitClosedByNode(t, dialStranger(t, addr, nil), "a stranger over the per-address limit")
	if got := metric("rumor_gossip_streams_refused_total", "reason", guardAddrLimit); got != 1 {
		t.Errorf("refused{reason=addr_limit} = %v, want 1", got)
	}
	// Other addresses fill the rest, and no more.
	for i := range streams - guardPerAddr {
		held = append(held, dialStranger(t, addr, &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}))
	}
	waitFor(t, "every slot taken", 2*time.Second, func() bool { return metric("rumor_gossip_streams_unproven") == streams })
	waitClosedByNode(t, dialStranger(t, addr, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 99)}), "a stranger over the limit")
	if got := metric("rumor_gossip_streams_refused_total", "reason", guardLimit); got != 1 {
		t.Errorf("refused{reason=limit} = %v, want 1", got)
	}
	for _, c := range held {
		c.Close()
	}
	waitFor(t, "the slots to be given back", 5*time.Second, func() bool { return metric("rumor_gossip_streams_unproven") == 0 })

	// A stranger that sends its 20 MiB is cut after the budget.
	big := dialStranger(t, addr, nil)
	go func() {
		chunk := make([]byte, 32<<10)
		for range 20 << 20 / len(chunk) {
			if _, err := big.Write(chunk); err != nil {
				return
			}
		}
	}()
	waitFor(t, "the stranger over its byte budget to be cut", 5*time.Second, func() bool {
		return metric("rumor_gossip_streams_refused_total", "reason", guardTooLarge) == 1
	})

	// Peers are not strangers: a node joins and relays as ever, and its
	// relay connection holds no slot.
	b := startNodeWith(t, "b", nodeOpts{timing: fastTiming, join: []string{addr}, config: guarded})
	waitConverged(t, a, b)
	sub := subscribe(t, a.hub, ">", broker.ID{})
	id := publish(t, b.hub, broker.AckPeer, "chat", "after the strangers")
	if got := recvUntil(t, sub, id, 5*time.Second); len(got) != 1 {
		t.Errorf("a got %d events from b, want 1", len(got))
	}
	waitFor(t, "no slot held by the peer's relay", 5*time.Second, func() bool { return metric("rumor_gossip_streams_unproven") == 0 })
}

// A connection from a member's address, or from one that passed the relay
// handshake before, may read up to memberlist's own push/pull limit
// unproven (a push/pull carries the revocations, which can be MiBs); one
// from anywhere else is cut at the stranger's budget.
func TestGuardMemberAddressBudget(t *testing.T) {
	const budget = 64 << 10
	member := netip.MustParseAddr("127.0.0.1")
	g := newGuard(4, budget, func(a netip.Addr) bool { return a == member }, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := func(from string) (client, conn net.Conn) {
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		client, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		raw, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if conn = g.admit(raw); conn == nil {
			t.Fatalf("from %s: refused a slot", from)
		}
		return client, conn
	}
	// 127.0.0.3 passes the relay handshake once: it is a peer's address.
	_, peer := dial("127.0.0.3")
	prove(peer)
	peer.Close()
	for _, tt := range []struct {
		from string
		ok   bool
	}{{"127.0.0.1", true}, {"127.0.0.3", true}, {"127.0.0.2", false}} {
		client, conn := dial(tt.from)
		go func() { _, _ = client.Write(make([]byte, 4*budget)) }()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.ReadFull(conn, make([]byte, 4*budget))
		if tt.ok && err != nil || !tt.ok && !errors.Is(err, errGuardTooLarge) {
			t.Errorf("from %s: reading 4 × the budget = %v, want ok %v", tt.from, err, tt.ok)
		}
		conn.Close()
	}
}
