package transport

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rumorhq/rumor/broker"
)

// peerLog is a hub that records PeerUp and PeerDown for one origin. Its
// PeerDown waits (a bounded while) for a PeerUp to come in first: the
// widest window a redial race can have.
type peerLog struct {
	*broker.Hub
	origin uint64
	upped  chan struct{}

	mu  sync.Mutex
	ops []string
}

func (h *peerLog) PeerUp(origin, w uint64) {
	h.Hub.PeerUp(origin, w)
	if origin != h.origin {
		return
	}
	h.mu.Lock()
	h.ops = append(h.ops, "up")
	h.mu.Unlock()
	select {
	case h.upped <- struct{}{}:
	default:
	}
}

func (h *peerLog) PeerDown(origin uint64) {
	if origin == h.origin {
		select {
		case <-h.upped: // an old signal
		default:
		}
		select {
		case <-h.upped:
		case <-time.After(300 * time.Millisecond):
		}
		h.mu.Lock()
		h.ops = append(h.ops, "down")
		h.mu.Unlock()
	}
	h.Hub.PeerDown(origin)
}

func (h *peerLog) log() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.ops...)
}

// When a peer redials, the old connection's PeerDown must not take the
// peer out of the order the new connection has put it back in: the new
// reader starts only after the old one finished.
func TestRedialKeepsPeerInOrder(t *testing.T) {
	inMemory(t, testRedialKeepsPeerInOrder)
}

func testRedialKeepsPeerInOrder(t *testing.T) {
	ghost := broker.NewOrigin()
	pl := &peerLog{origin: ghost, upped: make(chan struct{}, 1)}
	a := startNodeWith(t, "a", nodeOpts{
		timing: fastTiming,
		wrap:   func(h *broker.Hub) Hub { pl.Hub = h; return pl },
	})

	first, err := dialRaw(t, a.c.GossipAddr(), testKey, testLabel, ghost)
	if err != nil {
		t.Fatal(err)
	}
	first.write(t, watermarkFrame(hlcNow()))
	waitFor(t, "the first connection's PeerUp", 2*time.Second, func() bool { return a.hub.Stats().Peers == 1 })

	second, err := dialRaw(t, a.c.GossipAddr(), testKey, testLabel, ghost)
	if err != nil {
		t.Fatal(err)
	}
	second.write(t, watermarkFrame(hlcNow()))
	first.waitClosed(t, 2*time.Second)
	waitFor(t, "both connections' PeerUp and the first's PeerDown", 3*time.Second, func() bool { return len(pl.log()) == 3 })
	if got := fmt.Sprint(pl.log()); got != "[up down up]" {
		t.Errorf("PeerUp/PeerDown calls = %s, want [up down up]", got)
	}
	if st := a.hub.Stats(); st.Peers != 1 {
		t.Fatalf("after a redial the order waits for %d peers, want 1 (the peer is still connected)", st.Peers)
	}
}

// Shutdown returns even when connections keep arriving on the gossip port
// while it waits for a link: memberlist's listener must always find a
// taker for what it accepted, or its Shutdown blocks forever.
func TestShutdownWithIncomingConnections(t *testing.T) {
	t.Parallel()
	a := startNodeWith(t, "a", nodeOpts{timing: fastTiming})

	// A member whose relay accepts connections and never answers the
	// handshake: Shutdown waits up to dialTimeout for that link.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			// Signal once the link is in its handshake: the hello came.
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, _ = conn.Read(make([]byte, 1))
			accepted <- conn
		}
	}()
	defer func() {
		ln.Close()
		for conn := range accepted {
			conn.Close()
		}
	}()
	addr := ln.Addr().(*net.TCPAddr)
	md, _ := json.Marshal(meta{HTTP: "127.0.0.1:1", Origin: strconv.FormatUint(broker.NewOrigin(), 16), Version: relayVersion})
	a.c.memberUp(&memberlist.Node{Name: "mute", Addr: addr.IP, Port: uint16(addr.Port), Meta: md})
	select {
	case conn := <-accepted:
		defer conn.Close()
	case <-time.After(3 * time.Second):
		t.Fatal("the link to the mute member never dialled")
	}

	done := make(chan error, 1)
	go func() { done <- a.c.Shutdown() }()
	var conns []net.Conn
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			return
		case <-deadline:
			t.Fatalf("Shutdown did not return with %d connections arriving during it", len(conns))
		case <-tick.C:
			if len(conns) < 100 {
				if conn, err := net.DialTimeout("tcp", a.c.GossipAddr(), time.Second); err == nil {
					conns = append(conns, conn)
				}
			}
		}
	}
}

// When memberlist declares a member dead, its relay into us is closed at
// once, so the order stops waiting for it without waiting for the stall
// timeout (a partition can leave the connection open).
func TestMemberDownDropsInbound(t *testing.T) {
	inMemory(t, testMemberDownDropsInbound)
}

func testMemberDownDropsInbound(t *testing.T) {
	a := startNodeWith(t, "a", nodeOpts{timing: func(t *timing) { fastTiming(t); t.stallTimeout = time.Minute }})
	origin := broker.NewOrigin()
	m := addFakeMemberWith(t, a.c, "partitioned", origin)
	in, err := dialRaw(t, a.c.GossipAddr(), testKey, testLabel, origin)
	if err != nil {
		t.Fatal(err)
	}
	in.write(t, watermarkFrame(hlcNow()))
	waitFor(t, "the member in the order", 2*time.Second, func() bool { return a.hub.Stats().Peers == 1 })

	a.c.memberDown(m.node)
	in.waitClosed(t, 5*time.Second)
	waitFor(t, "the member out of the order", 2*time.Second, func() bool { return a.hub.Stats().Peers == 0 })
	if got := memberState(a.c, "partitioned"); got != "dead" {
		t.Errorf("member state = %q, want dead", got)
	}
	if linkTo(a.c, "partitioned") != nil {
		t.Error("the link to the dead member is still there")
	}
}
