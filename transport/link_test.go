package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rumorhq/rumor/broker"
)

// fakeMember is a hand-made peer that a node's link dials: the test
// plays the listener's side of the relay.
type fakeMember struct {
	node     *memberlist.Node
	origin   uint64
	ln       net.Listener
	accepted chan net.Conn
}

// addFakeMember makes c believe a member listens on a loopback port the
// test owns, so c's link to it dials the test.
func addFakeMember(tb testing.TB, c *Cluster, name string) *fakeMember {
	tb.Helper()
	return addFakeMemberWith(tb, c, name, broker.NewOrigin())
}

func addFakeMemberWith(tb testing.TB, c *Cluster, name string, origin uint64) *fakeMember {
	tb.Helper()
	if n, ok := bubbleNets.Load(tb); ok {
		return addFakeMemberOn(tb, n.(*memNet), c, name, origin)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	m := &fakeMember{origin: origin, ln: ln, accepted: make(chan net.Conn, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			m.accepted <- conn
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		<-done
		for {
			select {
			case conn := <-m.accepted:
				conn.Close()
			default:
				return
			}
		}
	})
	addr := ln.Addr().(*net.TCPAddr)
	md, _ := json.Marshal(meta{HTTP: "127.0.0.1:1", Origin: strconv.FormatUint(m.origin, 16), Version: relayVersion})
	m.node = &memberlist.Node{Name: name, Addr: addr.IP, Port: uint16(addr.Port), Meta: md}
	c.memberUp(m.node)
	return m
}

// addFakeMemberOn is addFakeMemberWith on inMemory's network.
func addFakeMemberOn(tb testing.TB, n *memNet, c *Cluster, name string, origin uint64) *fakeMember {
	tb.Helper()
	tr, err := n.listen("127.0.0.1", 0)
	if err != nil {
		tb.Fatal(err)
	}
	mt := tr.(*memTransport)
	m := &fakeMember{origin: origin, accepted: make(chan net.Conn, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case conn := <-mt.streams:
				m.accepted <- conn
			case <-mt.done:
				return
			}
		}
	}()
	tb.Cleanup(func() {
		mt.Shutdown()
		<-done
		for {
			select {
			case conn := <-m.accepted:
				conn.Close()
			default:
				return
			}
		}
	})
	md, _ := json.Marshal(meta{HTTP: "127.0.0.1:1", Origin: strconv.FormatUint(m.origin, 16), Version: relayVersion})
	m.node = &memberlist.Node{Name: name, Addr: mt.ip, Port: uint16(mt.port), Meta: md}
	c.memberUp(m.node)
	return m
}

// dialed returns the link's next connection to m, raw; it is closed at
// cleanup.
func (m *fakeMember) dialed(tb testing.TB) net.Conn {
	tb.Helper()
	select {
	case conn := <-m.accepted:
		tb.Cleanup(func() { conn.Close() })
		return conn
	case <-time.After(5 * time.Second):
		tb.Fatal("the link did not dial")
		return nil
	}
}

// accept takes the link's next connection and answers its handshake,
// claiming to hold the node's events up to contig.
func (m *fakeMember) accept(tb testing.TB, contig uint64) *fakeConn {
	tb.Helper()
	conn := m.dialed(tb)
	br := bufio.NewReader(conn)
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if b, err := br.ReadByte(); err != nil || b != relayMagic[0] {
		tb.Fatalf("first byte %q, %v; want %q", b, err, relayMagic[0])
	}
	sealed, _, err := acceptHandshake(&peeked{Conn: conn, r: br}, relayKey(testKey, testLabel), m.origin, 5*time.Second, func(uint64) uint64 { return contig })
	if err != nil {
		tb.Fatalf("handshake: %v", err)
	}
	return &fakeConn{conn: sealed, br: bufio.NewReader(sealed)}
}

// fakeConn is the listener's end of one relay connection. It checks the
// watermark promise on everything it reads.
type fakeConn struct {
	conn      net.Conn
	br        *bufio.Reader
	watermark uint64 // the highest watermark received
	lastSeq   uint64
}

