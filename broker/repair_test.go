package broker_test

import (
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// peerEvent is event seq of origin o, its time increasing with seq.
func peerEvent(o, seq uint64) *broker.Event {
	return &broker.Event{
		ID:      broker.ID{Time: (1_700_000_000_000+seq)<<16 | o&0xff, Origin: o, Seq: seq},
		Channel: fmt.Sprintf("o%d", o),
		Data:    fmt.Appendf(nil, "%d/%d", o, seq),
	}
}

func deliverSeqs(tb testing.TB, h *broker.Hub, o uint64, seqs ...uint64) {
	tb.Helper()
	for _, q := range seqs {
		if !h.Deliver(peerEvent(o, q)) {
			tb.Fatalf("Deliver(%d/%d) = false", o, q)
		}
	}
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for q := from; q <= to; q++ {
		out = append(out, q)
	}
	return out
}

func digestOf(d broker.Digest, o uint64) (broker.OriginDigest, bool) {
	i := slices.IndexFunc(d, func(od broker.OriginDigest) bool { return od.Origin == o })
	if i < 0 {
		return broker.OriginDigest{}, false
	}
	return d[i], true
}

func eventKeys(events []*broker.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = fmt.Sprintf("%d/%d", e.ID.Origin, e.ID.Seq)
	}
	return out
}

func TestDigest(t *testing.T) {
	h := newHub(t, broker.Options{})
	deliverSeqs(t, h, 7, 1, 2, 5, 6, 9)
	deliverSeqs(t, h, 8, 1, 2, 3)
	publishN(t, h, "mine", 2)
	d := h.Digest()
	if len(d) != 3 {
		t.Fatalf("Digest() = %+v, want 3 origins", d)
	}
	want := map[uint64]broker.OriginDigest{
		7:          {Origin: 7, Max: 9, Gaps: []broker.Range{{3, 4}, {7, 8}}},
		8:          {Origin: 8, Max: 3},
		h.Origin(): {Origin: h.Origin(), Max: 2},
	}
	for o, w := range want {
		got, ok := digestOf(d, o)
		if !ok || got.Max != w.Max || !slices.Equal(got.Gaps, w.Gaps) {
			t.Errorf("Digest() for origin %x = %+v, want %+v", o, got, w)
		}
	}
	// Filling a gap removes it.
	deliverSeqs(t, h, 7, 3, 4)
	if got, _ := digestOf(h.Digest(), 7); got.Max != 9 || !slices.Equal(got.Gaps, []broker.Range{{7, 8}}) {
		t.Errorf("Digest() after filling 3-4 = %+v", got)
	}
}

func TestDigestListsAtMost64Gaps(t *testing.T) {
	h := newHub(t, broker.Options{})
	var odd []uint64
	for q := uint64(1); q <= 201; q += 2 {
		odd = append(odd, q)
	}
	deliverSeqs(t, h, 7, odd...)
	got, _ := digestOf(h.Digest(), 7)
	if got.Max != 201 || len(got.Gaps) != 64 || got.Gaps[0] != (broker.Range{2, 2}) || got.Gaps[63] != (broker.Range{128, 128}) {
		t.Errorf("Digest() = max %d, %d gaps from %v to %v; want max 201, the 64 lowest gaps", got.Max, len(got.Gaps), got.Gaps[0], got.Gaps[len(got.Gaps)-1])
	}
}

