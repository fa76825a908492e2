package transport

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// A crashed node (no Leave) stops holding up the survivors: its relays are
// dropped, they keep acknowledging each other's events and releasing them
// in order, and they end up showing it dead.
func TestCrashedNodeIsDroppedAndDeclaredDead(t *testing.T) {
	t.Parallel() // mostly waiting for failure detection
	reg := newRegistry()
	nodes := startClusterWith(t, 3, func(i int) nodeOpts {
		o := nodeOpts{timing: fastTiming, memberlist: fastDetection}
		if i == 0 {
			o.reg = reg
		}
		return o
	})
	a, b, c := nodes[0], nodes[1], nodes[2]
	members := func(state string) float64 {
		v, _ := gather(t, reg, "rumor_cluster_members", "state", state)
		return v
	}
	if got, _ := gather(t, reg, "rumor_relay_connected_peers"); got != 2 {
		t.Fatalf("rumor_relay_connected_peers = %v, want 2", got)
	}
	subA := subscribe(t, a.hub, "chat", broker.ID{})
	subB := subscribe(t, b.hub, "chat", broker.ID{})

	c.crash()
	// The survivors stop waiting for c as soon as its relay is gone (here
	// the socket closed; a silent peer is cut after the stall timeout, see
	// TestSilentPeerIsCutAfterStallTimeout).
	for _, n := range []*node{a, b} {
		waitFor(t, n.name+" to stop ordering by the crashed node", 2*a.c.timing.stallTimeout, func() bool {
			return n.hub.Stats().Peers == 1
		})
	}
	// Publishing with AckPeer still succeeds and the survivors deliver to
	// each other in the same order, well before c is declared dead.
	var ids []broker.ID
	for i := range 20 {
		pub := []*node{a, b}[i%2]
		ids = append(ids, publish(t, pub.hub, broker.AckPeer, "chat", fmt.Sprint(i)))
	}
	gotA, gotB := recv(t, subA, len(ids)), recv(t, subB, len(ids))
	for i := range gotA {
		if gotA[i].ID != gotB[i].ID {
			t.Fatalf("event %d: %v on %s, %v on %s: orders differ", i, gotA[i].ID, a.name, gotB[i].ID, b.name)
		}
	}
	checkExactlyOnce(t, a.name, gotA, ids)
	for _, n := range []*node{a, b} {
		if st := n.hub.Stats(); st.Pending != 0 {
			t.Errorf("%s: %d events pending, want 0", n.name, st.Pending)
		}
	}

	// Failure detection (memberlist's, seconds) ends with c dead, not
	// alive and not left.
	for _, n := range []*node{a, b} {
		waitFor(t, n.name+" to see "+c.c.Self()+" dead", 20*time.Second, func() bool {
			return memberState(n.c, c.c.Self()) == "dead"
		})
		if linkTo(n.c, c.c.Self()) != nil {
			t.Errorf("%s still has a relay link to the dead node", n.name)
		}
	}
	if alive, dead, left := members("alive"), members("dead"), members("left"); alive != 2 || dead != 1 || left != 0 {
		t.Errorf("rumor_cluster_members alive/dead/left = %v/%v/%v, want 2/1/0", alive, dead, left)
	}
	if got, _ := gather(t, reg, "rumor_relay_connected_peers"); got != 1 {
		t.Errorf("rumor_relay_connected_peers = %v, want 1", got)
	}
}

// A peer that authenticated, promised a watermark and then went silent
// (a crash without a closed socket, a frozen process, a partition) delays
// nothing: events go out at once. Its relay is cut a stall timeout after it
// last spoke, and positions stop waiting for its watermark.
func TestSilentPeerIsCutAfterStallTimeout(t *testing.T) {
	inMemory(t, testSilentPeerIsCutAfterStallTimeout)
}

func testSilentPeerIsCutAfterStallTimeout(t *testing.T) {
	nodes := startClusterWith(t, 2, func(int) nodeOpts {
		return nodeOpts{timing: func(t *timing) { fastTiming(t); t.stallTimeout = 500 * time.Millisecond }}
	})
	a := nodes[0]
	sub := subscribe(t, a.hub, "chat", broker.ID{})

	ghost, err := dialRaw(t, a.c.GossipAddr(), testKey, testLabel, broker.NewOrigin())
	if err != nil {
		t.Fatalf("relay handshake: %v", err)
	}
	ghost.write(t, watermarkFrame(hlcNow()-1))
	waitFor(t, "the silent peer's PeerUp", 2*time.Second, func() bool { return a.hub.Stats().Peers == 2 })

	id := publish(t, a.hub, broker.AckLocal, "chat", "not held")
	if st := a.hub.Stats(); st.Pending != 0 {
		t.Fatalf("pending = %d right after publishing, want 0: nothing waits for a peer", st.Pending)
	}
	if evs, _ := sub.Drain(nil); len(evs) != 1 || evs[0].ID != id {
		t.Fatalf("queued right after publishing = %d events, want %v: nothing waits for a peer", len(evs), id)
	}
	ghost.waitClosed(t, 2*time.Second)
	if st := a.hub.Stats(); st.Peers != 1 {
		t.Errorf("peers = %d after the silent peer was cut, want 1", st.Peers)
	}
}

// Every event that A's Publish reported acknowledged survives A's crash
// right after, even though C never heard from A: C gets them by digest
// repair from B, each exactly once.
func TestAckedEventsSurviveOriginCrash(t *testing.T) {
	inMemory(t, testAckedEventsSurviveOriginCrash)
}