// next reads frames, checking the watermark promise, until an event or
// (with watermarks) a watermark arrives.
func (f *fakeConn) next(tb testing.TB, watermarks bool) (e *broker.Event, w uint64) {
	tb.Helper()
	var buf []byte
	_ = f.conn.SetReadDeadline(time.Now().Add(5 * time.Second)) // for all the frames: heartbeats never stop
	for {
		kind, p, nb, err := readFrame(f.br, buf)
		buf = nb
		if err != nil {
			tb.Fatalf("reading from the link: %v", err)
		}
		switch kind {
		case frameEvent:
			e, err := decodeEvent(p)
			if err != nil {
				tb.Fatal(err)
			}
			if e.ID.Time <= f.watermark {
				tb.Fatalf("event %v came after watermark %x: the watermark overtook it", e.ID, f.watermark)
			}
			if e.ID.Seq <= f.lastSeq {
				tb.Fatalf("event seq %d after seq %d on one connection", e.ID.Seq, f.lastSeq)
			}
			f.lastSeq = e.ID.Seq
			return e, 0
		case frameWatermark:
			w, err := decodeU64(p)
			if err != nil {
				tb.Fatal(err)
			}
			f.watermark = max(f.watermark, w)
			if watermarks {
				return nil, w
			}
		}
	}
}

func (f *fakeConn) ack(tb testing.TB, seq uint64) {
	tb.Helper()
	if _, err := f.conn.Write(appendFrame(nil, frameAck, binary.AppendUvarint(nil, seq))); err != nil {
		tb.Fatal(err)
	}
}

// A link resends, after a reconnect, what the peer did not acknowledge
// and does not hold, before any watermark and in sequence order: the
// unacked log keeps only the newest maxUnacked, and the origin's retained
// history fills in the rest, so the peer never sees the origin's events out
// of order; and no watermark ever overtakes an event on the wire.
func TestLinkResendsUnackedBeforeWatermark(t *testing.T) {
	inMemory(t, testLinkResendsUnackedBeforeWatermark)
}

func testLinkResendsUnackedBeforeWatermark(t *testing.T) {
	const maxUnacked = 8
	a := startNodeWith(t, "a", nodeOpts{timing: func(t *timing) {
		fastTiming(t)
		t.stallTimeout = 5 * time.Second // the fake peer answers no digest
		t.dialTimeout = 5 * time.Second
		t.maxUnacked = maxUnacked
	}})
	peer := addFakeMember(t, a.c, "fake")
	l := linkTo(a.c, "fake")

	conn1 := peer.accept(t, 0)
	for i := range 5 {
		publish(t, a.hub, broker.AckLocal, "x", fmt.Sprint(i))
	}
	for seq := uint64(1); seq <= 5; seq++ {
		if e, _ := conn1.next(t, false); e.ID.Seq != seq {
			t.Fatalf("event seq %d, want %d", e.ID.Seq, seq)
		}
	}
	// The connection breaks with nothing acknowledged; while the link is
	// down (it stays in its next handshake until the test answers) the
	// node publishes far more than it keeps for resend.
	conn1.conn.Close()
	waitFor(t, "the link to go down", 5*time.Second, func() bool { return !l.up.Load() })
	var last broker.ID
	for i := range 20 {
		last = publish(t, a.hub, broker.AckLocal, "x", fmt.Sprint(5+i))
	}
	if _, unacked := l.pending(); unacked > maxUnacked {
		t.Fatalf("%d events kept for resend, want at most %d", unacked, maxUnacked)
	}

	conn2 := peer.accept(t, 2) // the peer holds 1 and 2 already
	var resent []uint64
	for {
		e, w := conn2.next(t, true)
		if e == nil {
			if w < last.Time {
				t.Fatalf("first watermark %x after the resend is below the last event's time %x", w, last.Time)
			}
			break
		}
		resent = append(resent, e.ID.Seq)
	}
	if want := int(last.Seq) - 2; len(resent) != want {
		t.Fatalf("resent %v, want the %d events above the peer's 2", resent, want)
	}
	for i, seq := range resent {
		if want := uint64(3 + i); seq != want {
			t.Fatalf("resent %v, want 3 to %d in order", resent, last.Seq)
		}
	}

	// Live events follow, never behind a watermark; an ack releases them
	// and the publisher waiting for it.
	var acked atomic.Bool
	done := make(chan error, 1)
	go func() {
		_, _, err := a.hub.Publish(context.Background(), []broker.Message{{Channel: "x", Data: []byte("acked")}}, broker.AckPeer)
		acked.Store(true)
		done <- err
	}()
	e, _ := conn2.next(t, false)
	if acked.Load() {
		t.Fatal("Publish with AckPeer returned before the peer acknowledged")
	}
	conn2.ack(t, e.ID.Seq)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Publish with AckPeer: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Publish with AckPeer did not return after the ack")
	}
	if _, unacked := l.pending(); unacked != 0 {
		t.Errorf("%d events unacknowledged after a cumulative ack", unacked)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.c.Flush(ctx); err != nil {
		t.Errorf("Flush: %v", err)
	}
}

