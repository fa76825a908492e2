package transport

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// heldHub is a hub whose Deliver waits while its gate is closed: the peer
// receives our events but cannot store, and so cannot acknowledge, them.
type heldHub struct {
	*broker.Hub
	gate atomic.Pointer[chan struct{}]
}

func (h *heldHub) hold() {
	ch := make(chan struct{})
	h.gate.Store(&ch)
}

func (h *heldHub) release() {
	if ch := h.gate.Swap(nil); ch != nil {
		close(*ch)
	}
}

func (h *heldHub) Deliver(e *broker.Event) bool {
	if ch := h.gate.Load(); ch != nil {
		<-*ch
	}
	return h.Hub.Deliver(e)
}

// startHeldCluster starts three nodes; the third one's deliveries can be
// held. The gate is released at cleanup, before the nodes stop.
func startHeldCluster(t *testing.T, tune func(*timing)) (a, b, c *node, held *heldHub) {
	t.Helper()
	held = &heldHub{}
	nodes := startClusterWith(t, 3, func(i int) nodeOpts {
		o := nodeOpts{timing: func(t *timing) {
			fastTiming(t)
			if tune != nil {
				tune(t)
			}
		}}
		if i == 2 {
			o.wrap = func(h *broker.Hub) Hub {
				held.Hub = h
				return held
			}
		}
		return o
	})
	t.Cleanup(held.release) // runs before the nodes' crash: cleanups are LIFO
	return nodes[0], nodes[1], nodes[2], held
}

// publishAsync publishes one event on h with ack and sends Publish's
// result on the returned channel.
func publishAsync(ctx context.Context, h *broker.Hub, ack broker.Ack, channel, data string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, _, err := h.Publish(ctx, []broker.Message{{Channel: channel, Data: []byte(data)}}, ack)
		done <- err
	}()
	return done
}

// AckAll answers only once every live member holds the event: one peer's
// ack, enough for AckPeer, is not enough.
func TestAckAllWaitsForEveryMember(t *testing.T) {
	inMemory(t, testAckAllWaitsForEveryMember)
}

func testAckAllWaitsForEveryMember(t *testing.T) {
	a, b, c, held := startHeldCluster(t, nil)
	held.hold()
	done := publishAsync(t.Context(), a.hub, broker.AckAll, "orders", "created")
	waitFor(t, "the publish", 5*time.Second, func() bool { return a.hub.Stats().Published == 1 })
	const seq = 1 // a's first event
	waitFor(t, b.name+"'s ack", 5*time.Second, func() bool {
		return linkTo(a.c, b.c.Self()).acked.Load() >= seq
	})
	// AckPeer returns here; AckAll must not, while c cannot store it.
	if err := <-publishAsync(t.Context(), a.hub, broker.AckPeer, "orders", "peer"); err != nil {
		t.Fatalf("Publish with AckPeer: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Publish with AckAll returned (%v) while %s did not hold the event", err, c.name)
	case <-time.After(100 * time.Millisecond):
	}
	held.release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Publish with AckAll: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Publish with AckAll did not return once every member held the event")
	}
	if !holds(c.hub, a.hub.Origin(), seq) {
		t.Errorf("Publish with AckAll returned before %s held the event", c.name)
	}
}

// A member that cannot acknowledge makes AckAll fail when ctx ends, with
// the member named; the event stays published and still spreads.
func TestAckAllTimeoutNamesMissingMember(t *testing.T) {
	inMemory(t, testAckAllTimeoutNamesMissingMember)
}

func testAckAllTimeoutNamesMissingMember(t *testing.T) {
	a, b, c, held := startHeldCluster(t, nil)
	held.hold()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	ids, _, err := a.hub.Publish(ctx, []broker.Message{{Channel: "orders", Data: []byte("x")}}, broker.AckAll)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), c.c.Self()) || strings.Contains(err.Error(), b.c.Self()) {
		t.Fatalf("Publish with AckAll while %s holds back = %v, want a deadline error naming it alone", c.name, err)
	}
	if len(ids) != 1 {
		t.Fatalf("Publish returned ids %v with its error, want the stored event's", ids)
	}
	held.release()
	waitFor(t, c.name+" to hold the event", 5*time.Second, func() bool {
		return holds(c.hub, ids[0].Origin, ids[0].Seq)
	})
}

