package broker

import (
	"slices"
	"time"
)

// originState is what this node knows of one origin's events.
type originState struct {
	next    uint64   // the next sequence to deliver; 0 until the first event
	blocked []*Event // events after a gap, in sequence order, waiting for it
	last    uint64   // Time of the last event delivered in sequence; 0 for none
	first   ID       // the first event of the origin delivered here
	// mark is the origin's watermark: it sends no event at or below it any
	// more, so with no gap every event of the origin up to mark is here.
	mark uint64
	// claimed is the largest threshold a position written here gave the
	// origin. An event at or below it that arrives now is late: a client
	// holding that position would never get it on another node.
	claimed uint64
	since   time.Time // when this node first heard of the origin
}

// state returns origin's state, creating it. Called with h.mu held.
func (h *Hub) state(origin uint64) *originState {
	st := h.orders[origin]
	if st == nil {
		// Positions written before we heard of origin claimed its events
		// up to their Stable.
		st = &originState{claimed: h.stable, since: h.now()}
		h.orders[origin] = st
	}
	return st
}

// admit stores e unless it would overtake a missing event of its origin:
// then it waits in its origin's blocked list until the gap is filled (by
// resend or repair) or given up. Called with h.mu held.
func (h *Hub) admit(e *Event, now time.Time) {
	o := h.state(e.ID.Origin)
	switch {
	case e.ID.Seq == o.next || o.next == 0 && (e.ID.Seq == 1 || h.settled):
		// An origin's first event here starts its sequence, once this
		// node has caught up; before that its earlier events may still
		// be on their way through catch-up, so it waits for them (or
		// for Settle).
		o.next = e.ID.Seq + 1
		h.store(e, o, now)
		h.unblock(o, now)
	case e.ID.Seq < o.next:
		// Below a gap already given up on: deliver it anyway, out of
		// sequence, rather than drop it.
		h.store(e, o, now)
	default:
		i, _ := slices.BinarySearchFunc(o.blocked, e.ID.Seq, func(b *Event, seq uint64) int { return cmpUint(b.ID.Seq, seq) })
		o.blocked = slices.Insert(o.blocked, i, e)
	}
}

// unblock stores the blocked events that are next in sequence.
func (h *Hub) unblock(o *originState, now time.Time) {
	for len(o.blocked) > 0 && o.blocked[0].ID.Seq <= o.next {
		e := o.blocked[0]
		o.blocked[0] = nil
		o.blocked = o.blocked[1:]
		o.next = max(o.next, e.ID.Seq+1)
		h.store(e, o, now)
	}
}

func (h *Hub) blocked() int {
	n := 0
	for _, o := range h.orders {
		n += len(o.blocked)
	}
	return n
}

// stableNow returns the time up to which every origin whose link is up (and
// this node) has promised to send nothing more: the Stable a position can
// use without naming those origins. Called with h.mu held.
func (h *Hub) stableNow() uint64 {
	s := h.clock.Watermark()
	if !h.settled {
		// Events of origins we have not heard of may still come
		// through catch-up: claim nothing of theirs.
		return 0
	}
	for o := range h.peers {
		if st := h.orders[o]; st != nil {
			s = min(s, st.mark)
		} else {
			s = 0
		}
	}
	return s
}

// position returns what a client has passed once it has every event this
// node has delivered, written with the event last (zero for none). Called
// with h.mu held, after last was stored.
//
// For each origin this node has delivered a prefix of its events, ending at
// its last delivered Time; the prefix is also "everything up to T" for any T
// up to the origin's watermark, when no event is missing. An origin is left
// out of the marks when the position's implicit threshold for it falls in
// that range; every other origin is marked with its last delivered Time. Of
// two candidate Stables, the stable point of the peers whose links are up,
// and last's own time when it is below that, the one that needs fewer marks
// wins: a single node's positions are bare ids. Origins nobody here has
// heard of are claimed up to Stable: Member and Settle keep that true.
func (h *Hub) position(last ID) Position {
	own := h.clock.Watermark()
	var best Position
	found := false
	stable := h.stableNow()
	for i, stable := range [2]uint64{min(last.Time, stable), stable} {
		if i == 0 && last.IsZero() {
			continue
		}
		p := Position{Last: last, Stable: stable}
		for o, st := range h.orders {
			mark, lastT := st.mark, st.last
			if o == h.origin {
				mark = own
			}
			// The origin's prefix here ends at lastT; with nothing missing
			// it also reads as "up to" anything until its watermark.
			t := p.implicit(o)
			if t == lastT || len(st.blocked) == 0 && lastT <= t && t <= mark {
				continue
			}
			p.Marks = append(p.Marks, Mark{Origin: o, Time: lastT})
		}
		if !found || len(p.Marks) < len(best.Marks) {
			best, found = p, true
		}
		if len(best.Marks) == 0 {
			break
		}
	}
	slices.SortFunc(best.Marks, func(a, b Mark) int { return cmpUint(a.Origin, b.Origin) })
	return best
}

// claim remembers what p, about to be written to clients, claims, so that
// an event arriving after p claimed it is counted as late. Called with h.mu
// held.
func (h *Hub) claim(p Position) {
	h.stable = max(h.stable, p.Stable)
	for o, st := range h.orders {
		st.claimed = max(st.claimed, p.Threshold(o))
	}
}
