package transport

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// A node that joins a cluster with history catches up before it says it is
// ready, in pages, and then serves resumes exactly like the old nodes.
func TestJoinCatchesUpBeforeReady(t *testing.T) {
	inMemory(t, testJoinCatchesUpBeforeReady)
}

func testJoinCatchesUpBeforeReady(t *testing.T) {
	const n = 200
	pages := func(t *timing) {
		fastTiming(t)
		t.repairLimit = 16 // n events take several pages
		t.repairMinAge = 300 * time.Millisecond
	}
	nodes := startClusterWith(t, 2, func(int) nodeOpts { return nodeOpts{timing: pages} })
	a, b := nodes[0], nodes[1]
	var ids []broker.ID
	for i := range n {
		pub := nodes[i%2]
		ids = append(ids, publish(t, pub.hub, broker.AckPeer, fmt.Sprintf("room.%d", i%3), fmt.Sprint(i)))
	}
	// The newcomer joins while the last events are younger than the
	// repair's minimum age: a peer holds those back in its first answers,
	// so that first answer says nothing about being caught up.
	reg := newRegistry()
	c := startNodeWith(t, "n3", nodeOpts{join: []string{a.c.GossipAddr()}, timing: pages, reg: reg})
	waitFor(t, "the newcomer to be ready", 10*time.Second, func() bool { return c.c.Ready() == nil })

	for _, old := range []*node{a, b} {
		var max uint64
		for _, id := range ids {
			if id.Origin == old.hub.Origin() {
				max = id.Seq
			}
		}
		if !holds(c.hub, old.hub.Origin(), max) {
			t.Errorf("newcomer ready without every event of %s: digest %+v, want up to %d", old.name, c.hub.Digest(), max)
		}
	}
	// Most come by repair. A link an old node dials after the newcomer
	// already holds some of its events (from the other old node's repair
	// answers) resends one page of its own events above them instead.
	if got, _ := gather(t, reg, "rumor_relay_repairs_fetched_total"); got < n-2*16 {
		t.Errorf("rumor_relay_repairs_fetched_total = %v, want at least %d", got, n-2*16)
	}

	// Resuming from the first event on the newcomer gives the same events
	// as on the first node (each node in the order it got them).
	want := replayAll(t, a.hub, ids[0])
	if len(want) != n-1 {
		t.Fatalf("replay on %s has %d events, want %d", a.name, len(want), n-1)
	}
	got := replayAll(t, c.hub, ids[0])
	slices.SortFunc(want, broker.ID.Compare)
	slices.SortFunc(got, broker.ID.Compare)
	if !slices.Equal(got, want) {
		t.Fatalf("replay on the newcomer (%d events) differs from %s (%d events) at %d", len(got), a.name, len(want), firstDiff(got, want))
	}
	if st := c.hub.Stats(); st.Pending != 0 {
		t.Errorf("newcomer still holds %d events pending", st.Pending)
	}
}

// replayAll resumes every room after id and returns the ids replayed plus
// those that follow live until the hub has nothing pending.
func replayAll(tb testing.TB, h *broker.Hub, after broker.ID) []broker.ID {
	tb.Helper()
	waitFor(tb, "nothing pending", 5*time.Second, func() bool { return h.Stats().Pending == 0 })
	s := subscribe(tb, h, "room.*", after)
	defer s.Close()
	var out []broker.ID
	for _, e := range s.Replay {
		out = append(out, e.ID)
	}
	evs, _ := s.Drain(nil)
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

// A link that loses one event in the middle of a stream: the receiver sees
// the hole in its digest, a peer fills it, and no subscriber sees an event
// twice.
func TestGapIsDetectedAndRepaired(t *testing.T) {
	inMemory(t, testGapIsDetectedAndRepaired)
}

func testGapIsDetectedAndRepaired(t *testing.T) {
	const lost = 5 // the sequence number A's link to C loses
	var cName string
	var relayA *skipRelay
	var digests digestLog
	regC := newRegistry()
	nodes := startClusterWith(t, 3, func(i int) nodeOpts {
		o := nodeOpts{timing: func(t *timing) {
			fastTiming(t)
			t.repairMinAge = 500 * time.Millisecond // only a gap, not "above max", can bring the event early
		}}
		switch i {
		case 0:
			o.relay = func(c *Cluster) broker.Relay {
				relayA = &skipRelay{Cluster: c, skip: func(to string, e *broker.Event) bool { return to == cName && e.ID.Seq == lost }}
				return relayA
			}
		case 2:
			o.wrap = func(h *broker.Hub) Hub { digests.Hub = h; return &digests }
			o.reg = regC
		}
		return o
	})
	a, b, c := nodes[0], nodes[1], nodes[2]
	cName = c.c.Self()
	relayA.on.Store(true)
	subC := subscribe(t, c.hub, "orders", broker.ID{})
	subB := subscribe(t, b.hub, "orders", broker.ID{})

	var ids []broker.ID
	for i := range 10 {
		ids = append(ids, publish(t, a.hub, broker.AckPeer, "orders", fmt.Sprint(i)))
	}
	if ids[lost-1].Seq != lost {
		t.Fatalf("event %d has seq %d, want %d", lost-1, ids[lost-1].Seq, lost)
	}
	gotC := recv(t, subC, len(ids))
	checkExactlyOnce(t, "C", gotC, ids)
	checkExactlyOnce(t, "B", recv(t, subB, len(ids)), ids)
	if !digests.sawGap(a.hub.Origin(), lost) {
		t.Errorf("C never listed seq %d of A as a gap in its digests", lost)
	}
	// The reader counts the repair just after handing the event over.
	waitFor(t, "rumor_relay_repairs_fetched_total on C to count the repair", 2*time.Second, func() bool {
		got, _ := gather(t, regC, "rumor_relay_repairs_fetched_total")
		return got >= 1
	})
	noneQueued(t, subC)
}

// digestLog is a hub that remembers the gaps its digests listed.
type digestLog struct {
	*broker.Hub
	mu   sync.Mutex
	gaps map[uint64][]broker.Range
}

func (d *digestLog) Digest() broker.Digest {
	dg := d.Hub.Digest()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gaps == nil {
		d.gaps = make(map[uint64][]broker.Range)
	}
	for _, o := range dg {
		d.gaps[o.Origin] = append(d.gaps[o.Origin], o.Gaps...)
	}
	return dg
}

func (d *digestLog) sawGap(origin, seq uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.ContainsFunc(d.gaps[origin], func(r broker.Range) bool { return r.From <= seq && seq <= r.To })
}

// firstDiff returns the first index where a and b differ.
func firstDiff[T comparable](a, b []T) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