// gatedHub is a hub whose Digest waits while the gate is closed. The
// listener's handshake asks for a digest, so closing the gate keeps a
// redialling peer's link down for as long as the test wants.
type gatedHub struct {
	*broker.Hub
	gate atomic.Pointer[chan struct{}]
	digestLog
}

func (h *gatedHub) close() {
	ch := make(chan struct{})
	h.gate.Store(&ch)
}

func (h *gatedHub) open() {
	if ch := h.gate.Swap(nil); ch != nil {
		close(*ch)
	}
}

func (h *gatedHub) Digest() broker.Digest {
	if ch := h.gate.Load(); ch != nil {
		select {
		case <-*ch:
		case <-time.After(5 * time.Second):
		}
	}
	return h.digestLog.Digest()
}

// End to end: a link that drops the oldest events it keeps for resend
// while its peer is unreachable still brings the peer every event, once
// and in order (from the origin's history on reconnect, or by repair).
func TestResendOverflowIsRepaired(t *testing.T) {
	inMemory(t, testResendOverflowIsRepaired)
}

func testResendOverflowIsRepaired(t *testing.T) {
	const maxUnacked = 4
	var gated gatedHub
	nodes := startClusterWith(t, 3, func(i int) nodeOpts {
		o := nodeOpts{timing: func(t *timing) {
			fastTiming(t)
			t.maxUnacked = maxUnacked
			t.repairMinAge = time.Second // only a gap, not "above max", can bring the events early
			t.dialTimeout = 5 * time.Second
		}}
		if i == 2 {
			o.wrap = func(h *broker.Hub) Hub {
				gated.Hub, gated.digestLog.Hub = h, h
				return &gated
			}
		}
		return o
	})
	a, c := nodes[0], nodes[2]
	subC := subscribe(t, c.hub, "x", broker.ID{})
	var ids []broker.ID
	for i := range 3 {
		ids = append(ids, publish(t, a.hub, broker.AckPeer, "x", fmt.Sprint(i)))
	}
	waitFor(t, "c to hold a's first events", 2*time.Second, func() bool { return holds(c.hub, a.hub.Origin(), 3) })

	// Cut a's relay into c and keep a from redialling it.
	l := linkTo(a.c, c.c.Self())
	gated.close()
	c.c.mu.Lock()
	c.c.inbound[a.hub.Origin()].conn.Close()
	c.c.mu.Unlock()
	waitFor(t, "a's link to c to go down", 5*time.Second, func() bool { return !l.up.Load() })
	for i := range 5 * maxUnacked {
		ids = append(ids, publish(t, a.hub, broker.AckPeer, "x", fmt.Sprint(3+i))) // b acknowledges
	}
	gated.open()

	checkExactlyOnce(t, "c", recv(t, subC, len(ids)), ids)
	waitFor(t, "c to hold all of a's events", 5*time.Second, func() bool { return holds(c.hub, a.hub.Origin(), ids[len(ids)-1].Seq) })
	noneQueued(t, subC)
}

// A peer that completes the handshake and then stops reading (a frozen
// process, a black-holed network) cannot hold a link's writer, and so
// Shutdown, for longer than the stall timeout, even in the middle of a
// large resend.
func TestShutdownWithStuckPeer(t *testing.T) {
	t.Parallel()
	a := startNodeWith(t, "a", nodeOpts{timing: func(t *timing) {
		fastTiming(t)
		t.dialTimeout = time.Minute // the handshake waits while the test publishes
	}})
	peer := addFakeMember(t, a.c, "stuck")
	l := linkTo(a.c, "stuck")
	// The first connection stays in its handshake while the node
	// publishes more than the socket buffers hold.
	conn := peer.dialed(t)
	// A small receive buffer (autotuning would grow it to tcp_rmem's
	// maximum) so that the sender's buffer (at most tcp_wmem's, 4 MiB by
	// default) fills with the resend.
	if err := conn.(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	const events = 512
	data := strings.Repeat("x", 32<<10)
	for range events { // 16 MiB
		publish(t, a.hub, broker.AckLocal, "x", data)
	}
	if _, unacked := l.pending(); unacked != events {
		t.Fatalf("%d events kept for resend, want %d", unacked, events)
	}
	peer.accepted <- conn // hand it back to finish the handshake
	peer.accept(t, 0)     // and never read again

	waitFor(t, "the resend to fill the socket buffers", 5*time.Second, func() bool { return l.up.Load() })
	done := make(chan error, 1)
	go func() { done <- a.c.Shutdown() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(3 * a.c.timing.stallTimeout):
		t.Fatalf("Shutdown blocked on a peer that stopped reading for over %v", 3*a.c.timing.stallTimeout)
	}
}
