package bench

import "sort"

// arrival is what one received sequence number turned out to be.
type arrival int

const (
	inOrder    arrival = iota // new and above everything before it
	outOfOrder                // new, but a later one arrived first
	duplicate                 // received before
)

// seqs is the set of sequence numbers one subscriber got from one
// publisher, as sorted, disjoint, non-adjacent ranges. Events that arrive
// in order extend the last range, so the set stays one range unless events
// go missing; its size grows with the holes, not with the events.
type seqs struct {
	r []span
}

type span struct{ lo, hi uint64 }

// add records s and says what it was.
func (x *seqs) add(s uint64) arrival {
	n := len(x.r)
	if n == 0 || s > x.r[n-1].hi+1 {
		x.r = append(x.r, span{s, s})
		return inOrder
	}
	if s == x.r[n-1].hi+1 {
		x.r[n-1].hi = s
		return inOrder
	}
	// At or below the highest: a duplicate, or a hole being filled.
	i := sort.Search(n, func(i int) bool { return x.r[i].hi >= s }) // the first range not below s
	if x.r[i].lo <= s {
		return duplicate
	}
	switch {
	case i > 0 && x.r[i-1].hi+1 == s && s+1 == x.r[i].lo: // closes the hole
		x.r[i-1].hi = x.r[i].hi
		x.r = append(x.r[:i], x.r[i+1:]...)
	case i > 0 && x.r[i-1].hi+1 == s:
		x.r[i-1].hi = s
	case s+1 == x.r[i].lo:
		x.r[i].lo = s
	default:
		x.r = append(x.r, span{})
		copy(x.r[i+1:], x.r[i:])
		x.r[i] = span{s, s}
	}
	return outOfOrder
}

// has reports whether s was received.
func (x *seqs) has(s uint64) bool {
	i := sort.Search(len(x.r), func(i int) bool { return x.r[i].hi >= s })
	return i < len(x.r) && x.r[i].lo <= s
}

// count returns how many of 1..upto were received.
func (x *seqs) count(upto uint64) uint64 {
	var n uint64
	for _, r := range x.r {
		if r.lo > upto {
			break
		}
		n += min(r.hi, upto) - r.lo + 1
	}
	return n
}