// A retry of an AckAll publish with the same idempotency key, after the
// first attempt timed out, is answered by the first publish's id: it must
// wait for every member too, or a backend that retries would take the
// answer for "every member holds it" while one does not.
func TestAckAllRetryWaits(t *testing.T) {
	inMemory(t, testAckAllRetryWaits)
}

func testAckAllRetryWaits(t *testing.T) {
	a, _, c, held := startHeldCluster(t, nil)
	held.hold()
	msg := []broker.Message{{Channel: "orders", Data: []byte("created"), Key: "order-1"}}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	first, _, err := a.hub.Publish(ctx, msg, broker.AckAll)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first Publish with AckAll while %s holds back = %v, want a deadline error", c.name, err)
	}
	done := make(chan error, 1)
	go func() {
		ids, replayed, err := a.hub.Publish(t.Context(), msg, broker.AckAll)
		if err == nil && (!replayed || len(ids) != 1 || ids[0] != first[0]) {
			err = fmt.Errorf("retry answered %v (replayed %v), want the first id %v", ids, replayed, first)
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the retry with AckAll returned (%v) while %s did not hold the event", err, c.name)
	case <-time.After(100 * time.Millisecond):
	}
	held.release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the retry with AckAll: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the retry with AckAll did not return once every member held the event")
	}
}

// A member that leaves while AckAll waits for it stops being waited for.
func TestAckAllStopsWaitingForLeftMember(t *testing.T) {
	inMemory(t, testAckAllStopsWaitingForLeftMember)
}

func testAckAllStopsWaitingForLeftMember(t *testing.T) {
	a, _, c, held := startHeldCluster(t, nil)
	held.hold()
	done := publishAsync(t.Context(), a.hub, broker.AckAll, "orders", "x")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := c.c.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Publish with AckAll after %s left: %v", c.name, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Publish with AckAll still waits for %s, which left", c.name)
	}
	if got := memberState(a.c, c.c.Self()); got != "left" {
		t.Errorf("%s shows %s as %q when AckAll stopped waiting for it, want left", a.name, c.name, got)
	}
}

// A member that died is waited for until memberlist declares it dead, not
// merely until its relay link drops: it may still hold subscribers.
func TestAckAllWaitsUntilMemberDeclaredDead(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for failure detection")
	}
	t.Parallel()
	nodes := startClusterWith(t, 3, func(int) nodeOpts {
		return nodeOpts{timing: func(t *timing) {
			fastTiming(t)
			t.ackTimeout = 30 * time.Second // longer than failure detection
		}}
	})
	a, c := nodes[0], nodes[2]
	c.crash()
	waitFor(t, "the link to "+c.name+" to drop", 5*time.Second, func() bool {
		return !linkTo(a.c, c.c.Self()).up.Load()
	})
	if err := <-publishAsync(t.Context(), a.hub, broker.AckAll, "orders", "x"); err != nil {
		t.Fatalf("Publish with AckAll after %s crashed: %v", c.name, err)
	}
	if got := memberState(a.c, c.c.Self()); got != "dead" {
		t.Errorf("AckAll returned while %s shows %s as %q, want dead", a.name, c.name, got)
	}
}

// Alone, AckAll is AckLocal.
func TestAckAllAlone(t *testing.T) {
	inMemory(t, testAckAllAlone)
}

func testAckAllAlone(t *testing.T) {
	a := startNode(t, "alone")
	waitFor(t, "ready", 5*time.Second, func() bool { return a.c.Ready() == nil })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, _, err := a.hub.Publish(ctx, []broker.Message{{Channel: "x", Data: []byte("x")}}, broker.AckAll); err != nil {
		t.Fatalf("Publish with AckAll alone: %v", err)
	}
}
