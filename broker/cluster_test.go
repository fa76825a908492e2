package broker_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// memNet is an in-memory network between hubs: every Send and Watermark is
// queued on a FIFO per link (from, to), and the test decides when each
// message arrives by pumping links. Sends never block, so a hub's lock is
// never held on the network.
type memNet struct {
	hubs  []*broker.Hub
	subs  []*broker.Subscription // one live ">" subscription per hub
	wall  atomic.Int64           // shared wall clock in Unix ms, moved by the test
	mu    sync.Mutex
	links map[[2]int][]netMsg
}

// netMsg is an event (e != nil) or a watermark.
type netMsg struct {
	e *broker.Event
	w uint64
}

type memRelay struct {
	n    *memNet
	from int
}

var _ broker.Relay = (*memRelay)(nil)

func (r *memRelay) Send(e *broker.Event) {
	// A copy, as the wire makes one: the frame is rebuilt on arrival.
	c := &broker.Event{ID: e.ID, Channel: e.Channel, Type: e.Type, Data: e.Data, Key: e.Key, Born: e.Born}
	r.n.queue(r.from, netMsg{e: c})
}

func (r *memRelay) Watermark(w uint64) { r.n.queue(r.from, netMsg{w: w}) }

func (r *memRelay) Acked(ctx context.Context, e *broker.Event) error { return ctx.Err() }

func (r *memRelay) AckedAll(ctx context.Context, e *broker.Event) error { return ctx.Err() }

func (n *memNet) queue(from int, m netMsg) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for to := range n.hubs {
		if to != from {
			n.links[[2]int{from, to}] = append(n.links[[2]int{from, to}], m)
		}
	}
}

func origin(i int) uint64 { return uint64(i+1) << 40 }

// newCluster starts size hubs that know each other as peers, with a
// frozen shared wall clock unless the test moves it (realTime: time.Now).
func newCluster(tb testing.TB, size int, realTime bool, opts broker.Options) *memNet {
	tb.Helper()
	n := &memNet{links: map[[2]int][]netMsg{}}
	n.wall.Store(1_700_000_000_000)
	n.hubs = make([]*broker.Hub, size)
	for i := range size {
		o := opts
		o.Origin = origin(i)
		o.Relay = &memRelay{n: n, from: i}
		o.Now = func() time.Time { return time.UnixMilli(n.wall.Load()) }
		if realTime {
			o.Now = time.Now
		}
		n.hubs[i] = newHub(tb, o)
	}
	for i, h := range n.hubs {
		for j := range n.hubs {
			if i != j {
				h.PeerUp(origin(j), 0)
			}
		}
		n.subs = append(n.subs, subscribe(tb, h, broker.ID{}, ">"))
	}
	return n
}

// step delivers the next message on the link from → to, if any.
func (n *memNet) step(from, to int) bool {
	n.mu.Lock()
	q := n.links[[2]int{from, to}]
	if len(q) == 0 {
		n.mu.Unlock()
		return false
	}
	m := q[0]
	n.links[[2]int{from, to}] = q[1:]
	n.mu.Unlock()
	if m.e != nil {
		n.hubs[to].Deliver(m.e)
	} else {
		n.hubs[to].Advance(origin(from), m.w)
	}
	return true
}

// flush delivers everything queued on the link from → to.
func (n *memNet) flush(from, to int) {
	for range 1 << 20 {
		if !n.step(from, to) {
			return
		}
	}
	panic("link never drained")
}

// drop removes the events queued on from → to for which lose is true.
func (n *memNet) drop(from, to int, lose func(*broker.Event) bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := [2]int{from, to}
	n.links[k] = slices.DeleteFunc(n.links[k], func(m netMsg) bool { return m.e != nil && lose(m.e) })
}

// settle ticks every hub and delivers everything until the network is quiet.
func (n *memNet) settle() {
	for range 4 {
		for _, h := range n.hubs {
			h.Tick()
		}
		for from := range n.hubs {
			for to := range n.hubs {
				if from != to {
					n.flush(from, to)
				}
			}
		}
	}
}

// received drains hub i's ">" subscription.
func (n *memNet) received(tb testing.TB, i int) []broker.ID {
	tb.Helper()
	return idsOf(drain(tb, n.subs[i]))
}

