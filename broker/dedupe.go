package broker

import (
	"slices"
	"time"
)

// Range is an inclusive range of sequence numbers.
type Range struct{ From, To uint64 }

// OriginDigest says what a node holds of one origin's events: every
// sequence number up to Max except those in Gaps.
type OriginDigest struct {
	Origin uint64
	Max    uint64
	Gaps   []Range
}

// Digest summarizes what a node holds, one entry per origin it has heard
// from. Peers answer a digest with the events it lacks (Hub.Missing).
type Digest []OriginDigest

// maxGaps bounds the gaps one digest entry lists; the rest follow once the
// first are filled.
const maxGaps = 64

// seen tracks which of one origin's sequence numbers a node has, to drop
// duplicates and to find gaps: every seq up to contig, plus the set above.
type seen struct {
	contig uint64
	max    uint64
	above  map[uint64]struct{}
	stuck  time.Time // when contig last stopped (or moved) short of max; zero when no gap
	heard  time.Time
}

// add records seq and reports whether it was new.
func (s *seen) add(seq uint64, now time.Time) bool {
	s.heard = now
	if seq <= s.contig {
		return false
	}
	if _, dup := s.above[seq]; dup {
		return false
	}
	if seq > s.max {
		s.max = seq
	}
	advanced := seq == s.contig+1
	if advanced {
		s.contig = seq
		for len(s.above) > 0 {
			if _, ok := s.above[s.contig+1]; !ok {
				break
			}
			delete(s.above, s.contig+1)
			s.contig++
		}
	} else {
		if s.above == nil {
			s.above = make(map[uint64]struct{})
		}
		s.above[seq] = struct{}{}
	}
	switch {
	case s.contig == s.max:
		s.stuck = time.Time{}
	case s.stuck.IsZero() || advanced:
		// The lowest gap is now the one above contig, open since at
		// least now; an earlier gap's age must not count against it.
		s.stuck = now
	}
	return true
}

// gaps lists the missing ranges below max, at most limit of them.
func (s *seen) gaps(limit int) []Range {
	if s.contig == s.max {
		return nil
	}
	held := make([]uint64, 0, len(s.above))
	for q := range s.above {
		held = append(held, q)
	}
	slices.Sort(held)
	var out []Range
	next := s.contig + 1
	for _, q := range held {
		if q > next {
			out = append(out, Range{next, q - 1})
			if len(out) == limit {
				return out
			}
		}
		next = q + 1
	}
	return out
}

// abandon gives up on the lowest gap if it has been open longer than
// timeout: no peer retains those events any more. It returns how many
// sequence numbers it skipped.
func (s *seen) abandon(now time.Time, timeout time.Duration) uint64 {
	if s.stuck.IsZero() || now.Sub(s.stuck) < timeout || len(s.above) == 0 {
		return 0
	}
	low := s.max
	for q := range s.above {
		low = min(low, q)
	}
	skipped := low - 1 - s.contig
	delete(s.above, low)
	s.contig = low - 1
	s.stuck = time.Time{}
	s.add(low, now) // moves contig past low and whatever follows it
	return skipped
}
