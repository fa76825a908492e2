package broker

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Position is what a stream has passed, written as the SSE id of the last
// event it sent so that a client can resume on any node.
//
// Every node delivers an event as soon as it holds it, in its origin's
// sequence order, and never waits for other nodes; so nodes deliver the
// events of different origins in different interleavings, and one event id
// cannot say what a client has seen. What it has seen is, for every origin,
// a prefix of that origin's events, and since an origin's clock only moves
// forward, a prefix is "every event of that origin with a Time at or below
// some threshold". A Position writes those thresholds compactly:
//
//   - Last is the event the position was written with. Its origin's
//     threshold is max(Last.Time, Stable) unless Marks lists it.
//   - Marks lists the origins whose threshold is something else, sorted by
//     origin.
//   - Stable is the threshold of every other origin, including origins
//     nobody had heard of when the position was written.
//
// The text form is the event's id, then, when anything differs from
// "Stable = Last.Time and no marks", "~" and Stable in hex, then "~" origin
// "." threshold for each mark: "ID~S~O.T~O.T". A bare event id is therefore
// the position "every event with a Time up to this id's" — the meaning
// Last-Event-ID had before positions existed, so old ids still resume.
//
// A position written with no event (a channel's head before its first
// event, a history cursor before its first page) has the zero Last and
// writes it as "0": "0~S~O.T". The zero Position ("nothing seen") has no
// text form.
type Position struct {
	Last   ID
	Stable uint64
	Marks  []Mark
}

// Mark is one origin's threshold in a Position: the client has seen every
// event of Origin with a Time at or below Time, and none above.
type Mark struct {
	Origin uint64
	Time   uint64
}

// maxMarks bounds the marks a position may carry: one per origin a node
// tracks, which is one per node incarnation seen in the history's lifetime.
// A longer Last-Event-ID is refused as hostile.
const maxMarks = 256

// PositionOf returns the position "every event up to id's time": what a
// bare event id means.
func PositionOf(id ID) Position { return Position{Last: id, Stable: id.Time} }

// Earliest returns the position before every event: a subscription from
// it replays everything retained (and reports Reset if anything was
// evicted). It is not the zero Position, which means "live only".
func Earliest() Position { return Position{Last: ID{Origin: 1}} }

// IsZero reports whether p is the zero Position ("nothing seen").
func (p Position) IsZero() bool { return p.Last.IsZero() && p.Stable == 0 && len(p.Marks) == 0 }

// Threshold returns the largest Time of origin's events that p has passed.
func (p Position) Threshold(origin uint64) uint64 {
	if i, ok := p.mark(origin); ok {
		return p.Marks[i].Time
	}
	if origin == p.Last.Origin && origin != 0 {
		return max(p.Last.Time, p.Stable)
	}
	return p.Stable
}

func (p Position) mark(origin uint64) (int, bool) {
	return slices.BinarySearchFunc(p.Marks, origin, func(m Mark, o uint64) int { return cmpUint(m.Origin, o) })
}

// Includes reports whether a client at p has seen the event id.
func (p Position) Includes(id ID) bool { return id.Time <= p.Threshold(id.Origin) }

// Covers reports whether p has passed everything q has: for every origin,
// q's threshold is at or below p's.
func (p Position) Covers(q Position) bool {
	if q.Stable > p.Stable {
		return false
	}
	ok := func(o uint64) bool { return q.Threshold(o) <= p.Threshold(o) }
	if !ok(q.Last.Origin) || !ok(p.Last.Origin) {
		return false
	}
	for _, m := range q.Marks {
		if !ok(m.Origin) {
			return false
		}
	}
	for _, m := range p.Marks {
		if !ok(m.Origin) {
			return false
		}
	}
	return true
}

// Join returns the position of a client that has seen everything p or q
// has, written with the event last.
func (p Position) Join(q Position, last ID) Position {
	out := Position{Last: last, Stable: max(p.Stable, q.Stable)}
	origins := make([]uint64, 0, len(p.Marks)+len(q.Marks)+3)
	origins = append(origins, p.Last.Origin, q.Last.Origin, last.Origin)
	for _, m := range p.Marks {
		origins = append(origins, m.Origin)
	}
	for _, m := range q.Marks {
		origins = append(origins, m.Origin)
	}
	slices.Sort(origins)
	origins = slices.Compact(origins)
	for _, o := range origins {
		if o == 0 {
			continue
		}
		t := max(p.Threshold(o), q.Threshold(o))
		if t != out.implicit(o) {
			out.Marks = append(out.Marks, Mark{Origin: o, Time: t})
		}
	}
	return out
}

// implicit is origin's threshold when Marks does not list it.
func (p Position) implicit(origin uint64) uint64 {
	if origin == p.Last.Origin {
		return max(p.Last.Time, p.Stable)
	}
	return p.Stable
}

// String returns the text form: the SSE id a stream writes.
func (p Position) String() string { return string(p.Append(nil)) }

// Append appends the text form to b.
func (p Position) Append(b []byte) []byte {
	if p.Last.IsZero() {
		b = append(b, '0')
	} else {
		b = p.Last.Append(b)
		if p.Stable == p.Last.Time && len(p.Marks) == 0 {
			return b
		}
	}
	b = append(b, '~')
	b = strconv.AppendUint(b, p.Stable, 16)
	for _, m := range p.Marks {
		b = append(b, '~')
		b = strconv.AppendUint(b, m.Origin, 16)
		b = append(b, '.')
		b = strconv.AppendUint(b, m.Time, 16)
	}
	return b
}

// ParsePosition parses the text form written by Position.String, including
// a bare event id. It accepts exactly that form (lower-case hex without
// leading zeros after the id, marks sorted by origin, at most 256 of them,
// the event's own origin at or past it, "0" for no event but never the
// zero Position) and refuses anything else with ErrBadID.
func ParsePosition(s string) (Position, error) {
	head, rest, ext := strings.Cut(s, "~")
	bad := func() (Position, error) { return Position{}, fmt.Errorf("%w: %q", ErrBadID, clip(s)) }
	var id ID
	if head != "0" {
		var err error
		if id, err = ParseID(head); err != nil {
			return Position{}, err
		}
	} else if !ext {
		return bad()
	}
	if !ext {
		return PositionOf(id), nil
	}
	if len(s) > 64+maxMarks*35 || strings.Count(rest, "~") > maxMarks {
		return bad()
	}
	parts := strings.Split(rest, "~")
	stable, ok := parseCanonicalHex(parts[0])
	if !ok {
		return bad()
	}
	p := Position{Last: id, Stable: stable}
	for _, part := range parts[1:] {
		os, ts, ok := strings.Cut(part, ".")
		if !ok {
			return bad()
		}
		o, ok1 := parseCanonicalHex(os)
		t, ok2 := parseCanonicalHex(ts)
		if !ok1 || !ok2 || o == 0 {
			return bad()
		}
		if n := len(p.Marks); n > 0 && p.Marks[n-1].Origin >= o {
			return bad()
		}
		p.Marks = append(p.Marks, Mark{Origin: o, Time: t})
	}
	if len(p.Marks) == 0 && p.Stable == id.Time {
		return bad() // the canonical form of this position is the bare id, or it is the zero Position
	}
	if p.Threshold(id.Origin) < id.Time {
		return bad() // a position always includes the event it was written with
	}
	return p, nil
}

func parseCanonicalHex(s string) (uint64, bool) {
	if len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	return parseHex(s)
}