func TestClusterSameOrder(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			size := 2 + int(seed%2)
			n := newCluster(t, size, false, broker.Options{QueueSize: 1 << 16})
			got := make([][]broker.ID, size)
			var published []broker.ID
			for range 400 {
				switch k := r.IntN(10); {
				case k < 3:
					i := r.IntN(size)
					msgs := make([]broker.Message, 1+r.IntN(3))
					for j := range msgs {
						msgs[j] = broker.Message{Channel: []string{"a", "b", "c.d"}[r.IntN(3)], Data: []byte("x")}
					}
					ids, _, err := n.hubs[i].Publish(context.Background(), msgs, broker.AckLocal)
					if err != nil {
						t.Fatal(err)
					}
					published = append(published, ids...)
				case k < 7:
					from, to := r.IntN(size), r.IntN(size)
					if from != to {
						n.step(from, to)
					}
				case k < 9:
					n.hubs[r.IntN(size)].Tick()
				default:
					n.wall.Add(int64(r.IntN(3)))
				}
				for i := range size {
					got[i] = append(got[i], n.received(t, i)...)
				}
			}
			n.settle()
			want := sortedIDs(published)
			for i, h := range n.hubs {
				got[i] = append(got[i], n.received(t, i)...)
				if !slices.Equal(got[i], want) {
					t.Errorf("hub %d released %d events, want %d in ID order; first difference at %d", i, len(got[i]), len(want), firstDiff(got[i], want))
				}
				if st := h.Stats(); st.Late != 0 || st.Duplicates != 0 || st.Pending != 0 {
					t.Errorf("hub %d Stats() = %+v, want no late, duplicate or pending event", i, st)
				}
			}
			// Resume is exact on every hub, from any position.
			for range 5 {
				k := r.IntN(len(want))
				for i, h := range n.hubs {
					s := subscribe(t, h, want[k], ">")
					if !slices.Equal(idsOf(s.Replay), want[k+1:]) || s.Reset {
						t.Errorf("hub %d: resume after event %d replays %d events (Reset %v), want %d", i, k, len(s.Replay), s.Reset, len(want)-k-1)
					}
				}
			}
		})
	}
}

// TestClusterConcurrent publishes on every hub at once while a pump
// goroutine carries messages, for the race detector and the order.
func TestClusterConcurrent(t *testing.T) {
	const size, perHub = 3, 200
	n := newCluster(t, size, true, broker.Options{QueueSize: 1 << 16})
	var published [size][]broker.ID
	var pubs sync.WaitGroup
	for i := range size {
		pubs.Go(func() {
			for j := range perHub {
				ids, _, err := n.hubs[i].Publish(context.Background(), []broker.Message{{Channel: fmt.Sprintf("c%d", j%3), Data: []byte("x")}}, broker.AckPeer)
				if err != nil {
					t.Error(err)
					return
				}
				published[i] = append(published[i], ids...)
			}
		})
	}
	done := make(chan struct{})
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		for {
			select {
			case <-done:
				return
			default:
			}
			n.settle()
		}
	}()
	pubs.Wait()
	close(done)
	<-pumped
	n.settle()
	want := sortedIDs(slices.Concat(published[:]...))
	for i := range n.hubs {
		if got := n.received(t, i); !slices.Equal(got, want) {
			t.Errorf("hub %d released %d events, want %d in ID order; first difference at %d", i, len(got), len(want), firstDiff(got, want))
		}
	}
}

func TestClusterHoldsUntilWatermarks(t *testing.T) {
	n := newCluster(t, 3, false, broker.Options{})
	a, b, c := n.hubs[0], n.hubs[1], n.hubs[2]
	id := publish(t, a, "x", "held")
	check := func(stage string, hub int, want ...broker.ID) {
		t.Helper()
		got := n.received(t, hub)
		if !slices.Equal(got, want) {
			t.Errorf("%s: hub %d released %v, want %v", stage, hub, got, want)
		}
		if pending := n.hubs[hub].Stats().Pending; pending != 1-len(want) {
			t.Errorf("%s: hub %d Stats().Pending = %d, want %d", stage, hub, pending, 1-len(want))
		}
	}
	check("published", 0)
	n.flush(0, 1)
	check("B received it", 1)
	c.Tick() // C has not seen the event: its watermark is below it
	n.flush(2, 1)
	check("C's old watermark", 1)
	n.flush(0, 2)
	c.Tick()
	n.flush(2, 1)
	check("C passed it, A did not speak", 1)
	a.Tick()
	n.flush(0, 1)
	check("A and C passed it", 1, id)
	check("A waits for B and C", 0)
	b.Tick()
	n.flush(1, 0)
	check("B passed it", 0)
	n.flush(2, 0)
	check("B and C passed it", 0, id)
	n.flush(0, 2)
	check("C has A's watermark, not B's", 2)
	n.flush(1, 2)
	check("C", 2, id)
}

