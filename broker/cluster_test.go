package broker_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
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
			k := [2]int{from, to}
			if m.e != nil {
				// Each link carries its own copy, as the wire does: a hub
				// owns the events delivered to it.
				m.e = &broker.Event{ID: m.e.ID, Channel: m.e.Channel, Type: m.e.Type, Data: m.e.Data, Key: m.e.Key, Born: m.e.Born}
			}
			n.links[k] = append(n.links[k], m)
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
		h.Settle() // nothing to catch up with
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

// checkOnce fails unless got holds each of want exactly once, each origin's
// events in sequence order.
func checkOnce(tb testing.TB, what string, got, want []broker.ID) {
	tb.Helper()
	seen := map[broker.ID]bool{}
	last := map[uint64]uint64{}
	for _, id := range got {
		if seen[id] {
			tb.Errorf("%s: %v twice", what, id)
		}
		if id.Seq <= last[id.Origin] {
			tb.Errorf("%s: %v after seq %d of its origin", what, id, last[id.Origin])
		}
		seen[id] = true
		last[id.Origin] = id.Seq
	}
	for _, id := range want {
		if !seen[id] {
			tb.Errorf("%s: %v missing", what, id)
		}
	}
	if len(got) != len(want) {
		tb.Errorf("%s: %d events, want %d", what, len(got), len(want))
	}
}

// TestClusterEveryEventOnce: whatever the interleaving of publishes,
// messages and watermarks, every hub delivers every event once, each
// origin's in sequence, and resuming anywhere from any position written
// anywhere replays exactly what that position lacks.
func TestClusterEveryEventOnce(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			size := 2 + int(seed%2)
			n := newCluster(t, size, false, broker.Options{QueueSize: 1 << 16})
			got := make([][]*broker.Event, size)
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
					got[i] = append(got[i], drain(t, n.subs[i])...)
				}
			}
			n.settle()
			for i, h := range n.hubs {
				got[i] = append(got[i], drain(t, n.subs[i])...)
				checkOnce(t, fmt.Sprintf("hub %d", i), idsOf(got[i]), published)
				if st := h.Stats(); st.Late != 0 || st.Duplicates != 0 || st.Pending != 0 {
					t.Errorf("hub %d Stats() = %+v, want no late, duplicate or pending event", i, st)
				}
			}
			// Resume is exact on every hub, from any position.
			for range 5 {
				i := r.IntN(size)
				k := r.IntN(len(got[i]))
				p, err := broker.ParsePosition(firstLine(n.subs[i].Frame(got[i][k])))
				if err != nil {
					t.Fatal(err)
				}
				for j, h := range n.hubs {
					s, err := h.Subscribe(broker.SubscribeRequest{Patterns: patterns(t, ">"), From: p})
					if err != nil {
						t.Fatal(err)
					}
					checkOnce(t, fmt.Sprintf("hub %d: resume after event %d of hub %d", j, k, i), idsOf(s.Replay), idsOf(got[i][k+1:]))
					if s.Reset {
						t.Errorf("hub %d: resume after event %d of hub %d: Reset", j, k, i)
					}
					s.Close()
				}
			}
		})
	}
}

// firstLine returns a frame's id.
func firstLine(frame []byte) string {
	line, _, _ := strings.Cut(string(frame), "\n")
	return strings.TrimPrefix(line, "id: ")
}

// TestClusterConcurrent publishes on every hub at once while a pump
// goroutine carries messages, for the race detector.
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
	for i := range n.hubs {
		checkOnce(t, fmt.Sprintf("hub %d", i), n.received(t, i), slices.Concat(published[:]...))
	}
}

// TestClusterDeliversAtOnce: a hub delivers an event as soon as it holds
// it, whatever the other peers say or do not say: no node waits for a slow
// one.
func TestClusterDeliversAtOnce(t *testing.T) {
	n := newCluster(t, 3, false, broker.Options{})
	a, b := n.hubs[0], n.hubs[1]
	id := publish(t, a, "x", "now")
	checkIDs(t, "A, before anyone heard of it", n.received(t, 0), []broker.ID{id})
	n.flush(0, 1) // C hears nothing, says nothing
	checkIDs(t, "B, with C silent", n.received(t, 1), []broker.ID{id})
	if st := b.Stats(); st.Pending != 0 {
		t.Errorf("B Stats().Pending = %d, want 0", st.Pending)
	}
	b.PeerDown(origin(2)) // and C's link going down changes nothing
	later := publish(t, a, "x", "later")
	n.flush(0, 1)
	checkIDs(t, "B, C down", n.received(t, 1), []broker.ID{later})
}