func testAckedEventsSurviveOriginCrash(t *testing.T) {
	var cName string
	var relayA *skipRelay
	nodes := startClusterWith(t, 3, func(i int) nodeOpts {
		o := nodeOpts{timing: fastTiming}
		if i == 0 {
			// A's relay to C loses every event: C can only learn them
			// from B.
			o.relay = func(c *Cluster) broker.Relay {
				relayA = &skipRelay{Cluster: c, skip: func(to string, _ *broker.Event) bool { return to == cName }}
				return relayA
			}
		}
		return o
	})
	a, b, c := nodes[0], nodes[1], nodes[2]
	cName = c.c.Self()
	relayA.on.Store(true)
	subB := subscribe(t, b.hub, "orders", broker.ID{})
	subC := subscribe(t, c.hub, "orders", broker.ID{})

	const n = 50
	var acked []broker.ID
	for i := range n {
		acked = append(acked, publish(t, a.hub, broker.AckPeer, "orders", fmt.Sprint(i)))
	}
	a.crash()

	// A sentinel from B after A's events: once it arrived on C, every
	// earlier event that is coming has come.
	waitFor(t, "C to repair A's events from B", 10*time.Second, func() bool { return holds(c.hub, a.hub.Origin(), n) })
	sentinel := publish(t, b.hub, broker.AckPeer, "orders", "sentinel")
	want := append(acked, sentinel)
	checkExactlyOnce(t, "B", recvUntil(t, subB, sentinel, 10*time.Second), want)
	checkExactlyOnce(t, "C", recvUntil(t, subC, sentinel, 10*time.Second), want)
	noneQueued(t, subB)
	noneQueued(t, subC)
	if st := c.hub.Stats(); st.Received < n {
		t.Errorf("C received %d events, want at least %d", st.Received, n)
	}
}

// skipRelay is the hub's relay with a hook that drops chosen events on
// chosen links while on, as a lossy link would.
type skipRelay struct {
	*Cluster
	on   atomic.Bool
	skip func(to string, e *broker.Event) bool
}

func (r *skipRelay) Send(e *broker.Event) {
	if !r.on.Load() {
		r.Cluster.Send(e)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.frames.encode(e)
	for name, l := range r.links {
		if !r.skip(name, e) {
			l.send(e, func() encoded { return f })
		}
	}
}

// A graceful Leave shows as "left" on the peers, quickly, not as a death.
func TestLeaveIsSeenAsLeft(t *testing.T) {
	inMemory(t, testLeaveIsSeenAsLeft)
}

func testLeaveIsSeenAsLeft(t *testing.T) {
	reg := newRegistry()
	nodes := startClusterWith(t, 3, func(i int) nodeOpts {
		if i == 0 {
			return nodeOpts{reg: reg}
		}
		return nodeOpts{}
	})
	a, b, c := nodes[0], nodes[1], nodes[2]
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := c.c.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if err := c.c.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, n := range []*node{a, b} {
		waitFor(t, n.name+" to see "+c.c.Self()+" left", 3*time.Second, func() bool {
			return memberState(n.c, c.c.Self()) == "left"
		})
		waitFor(t, n.name+" to stop ordering by the node that left", 3*time.Second, func() bool {
			return n.hub.Stats().Peers == 1
		})
	}
	t.Logf("peers saw the leave after %v", time.Since(start))
	if left, _ := gather(t, reg, "rumor_cluster_members", "state", "left"); left != 1 {
		t.Errorf("rumor_cluster_members{state=\"left\"} = %v, want 1", left)
	}
	if dead, _ := gather(t, reg, "rumor_cluster_members", "state", "dead"); dead != 0 {
		t.Errorf("rumor_cluster_members{state=\"dead\"} = %v, want 0", dead)
	}
	// A second Shutdown, and Leave after Shutdown, are harmless.
	if err := c.c.Shutdown(); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if err := c.c.Leave(ctx); err == nil {
		t.Errorf("Leave after Shutdown = nil, want an error")
	}
	id := publish(t, a.hub, broker.AckPeer, "chat", "still here")
	waitFor(t, "b to hold a's event", 2*time.Second, func() bool { return holds(b.hub, a.hub.Origin(), id.Seq) })
}

// Acked gives up after the ack timeout, or when the context ends, when no
// peer acknowledges.
func TestAckedWithoutLivePeer(t *testing.T) {
	inMemory(t, testAckedWithoutLivePeer)
}

func testAckedWithoutLivePeer(t *testing.T) {
	var aName string
	var relayB *skipRelay
	nodes := startClusterWith(t, 2, func(i int) nodeOpts {
		o := nodeOpts{timing: func(t *timing) { fastTiming(t); t.ackTimeout = 300 * time.Millisecond }}
		if i == 1 {
			o.relay = func(c *Cluster) broker.Relay {
				relayB = &skipRelay{Cluster: c, skip: func(to string, _ *broker.Event) bool { return to == aName }}
				return relayB
			}
		}
		return o
	})
	aName = nodes[0].c.Self()
	b := nodes[1]
	relayB.on.Store(true)
	_, _, err := b.hub.Publish(context.Background(), []broker.Message{{Channel: "x", Data: []byte("lost")}}, broker.AckPeer)
	if !errors.Is(err, ErrNoAck) {
		t.Fatalf("Publish with no acknowledging peer = %v, want ErrNoAck", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err = b.hub.Publish(ctx, []broker.Message{{Channel: "x", Data: []byte("lost")}}, broker.AckPeer)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish with an expiring context = %v, want context.DeadlineExceeded", err)
	}
}