func TestMissing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lacking := newHub(t, broker.Options{Now: time.Now})
		deliverSeqs(t, lacking, 7, 1, 2, 5, 6, 9)
		deliverSeqs(t, lacking, 8, 1, 2, 3)

		holder := newHub(t, broker.Options{Now: time.Now})
		deliverSeqs(t, holder, 7, seqRange(1, 10)...)
		deliverSeqs(t, holder, 8, seqRange(1, 4)...)
		time.Sleep(5 * time.Second)
		deliverSeqs(t, holder, 8, 5)         // young: probably still in flight
		deliverSeqs(t, holder, 9, 1)         // an origin the digest lacks, young
		mine := publish(t, holder, "m", "x") // the holder's own, young

		d := lacking.Digest()
		got := eventKeys(holder.Missing(d, 100, 3*time.Second))
		gaps, above := got[:min(4, len(got))], got[min(4, len(got)):]
		if !slices.Equal(gaps, []string{"7/3", "7/4", "7/7", "7/8"}) {
			t.Errorf("Missing() starts with %q, want the gaps 7/3 7/4 7/7 7/8 first", gaps)
		}
		slices.Sort(above)
		if !slices.Equal(above, []string{"7/10", "8/4"}) {
			t.Errorf("Missing() above the digest's max = %q, want 7/10 8/4 (the others are younger than minAge)", above)
		}
		all := eventKeys(holder.Missing(d, 100, 0))
		slices.Sort(all)
		want := []string{"7/10", "7/3", "7/4", "7/7", "7/8", "8/4", "8/5", "9/1", fmt.Sprintf("%d/%d", mine.Origin, mine.Seq)}
		slices.Sort(want)
		if !slices.Equal(all, want) {
			t.Errorf("Missing(minAge 0) = %q, want %q", all, want)
		}
		if got := eventKeys(holder.Missing(d, 2, 0)); !slices.Equal(got, []string{"7/3", "7/4"}) {
			t.Errorf("Missing(limit 2) = %q, want the first gap", got)
		}
		if got := holder.Missing(d, 0, 0); len(got) != 0 {
			t.Errorf("Missing(limit 0) = %q", eventKeys(got))
		}
		// Delivering what is missing closes every gap.
		for _, e := range holder.Missing(d, 100, 0) {
			c := &broker.Event{ID: e.ID, Channel: e.Channel, Data: e.Data}
			if !lacking.Deliver(c) {
				t.Errorf("Deliver(%v) = false", e.ID)
			}
		}
		for _, od := range lacking.Digest() {
			if len(od.Gaps) != 0 {
				t.Errorf("after repair, origin %d has gaps %v", od.Origin, od.Gaps)
			}
		}
		if got := holder.Missing(lacking.Digest(), 100, 0); len(got) != 0 {
			t.Errorf("Missing() after repair = %q, want nothing", eventKeys(got))
		}
	})
}

// TestMissingGapsFirst: gaps come before events above the maximum across
// all origins, not per origin in map order.
func TestMissingGapsFirst(t *testing.T) {
	lacking := newHub(t, broker.Options{})
	deliverSeqs(t, lacking, 7, 1, 3)
	holder := newHub(t, broker.Options{})
	deliverSeqs(t, holder, 7, 1, 2, 3)
	for o := uint64(20); o < 30; o++ {
		deliverSeqs(t, holder, o, 1, 2)
	}
	d := lacking.Digest()
	for range 30 {
		if got := eventKeys(holder.Missing(d, 1, 0)); !slices.Equal(got, []string{"7/2"}) {
			t.Fatalf("Missing(limit 1) = %q, want the gap 7/2", got)
		}
	}
}

func TestMissingSkipsEvicted(t *testing.T) {
	holder := newHub(t, broker.Options{HistorySize: 2}) // per channel: origin 7's events share one
	deliverSeqs(t, holder, 7, seqRange(1, 5)...)
	got := eventKeys(holder.Missing(nil, 100, 0))
	if !slices.Equal(got, []string{"7/4", "7/5"}) {
		t.Errorf("Missing(empty digest) = %q, want the retained 7/4 7/5", got)
	}
	if got := eventKeys(holder.Missing(broker.Digest{{Origin: 7, Max: 5, Gaps: []broker.Range{{1, 4}}}}, 100, 0)); !slices.Equal(got, []string{"7/4"}) {
		t.Errorf("Missing(gap 1-4) = %q, want the retained 7/4", got)
	}
}

func TestGapAbandoned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 10 * time.Second
		h := newHub(t, broker.Options{GapTimeout: timeout, Now: time.Now})
		deliverSeqs(t, h, 7, 1, 3)
		time.Sleep(timeout - time.Millisecond)
		if got, _ := digestOf(h.Digest(), 7); !slices.Equal(got.Gaps, []broker.Range{{2, 2}}) {
			t.Errorf("Digest() before the gap timeout = %+v, want gap 2", got)
		}
		time.Sleep(time.Second) // the sweep gives it up at its first tick past the timeout
		if got, _ := digestOf(h.Digest(), 7); len(got.Gaps) != 0 || got.Max != 3 {
			t.Errorf("Digest() after the gap timeout = %+v, want no gap, max 3", got)
		}
		if st := h.Stats(); st.GapsAbandoned != 1 {
			t.Errorf("Stats().GapsAbandoned = %d, want 1", st.GapsAbandoned)
		}
		if h.Deliver(peerEvent(7, 2)) {
			t.Error("Deliver() of an abandoned event = true")
		}
		deliverSeqs(t, h, 7, 4) // and the origin goes on
	})
}