// TestClusterResumeAhead: a client that saw events on one hub resumes on
// another that does not hold them yet; it gets each event it lacks once,
// when that hub gets it, and the ids it is sent keep what it saw on the
// first hub.
func TestClusterResumeAhead(t *testing.T) {
	n := newCluster(t, 2, false, broker.Options{})
	a, b := n.hubs[0], n.hubs[1]
	ids := publishN(t, a, "x", 3)
	evs := drain(t, n.subs[0])
	at := firstLine(n.subs[0].Frame(evs[1])) // the client saw ids[0..1] on A
	p, err := broker.ParsePosition(at)
	if err != nil {
		t.Fatal(err)
	}
	other := publish(t, b, "x", "on B")
	s, err := b.Subscribe(broker.SubscribeRequest{Patterns: patterns(t, "x"), From: p})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkIDs(t, "resume on B", idsOf(s.Replay), []broker.ID{other})
	if s.Reset {
		t.Error("resume on B: Reset")
	}
	n.flush(0, 1)
	got := drain(t, s)
	checkIDs(t, "resumed on B", idsOf(got), ids[2:])
	q, err := broker.ParsePosition(firstLine(s.Frame(got[0])))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range append(ids, other) {
		if !q.Includes(id) {
			t.Errorf("position %v after the resume lacks %v", q, id)
		}
	}
}

// TestLateCounted: an event that arrives after a position written here
// claimed it (here, from an origin no one had heard of, whose clock is
// behind) is still delivered, with its own id, and counted.
func TestLateCounted(t *testing.T) {
	h := newHub(t, broker.Options{})
	s := subscribe(t, h, broker.ID{}, "a")
	mine := publish(t, h, "a", "first")
	stray := &broker.Event{ID: broker.ID{Time: mine.Time - 5, Origin: 77, Seq: 1}, Channel: "a", Data: []byte("stray")}
	if !h.Deliver(stray) {
		t.Fatal("Deliver(stray) = false")
	}
	got := drain(t, s)
	checkIDs(t, "delivered", idsOf(got), []broker.ID{mine, stray.ID})
	if id := firstLine(s.Frame(got[1])); !strings.HasPrefix(id, stray.ID.String()) {
		t.Errorf("stray event's id line %q, want its own id first", id)
	}
	if st := h.Stats(); st.Late != 1 {
		t.Errorf("Stats().Late = %d, want 1", st.Late)
	}
	// An origin the hub knows as a member before it writes a position is
	// named in it until its watermark covers it: nothing of it is claimed,
	// nothing is late.
	k := newHub(t, broker.Options{})
	k.Member(88)
	first := publish(t, k, "a", "second")
	if !k.Deliver(&broker.Event{ID: broker.ID{Time: first.Time - 5, Origin: 88, Seq: 1}, Channel: "a", Data: []byte("member")}) {
		t.Fatal("Deliver(member's event) = false")
	}
	if st := k.Stats(); st.Late != 0 {
		t.Errorf("Stats().Late = %d after a known member's event, want 0", st.Late)
	}
}

// TestPositionMarks: a position names the origins whose watermark does not
// cover it, and becomes a bare id once every peer has promised past it.
func TestPositionMarks(t *testing.T) {
	h := newHub(t, broker.Options{Relay: &memRelay{n: &memNet{links: map[[2]int][]netMsg{}}}})
	h.Settle()
	s := subscribe(t, h, broker.ID{}, "a")
	h.PeerUp(8, 0)
	e := publish(t, h, "a", "x")
	if got, want := firstLine(s.Frame(drain(t, s)[0])), e.String()+"~0"; got != want {
		t.Errorf("id with a peer that promised nothing = %q, want %q", got, want)
	}
	ahead := e.Time + 1<<20
	h.Advance(8, ahead) // the peer's clock is ahead of ours
	f := publish(t, h, "a", "y")
	// Our clock moved past the peer's promise, so our next event is above
	// it: Stable is the promise, and no origin needs naming.
	if got, want := firstLine(s.Frame(drain(t, s)[0])), fmt.Sprintf("%s~%x", f, ahead); got != want {
		t.Errorf("id once the peer promised ahead = %q, want %q", got, want)
	}
	peer := &broker.Event{ID: broker.ID{Time: f.Time + 1<<20 + 5, Origin: 8, Seq: 1}, Channel: "a", Data: []byte("z")}
	h.Deliver(peer)
	got := firstLine(s.Frame(drain(t, s)[0]))
	p, err := broker.ParsePosition(got)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Includes(peer.ID) || !p.Includes(f) || p.Includes(broker.ID{Time: peer.ID.Time + 1, Origin: 8, Seq: 2}) {
		t.Errorf("id after the peer's event = %q: want it and f included, nothing later of the peer", got)
	}
	if st := h.Stats(); st.Peers != 1 {
		t.Errorf("Stats().Peers = %d, want 1", st.Peers)
	}
}

// TestSilentMemberForgotten: a member we were told of and never heard from
// (it died before its first watermark reached us) is named in positions,
// then forgotten with the history's lifetime, so ids do not grow forever.
func TestSilentMemberForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, broker.Options{Now: time.Now, HistoryTTL: time.Minute})
		s := subscribe(t, h, broker.ID{}, "a")
		h.Member(9)
		publish(t, h, "a", "x")
		if id := firstLine(s.Frame(drain(t, s)[0])); !strings.Contains(id, "~9.0") {
			t.Errorf("id with a silent member = %q, want it named at 0", id)
		}
		time.Sleep(2*time.Minute + 2*time.Second) // history TTL + a minute, and the sweep's tick
		e := publish(t, h, "a", "y")
		if id := firstLine(s.Frame(drain(t, s)[0])); id != e.String() {
			t.Errorf("id once the silent member is forgotten = %q, want the bare %q", id, e)
		}
	})
}
