package presence

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// FuzzCensus feeds a peer's census bytes to a directory: nothing panics,
// and whatever is accepted leaves the sums consistent (no negative count,
// no subject held with no streams).
func FuzzCensus(f *testing.F) {
	full, _ := json.Marshal(census{Seq: 1, Full: true, Streams: 2, Ch: map[string]wireEntry{"a": {N: 2, S: map[string]int{"x": 1}}}})
	delta, _ := json.Marshal(census{Seq: 2, Streams: 1, Ch: map[string]wireEntry{"a": {N: 1, S: map[string]int{"x": 0}}}})
	f.Add(full, delta)
	f.Add([]byte(`{"q":1,"f":true,"c":{"a":{"n":-1}}}`), []byte(`{"q":2,"c":{"a":{"n":3,"s":{"y":9}}}}`))
	f.Add([]byte(`{"q":1,"f":true,"a":{"room":{"on":true,"id":"x"}}}`), []byte(`not json`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		hub := broker.NewHub(broker.Options{})
		defer hub.Close()
		d, err := New(Options{Hub: hub, Interval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		const peer = 0xfeed
		d.mu.Lock()
		defer d.mu.Unlock()
		d.updateMembers([]uint64{d.origin, peer}, time.Now())
		for _, raw := range [][]byte{a, b} {
			c, err := decodeCensus(raw)
			if err != nil {
				continue
			}
			d.applyCensus(peer, c, time.Now())
		}
		for k, e := range d.agg {
			if e.n < 0 {
				t.Fatalf("count of %q = %d", k, e.n)
			}
			for s, n := range e.subs {
				if n <= 0 {
					t.Fatalf("subject %q of %q: %d streams of %d", s, k, n, e.n)
				}
			}
		}
	})
}

// TestSnapshotCarriesAnnouncements: a node that joins after history let
// the announcements go learns them from a peer's snapshot, and so does
// not announce again what was announced, and announces what was not.
func TestSnapshotCarriesAnnouncements(t *testing.T) {
	hub := broker.NewHub(broker.Options{})
	defer hub.Close()
	d, err := New(Options{Hub: hub, Interval: time.Hour, Handover: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const peer = 0xbeef
	id := broker.ID{Time: 1 << 40, Origin: peer, Seq: 7}
	snap := census{Seq: 1, Full: true, Streams: 1,
		Ch:  map[string]wireEntry{"known": {N: 1, S: map[string]int{"ann": 1}}, "new": {N: 1}},
		Ann: map[string]wireAnn{"known": {On: true, ID: id.String(), Subs: map[string]wireLWW{"ann": {On: true, ID: id.String()}}}},
	}
	b, _ := json.Marshal(snap)
	c, err := decodeCensus(b)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.updateMembers([]uint64{d.origin, peer}, now)
	d.applyCensus(peer, c, now)
	d.updateFresh(now)
	later := now.Add(time.Second)
	var got []string
	d.order = []uint64{d.origin} // this node decides every channel
	for _, a := range d.decide(later) {
		got = append(got, a.ch+":"+a.kind+":"+a.subject)
	}
	if want := []string{"new:occupied:"}; !slices.Equal(got, want) {
		t.Fatalf("decisions = %v, want %v: the snapshot's announcements must hold", got, want)
	}
}

// TestWaitsForDepartedAnnouncements: after a member leaves, a node
// decides only on a census sent since by every live member, and only once
// it holds every announcement of the departed one that they report.
func TestWaitsForDepartedAnnouncements(t *testing.T) {
	hub := broker.NewHub(broker.Options{})
	defer hub.Close()
	d, err := New(Options{Hub: hub, Interval: time.Hour, Handover: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const peer, gone = 0xbeef, 0xdead
	apply := func(origin uint64, c census, now time.Time) {
		t.Helper()
		b, _ := json.Marshal(c)
		dc, err := decodeCensus(b)
		if err != nil {
			t.Fatal(err)
		}
		d.applyCensus(origin, dc, now)
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.updateMembers([]uint64{d.origin, peer, gone}, now)
	apply(peer, census{Seq: 1, Full: true}, now)
	apply(gone, census{Seq: 1, Full: true}, now)
	d.applyNotice(&broker.Event{ID: broker.ID{Time: 1 << 40, Origin: gone, Seq: 3}, Channel: NoticePrefix + "a", Type: KindOccupied})
	d.updateFresh(now)
	if !d.caughtUp {
		t.Fatal("not caught up before any departure")
	}
	now = now.Add(time.Millisecond)
	d.updateMembers([]uint64{d.origin, peer}, now)
	d.updateFresh(now)
	if d.caughtUp {
		t.Fatal("caught up with no census from the peer since the departure")
	}
	// The peer applied an announcement of the departed one this node lacks.
	apply(peer, census{Seq: 2, Heard: map[string]uint64{hexOrigin(gone): 5}}, now)
	d.updateFresh(now)
	if d.caughtUp {
		t.Fatal("caught up without the departed node's announcement 5")
	}
	d.applyNotice(&broker.Event{ID: broker.ID{Time: 1 << 41, Origin: gone, Seq: 5}, Channel: NoticePrefix + "b", Type: KindOccupied})
	d.updateFresh(now)
	if !d.caughtUp {
		t.Fatal("not caught up holding the departed node's announcements")
	}
	if c := d.nextCensus(now, nil); c.Heard[hexOrigin(gone)] != 5 {
		t.Fatalf("census heard = %v, want %s: 5", c.Heard, hexOrigin(gone))
	}
}

// TestSnapshotCountsAsHeard: a snapshot's announced states stand for the
// announcements its sender applied, so a node that joins after they left
// history does not wait for them when their decider departs.
func TestSnapshotCountsAsHeard(t *testing.T) {
	hub := broker.NewHub(broker.Options{})
	defer hub.Close()
	d, err := New(Options{Hub: hub, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const peer, gone = 0xbeef, 0xdead
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.updateMembers([]uint64{d.origin, peer, gone}, now)
	for i, o := range []uint64{peer, gone} {
		c := census{Seq: 1, Full: true}
		if i == 0 {
			c.Heard = map[string]uint64{hexOrigin(gone): 9}
		}
		b, _ := json.Marshal(c)
		dc, err := decodeCensus(b)
		if err != nil {
			t.Fatal(err)
		}
		d.applyCensus(o, dc, now)
	}
	d.updateMembers([]uint64{d.origin, peer}, now)
	b, _ := json.Marshal(census{Seq: 2})
	dc, _ := decodeCensus(b)
	d.applyCensus(peer, dc, now)
	d.updateFresh(now)
	if !d.caughtUp {
		t.Fatal("waits for announcements the peer's snapshot already carried")
	}
}