func TestClusterPeerDownReleases(t *testing.T) {
	n := newCluster(t, 3, false, broker.Options{})
	a, b := n.hubs[0], n.hubs[1]
	id := publish(t, a, "x", "held")
	a.Tick()
	n.flush(0, 1)
	if got := n.received(t, 1); len(got) != 0 {
		t.Fatalf("B released %v while C is silent", got)
	}
	b.PeerDown(origin(2))
	if got := n.received(t, 1); !slices.Equal(got, []broker.ID{id}) {
		t.Errorf("B released %v after C went down, want %v", got, id)
	}
	if st := b.Stats(); st.Peers != 1 || st.Pending != 0 {
		t.Errorf("B Stats() = %+v, want 1 peer, nothing pending", st)
	}
	// Advance for a peer that is down moves nothing.
	b.Advance(origin(2), 1<<62)
	if st := b.Stats(); st.Peers != 1 {
		t.Errorf("Advance of a down peer: Stats().Peers = %d, want 1", st.Peers)
	}
}

// cutOff publishes early on A, cuts A off from B, publishes later on C and
// has B release it: early, once it reaches B, is late there.
func cutOff(t *testing.T, n *memNet) (early, later broker.ID) {
	t.Helper()
	a, b, c := n.hubs[0], n.hubs[1], n.hubs[2]
	early = publish(t, a, "x", "from A")
	b.PeerDown(origin(0))
	later = publish(t, c, "x", "from C")
	if !early.Less(later) {
		t.Fatalf("setup: %v is not before %v", early, later)
	}
	c.Tick()
	n.flush(2, 1)
	if got := n.received(t, 1); !slices.Equal(got, []broker.ID{later}) {
		t.Fatalf("B released %v, want %v", got, later)
	}
	return early, later
}

func TestClusterLateEvent(t *testing.T) {
	n := newCluster(t, 3, false, broker.Options{})
	b := n.hubs[1]
	early, later := cutOff(t, n)
	n.flush(0, 1) // A's event arrives after a larger id was released
	if got := n.received(t, 1); !slices.Equal(got, []broker.ID{early}) {
		t.Errorf("late event: B delivered %v, want %v at once", got, early)
	}
	if st := b.Stats(); st.Late != 1 || st.Received != 2 || st.Pending != 0 {
		t.Errorf("B Stats() = %+v, want 1 late of 2 received", st)
	}
	// Stored in ID order: a resume from before both replays both in order.
	before := broker.ID{Time: early.Time - 1, Origin: 1, Seq: 1}
	s := subscribe(t, b, before, "x")
	checkIDs(t, "Replay", idsOf(s.Replay), []broker.ID{early, later})
	// Delivered once.
	if b.Deliver(&broker.Event{ID: early, Channel: "x", Data: []byte("from A")}) {
		t.Error("Deliver(late event again) = true")
	}
	if got := n.received(t, 1); len(got) != 0 {
		t.Errorf("duplicate late event delivered: %v", got)
	}
}

// TestClusterLateEventAfterResume: a subscriber that resumed past a late
// event's id (its client moved here from a node that had delivered
// events with larger ids) still gets the late event when it arrives: its
// Last-Event-ID says how far it got in another node's order, not which
// late events it saw there.
func TestClusterLateEventAfterResume(t *testing.T) {
	n := newCluster(t, 3, false, broker.Options{})
	b := n.hubs[1]
	early, later := cutOff(t, n)
	s := subscribe(t, b, later, "x") // a client resumes on B after later
	if len(s.Replay) != 0 {
		t.Fatalf("Replay after %v = %v, want nothing", later, idsOf(s.Replay))
	}
	n.flush(0, 1)
	checkIDs(t, "delivered after the resume", idsOf(drain(t, s)), []broker.ID{early})
}