// TestGapTimeoutPerGap: each gap gets its own timeout, counted from when
// it opened, not from when an earlier gap did.
func TestGapTimeoutPerGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 10 * time.Second
		h := newHub(t, broker.Options{GapTimeout: timeout, Now: time.Now})
		deliverSeqs(t, h, 7, 1, 3) // gap 2 opens
		time.Sleep(timeout - time.Second)
		deliverSeqs(t, h, 7, 6) // gap 4-5 opens
		time.Sleep(time.Second / 2)
		deliverSeqs(t, h, 7, 2) // gap 2 closes
		time.Sleep(time.Second / 2)
		if got, _ := digestOf(h.Digest(), 7); !slices.Equal(got.Gaps, []broker.Range{{4, 5}}) {
			t.Errorf("Digest() 1s after gap 4-5 opened = %+v, want it still waited for", got)
		}
		time.Sleep(timeout + time.Second) // and the sweep's next tick
		if got, _ := digestOf(h.Digest(), 7); len(got.Gaps) != 0 {
			t.Errorf("Digest() after gap 4-5's timeout = %+v, want it abandoned", got)
		}
		if st := h.Stats(); st.GapsAbandoned != 2 {
			t.Errorf("Stats().GapsAbandoned = %d, want 2", st.GapsAbandoned)
		}
	})
}

func TestGapsAbandonedLowestFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 10 * time.Second
		h := newHub(t, broker.Options{GapTimeout: timeout, Now: time.Now})
		deliverSeqs(t, h, 7, 1, 3, 6)
		time.Sleep(timeout + time.Second/2) // the sweep ticks every second
		if got, _ := digestOf(h.Digest(), 7); !slices.Equal(got.Gaps, []broker.Range{{4, 5}}) {
			t.Errorf("first Digest() after the timeout = %+v, want only the lowest gap given up", got)
		}
		time.Sleep(timeout)
		if got, _ := digestOf(h.Digest(), 7); len(got.Gaps) != 0 || got.Max != 6 {
			t.Errorf("Digest() after another timeout = %+v, want no gap", got)
		}
		if st := h.Stats(); st.GapsAbandoned != 3 {
			t.Errorf("Stats().GapsAbandoned = %d, want 3", st.GapsAbandoned)
		}
	})
}

// TestDeliverWaitsForSequenceGap: an origin's events are delivered in its
// sequence order; one after a missing sequence waits until the gap is
// filled or given up.
func TestDeliverWaitsForSequenceGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 10 * time.Second
		h := newHub(t, broker.Options{GapTimeout: timeout, Now: time.Now})
		s := subscribe(t, h, broker.ID{}, ">")
		deliverSeqs(t, h, 7, 1, 3, 4)
		checkIDs(t, "before the gap is filled", idsOf(drain(t, s)), []broker.ID{peerEvent(7, 1).ID})
		if st := h.Stats(); st.Pending != 2 {
			t.Errorf("Stats().Pending = %d, want the 2 waiting events", st.Pending)
		}
		deliverSeqs(t, h, 7, 2)
		checkIDs(t, "after the gap is filled", idsOf(drain(t, s)), []broker.ID{peerEvent(7, 2).ID, peerEvent(7, 3).ID, peerEvent(7, 4).ID})

		deliverSeqs(t, h, 7, 6)
		if got := drain(t, s); len(got) != 0 {
			t.Errorf("delivered %v across the gap at 5", idsOf(got))
		}
		time.Sleep(timeout + time.Second) // the sweep gives up on 5 at its next tick
		checkIDs(t, "after the gap was given up", idsOf(drain(t, s)), []broker.ID{peerEvent(7, 6).ID})
		if st := h.Stats(); st.Pending != 0 || st.GapsAbandoned != 1 {
			t.Errorf("Stats() = %+v, want nothing pending, 1 abandoned", st)
		}
	})
}
