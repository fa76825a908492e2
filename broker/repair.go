package broker

import (
	"fmt"
	"time"
)

// Digest summarizes which events this node holds, per origin, for repair.
func (h *Hub) Digest() Digest {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := make(Digest, 0, len(h.seen))
	for o, s := range h.seen {
		d = append(d, OriginDigest{Origin: o, Max: s.max, Gaps: s.gaps(maxGaps)})
	}
	return d
}

// Contig returns the highest sequence of origin's events this node holds
// with none missing below it.
func (h *Hub) Contig(origin uint64) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.seen[origin]; s != nil {
		return s.contig
	}
	return 0
}

// OwnAbove returns up to limit of this node's own retained events with a
// sequence above seq, in sequence order: what a peer that holds our events
// up to seq lacks.
func (h *Hub) OwnAbove(seq uint64, limit int) []*Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	log := h.hist.origins[h.origin]
	if log == nil {
		return nil
	}
	var out []*Event
	for _, en := range log.from(seq + 1) {
		if len(out) >= limit {
			break
		}
		if !en.removed {
			out = append(out, en.e)
		}
	}
	return out
}

// Missing returns up to limit retained events that d lacks: first those in
// its gaps, then those above its maximum that arrived here at least minAge
// ago (younger ones are likely still in flight to it).
func (h *Hub) Missing(d Digest, limit int, minAge time.Duration) []*Event {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	has := make(map[uint64]*OriginDigest, len(d))
	for i := range d {
		has[d[i].Origin] = &d[i]
	}
	var out []*Event
	// Gaps first, across every origin: they are known to be missing.
	for o, log := range h.hist.origins {
		od := has[o]
		if od == nil {
			continue
		}
		for _, g := range od.Gaps {
			for _, en := range log.from(g.From) {
				if en.id.Seq > g.To || len(out) >= limit {
					break
				}
				if !en.removed {
					out = append(out, en.e)
				}
			}
		}
	}
	for o, log := range h.hist.origins {
		var maxSeq uint64
		if od := has[o]; od != nil {
			maxSeq = od.Max
		}
		for _, en := range log.from(maxSeq + 1) {
			if len(out) >= limit {
				return out
			}
			if !en.removed && now.Sub(en.arrived) >= minAge {
				out = append(out, en.e)
			}
		}
	}
	return out
}

// abandonGaps gives up on gaps older than the gap timeout: no peer retains
// those events any more. Events waiting behind a given-up gap go out. The
// sweep calls it, with h.mu held.
func (h *Hub) abandonGaps(now time.Time) {
	for o, s := range h.seen {
		n := s.abandon(now, h.opts.GapTimeout)
		if n == 0 {
			continue
		}
		h.abandoned.Add(n)
		h.log.Warn("gave up on missing events", "origin", fmt.Sprintf("%016x", o), "count", n)
		if ord := h.orders[o]; ord != nil && len(ord.blocked) > 0 && s.contig+1 >= ord.blocked[0].ID.Seq {
			ord.next = ord.blocked[0].ID.Seq
			h.unblock(ord, now)
		}
	}
}