func TestDeliverDuplicates(t *testing.T) {
	h := newHub(t, broker.Options{})
	s := subscribe(t, h, broker.ID{}, ">")
	e := &broker.Event{ID: broker.ID{Time: 1 << 16, Origin: 5, Seq: 1}, Channel: "a", Data: []byte("x"), Key: "k"}
	if !h.Deliver(e) {
		t.Fatal("Deliver() = false for a new event")
	}
	for range 3 {
		if h.Deliver(&broker.Event{ID: e.ID, Channel: "a", Data: []byte("x")}) {
			t.Error("Deliver() = true for a duplicate")
		}
	}
	checkIDs(t, "delivered", idsOf(drain(t, s)), []broker.ID{e.ID})
	st := h.Stats()
	if st.Duplicates != 3 || st.Received != 1 || st.HistoryEvents != 1 {
		t.Errorf("Stats() = %+v, want 3 duplicates, 1 received, 1 retained", st)
	}
	// A peer's idempotency key is honoured here.
	ids, replayed, _ := h.Publish(context.Background(), []broker.Message{{Channel: "a", Data: []byte("x"), Key: "k"}}, broker.AckLocal)
	if !replayed || ids[0] != e.ID {
		t.Errorf("Publish(key of a peer's event) = %v, %v; want %v, true", ids, replayed, e.ID)
	}
}

func TestDeliverObservesClock(t *testing.T) {
	h := newHub(t, broker.Options{})
	far := broker.ID{Time: uint64(time.Now().Add(time.Hour).UnixMilli()) << 16, Origin: 5, Seq: 1}
	h.Deliver(&broker.Event{ID: far, Channel: "a", Data: []byte("x")})
	if id := publish(t, h, "a", "after"); !far.Less(id) {
		t.Errorf("Publish() after a peer's event %v = %v, want a larger id", far, id)
	}
}

// TestClusterResumeAheadOfRelease: a client that saw events on one hub
// resumes on another that has not released them yet; it gets each event
// after its position once, when that hub releases it.
func TestClusterResumeAheadOfRelease(t *testing.T) {
	n := newCluster(t, 2, false, broker.Options{})
	a, b := n.hubs[0], n.hubs[1]
	ids := publishN(t, a, "x", 3)
	n.flush(0, 1) // B holds them: no watermark from A yet
	b.Tick()
	n.flush(1, 0)
	if got := n.received(t, 0); !slices.Equal(got, ids) {
		t.Fatalf("A released %v, want %v", got, ids)
	}
	s := subscribe(t, b, ids[1], "x") // the client saw ids[0..1] on A
	if len(s.Replay) != 0 || s.Reset {
		t.Errorf("resume on B: Replay %v, Reset %v; want nothing yet", idsOf(s.Replay), s.Reset)
	}
	a.Tick()
	n.flush(0, 1)
	checkIDs(t, "resumed on B", idsOf(drain(t, s)), ids[2:])
}

func TestPeerWatermarks(t *testing.T) {
	h := newHub(t, broker.Options{})
	held := func(want int) {
		t.Helper()
		if got := h.Stats().Pending; got != want {
			t.Errorf("Stats().Pending = %d, want %d", got, want)
		}
	}
	h.PeerUp(8, 0)
	e := publish(t, h, "a", "x")
	held(1)
	h.PeerUp(9, e.Time) // a new peer already past it
	held(1)
	h.Advance(8, e.Time-1)
	held(1)
	h.Advance(8, e.Time) // "no event at or below": e is stable
	held(0)
	f := publish(t, h, "a", "y")
	h.Advance(8, f.Time)
	held(1)               // 9 has not passed it
	h.PeerUp(9, f.Time-1) // not past f yet
	held(1)
	h.PeerUp(9, f.Time)
	held(0)
	g := publish(t, h, "a", "z")
	h.Advance(9, g.Time)
	h.PeerUp(9, 0) // a repeated PeerUp never lowers a watermark
	h.Advance(8, g.Time)
	held(0)
	if st := h.Stats(); st.Peers != 2 {
		t.Errorf("Stats().Peers = %d, want 2", st.Peers)
	}
}
