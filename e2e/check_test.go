package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// eventID is an event id as a client sees it:
// "TTTTTTTTTTTTTTTT-OOOOOOOOOOOOOOOO-S": hex time, origin (a node incarnation)
// and sequence (counting that origin's events from 1).
// The checker parses it itself rather than with package broker, so that it
// judges the wire format from outside.
type eventID struct {
	Time, Origin, Seq uint64
}

func parseEventID(s string) (eventID, error) {
	parts := strings.Split(s, "-")
	if len(parts) != 3 || len(parts[0]) != 16 || len(parts[1]) != 16 || parts[2] == "" {
		return eventID{}, fmt.Errorf("malformed event id %q", s)
	}
	var id eventID
	var err [3]error
	id.Time, err[0] = strconv.ParseUint(parts[0], 16, 64)
	id.Origin, err[1] = strconv.ParseUint(parts[1], 16, 64)
	id.Seq, err[2] = strconv.ParseUint(parts[2], 16, 64)
	for _, e := range err {
		if e != nil {
			return eventID{}, fmt.Errorf("malformed event id %q: %v", s, e)
		}
	}
	return id, nil
}

// report is the checker's verdict. The counts are exact; Problems lists
// the first 60 findings in words.
type report struct {
	Published      int // publish attempts
	Acked          int // answered 200: must reach every subscriber exactly once
	Unacked        int // failed or unanswered: may arrive, at most once
	Deliveries     int
	UnackedArrived int // deliveries of events whose publisher got no 200
	Conns          int
	NodesPerSub    map[string]int // subscriber → distinct nodes it read from

	Duplicates int // deliveries of an event the subscriber already had
	OutOfOrder int // deliveries below a sequence the subscriber had from that origin
	Gaps       int // events a subscriber skipped: between two it got from one origin
	Missing    int // (subscriber, acknowledged event) pairs that never arrived
	NoOwnID    int // deliveries without an id line of their own
	Resets     int // rumor.reset signals

	BySubscriber []string // per subscriber with a problem: its counts
	Problems     []string

	problemsDropped int
	subProblems     int // problems of the subscriber being checked
}

// problem records a finding: at most 60 in all and 6 per subscriber are
// kept in words, so that every subscriber's first findings show.
func (r *report) problem(format string, args ...any) {
	r.subProblems++
	if len(r.Problems) >= 60 || r.subProblems > 6 {
		r.problemsDropped++
		return
	}
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// OK reports whether every promise held.
func (r *report) OK() bool { return len(r.Problems) == 0 }

// Summary is one line for logs and docs.
func (r *report) Summary() string {
	return fmt.Sprintf("%d publishes, %d acked, %d unacked (%d of their deliveries arrived); %d deliveries over %d connections; "+
		"%d duplicates, %d out of order, %d skipped, %d acked never arrived, %d without an id line, %d resets; %d problems",
		r.Published, r.Acked, r.Unacked, r.UnackedArrived, r.Deliveries, r.Conns,
		r.Duplicates, r.OutOfOrder, r.Gaps, r.Missing, r.NoOwnID, r.Resets, len(r.Problems)+r.problemsDropped)
}

func (r *report) String() string {
	var b strings.Builder
	b.WriteString(r.Summary())
	b.WriteByte('\n')
	for _, l := range r.BySubscriber {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  PROBLEM: %s\n", p)
	}
	if r.problemsDropped > 0 {
		fmt.Fprintf(&b, "  … and %d more problems\n", r.problemsDropped)
	}
	return b.String()
}

// check holds the workload's records to rumor's promises, for each
// subscriber:
//   - every acknowledged event (the publisher got 200) arrives exactly
//     once, with the data its publisher sent and the id it was given (an
//     SSE id names the event by its part before the first '~'); an
//     unacknowledged one at most once;
//   - each origin's events arrive in sequence order, and with no gap from
//     the first one the subscriber got: between two events of an origin,
//     every event of that origin in between arrived too (sequences count
//     an origin's events from 1 with no holes);
//   - every event comes with an id line of its own (an id sent only as a
//     comment, or none, leaves a browser's Last-Event-ID on an older
//     event);
//   - no rumor.reset arrives.
//
// There is no order across origins to check: every node delivers an event
// as soon as it holds it.
func check(pubs []publishRecord, subs []subscriberLog) *report {
	r := &report{NodesPerSub: map[string]int{}}
	byID := map[string]publishRecord{}             // event id → its publish
	byData := map[string]publishRecord{}           // data → its publish
	bySeq := map[uint64]map[uint64]publishRecord{} // origin → seq → publish with that id
	origins := map[uint64]string{}                 // origin → node name
	for _, p := range pubs {
		r.Published++
		byData[p.Data] = p
		eid := eventIDOf(p.ID)
		id, err := parseEventID(eid)
		if !p.acked() {
			r.Unacked++
			if err == nil {
				byID[eid] = p
				if bySeq[id.Origin] == nil {
					bySeq[id.Origin] = map[uint64]publishRecord{}
				}
				bySeq[id.Origin][id.Seq] = p
			}
			continue
		}
		r.Acked++
		if err != nil {
			r.problem("publish %s to %s: 200 with %v", p.Data, p.Node, err)
			continue
		}
		if q, dup := byID[eid]; dup && q.acked() {
			r.problem("publishes %s and %s were both given id %s", q.Data, p.Data, eid)
		}
		byID[eid] = p
		if bySeq[id.Origin] == nil {
			bySeq[id.Origin] = map[uint64]publishRecord{}
		}
		bySeq[id.Origin][id.Seq] = p
		origins[id.Origin] = p.Node
	}
	// An origin is a node's incarnation: its harness name and the first
	// hex digits of the incarnation tell restarts apart.
	originName := func(o uint64) string {
		if n, ok := origins[o]; ok {
			return fmt.Sprintf("%s@%06x", n, o>>40)
		}
		return fmt.Sprintf("%016x", o)
	}
	publishOf := func(p publishRecord) string {
		if p.acked() {
			return p.Data + ", acked"
		}
		return fmt.Sprintf("%s, unacked: %d %s", p.Data, p.Status, p.Err)
	}

	for _, s := range subs {
		r.subProblems = 0
		before := *r
		from := func(d delivery) string {
			c := s.conn(d.Conn)
			resume := c.Resume
			if resume == "" {
				resume = "none"
			}
			return fmt.Sprintf("conn %d from %s at %s (Last-Event-ID %s)", d.Conn, d.Node, d.At.Format("15:04:05.000"), resume)
		}
		for _, d := range s.Resets {
			r.Resets++
			r.problem("%s: rumor.reset on %s: %s", s.Name, from(d), d.Data)
		}
		r.Conns += len(s.Conns)
		nodes := map[string]bool{}
		seen := map[string]delivery{}
		got := map[uint64]map[uint64]delivery{} // origin → seq → delivery
		lastSeq := map[uint64]uint64{}
		for _, d := range s.Events {
			r.Deliveries++
			nodes[d.Node] = true
			if !d.OwnID && d.ID != "" {
				r.NoOwnID++
				r.problem("%s: %s (%s) came without an id line of its own (its id only in a comment), on %s", s.Name, d.ID, d.Data, from(d))
			}
			if d.ID == "" {
				r.problem("%s: an event (%q) without any id, on %s", s.Name, d.Data, from(d))
				continue
			}
			id, err := parseEventID(d.ID)
			if err != nil {
				r.problem("%s: %s: %v", s.Name, from(d), err)
				continue
			}
			if first, dup := seen[d.ID]; dup {
				r.Duplicates++
				r.problem("%s: duplicate %s (%s, origin %s): first on %s, again on %s", s.Name, d.ID, d.Data, originName(id.Origin), from(first), from(d))
				continue
			}
			seen[d.ID] = d
			p, known := byID[d.ID]
			switch {
			case known && p.Data != d.Data:
				r.problem("%s: %s carries %q, its publisher sent %q", s.Name, d.ID, d.Data, p.Data)
			case !known:
				if q, ok := byData[d.Data]; ok && q.acked() {
					r.problem("%s: %q arrived as %s, its publisher was given %s", s.Name, d.Data, d.ID, q.ID)
				} else if !ok {
					r.problem("%s: %s carries %q, which nobody published", s.Name, d.ID, d.Data)
				}
			}
			if q, ok := byData[d.Data]; ok && !q.acked() {
				r.UnackedArrived++
			}
			if prev, ok := lastSeq[id.Origin]; ok && id.Seq <= prev {
				r.OutOfOrder++
				r.problem("%s: origin %s sequence %x (%s) arrived after %x, on %s", s.Name, originName(id.Origin), id.Seq, d.Data, prev, from(d))
			}
			lastSeq[id.Origin] = max(lastSeq[id.Origin], id.Seq)
			if got[id.Origin] == nil {
				got[id.Origin] = map[uint64]delivery{}
			}
			got[id.Origin][id.Seq] = d
		}
		r.NodesPerSub[s.Name] = len(nodes)
		// Gaps: per origin, every sequence between the lowest and the
		// highest this subscriber got that a publisher was given for this
		// channel. An origin's sequence also numbers the events rumor
		// publishes itself on other channels (presence's rumor.census and
		// rumor.presence.*), and a publish that got no id promised
		// nothing: neither is a gap.
		for o, m := range got {
			seqs := slices.Sorted(maps.Keys(m))
			for i := 1; i < len(seqs); i++ {
				lo, hi := seqs[i-1], seqs[i]
				n := 0
				for q := lo + 1; q < hi; q++ {
					if _, ok := bySeq[o][q]; ok {
						n++
					}
				}
				if n == 0 {
					continue
				}
				r.Gaps += n
				var what []string
				for q := lo + 1; q < hi && len(what) < 4; q++ {
					if p, ok := bySeq[o][q]; ok {
						what = append(what, fmt.Sprintf("%x = %s", q, publishOf(p)))
					}
				}
				r.problem("%s: origin %s: sequence %x..%x never arrived, between %x (%s) and %x (%s): %s", s.Name, originName(o),
					lo+1, hi-1, lo, from(m[lo]), hi, from(m[hi]), strings.Join(what, "; "))
			}
		}
		var missing []string
		for _, p := range pubs {
			if p.acked() {
				if _, ok := seen[eventIDOf(p.ID)]; !ok {
					r.Missing++
					missing = append(missing, fmt.Sprintf("%s (%s on %s at %s)", p.ID, p.Data, p.Node, p.Done.Format("15:04:05.000")))
				}
			}
		}
		if len(missing) > 0 {
			r.problem("%s: %d acknowledged events never arrived, first: %s", s.Name, len(missing), strings.Join(missing[:min(5, len(missing))], ", "))
		}
		if r.subProblems > 0 {
			r.BySubscriber = append(r.BySubscriber, fmt.Sprintf("%s: %d problems: %d duplicates, %d out of order, %d skipped, %d acked never arrived, %d without an id line, %d resets; %d connections",
				s.Name, r.subProblems, r.Duplicates-before.Duplicates, r.OutOfOrder-before.OutOfOrder, r.Gaps-before.Gaps,
				r.Missing-before.Missing, r.NoOwnID-before.NoOwnID, r.Resets-before.Resets, len(s.Conns)))
		}
	}
	return r
}

// TestCheck shows that the checker catches each broken promise, so that a
// green chaos test means something.
func TestCheck(t *testing.T) {
	id := func(ms int, origin uint64, seq int) string {
		return fmt.Sprintf("%016x-%016x-%x", uint64(1_700_000_000_000+ms)<<16, origin, seq)
	}
	pub := func(i int, idText string) publishRecord {
		return publishRecord{Publisher: "p", Node: fmt.Sprintf("n%d", i%2+1), Data: fmt.Sprintf("d%d", i), ID: idText, Status: 200}
	}
	// Two origins, interleaved in time: ID order is a1 b1 a2 b2 a3 b3.
	a1, b1, a2, b2, a3, b3 := id(1, 0xa, 1), id(2, 0xb, 1), id(3, 0xa, 2), id(4, 0xb, 2), id(5, 0xa, 3), id(6, 0xb, 3)
	pubs := []publishRecord{pub(0, a1), pub(1, b1), pub(2, a2), pub(3, b2), pub(4, a3), pub(5, b3)}
	// a2 answered 503 (stored, not acknowledged by a peer).
	unackedA2 := slices.Clone(pubs)
	unackedA2[2].Status = 503
	unackedA3 := slices.Clone(pubs)
	unackedA3[4].Status = 503
	dl := func(ids ...string) []delivery {
		var out []delivery
		for _, x := range ids {
			for _, p := range pubs {
				if p.ID == x {
					out = append(out, delivery{ID: x, SSEID: x, OwnID: true, Data: p.Data, Node: "n1", Conn: 1, At: time.Now()})
				}
			}
		}
		return out
	}
	all := dl(a1, b1, a2, b2, a3, b3)
	// The same, with resume information after the ids.
	tilde := dl(a1, b1, a2, b2, a3, b3)
	for i := range tilde {
		tilde[i].SSEID += fmt.Sprintf("~%d.a-%d.b", i, i)
	}
	// b2's id came as a ": late id:" comment.
	comment := dl(a1, b1, a2, b2, a3, b3)
	comment[3].OwnID, comment[3].SSEID = false, ""
	tests := []struct {
		name   string
		pubs   []publishRecord
		events []delivery
		resets []delivery
		want   string // a problem containing this; "" means none
		count  func(*report) int
		n      int // what count must return
	}{
		{"all in order", pubs, all, nil, "", nil, 0},
		{"resume information after the id", pubs, tilde, nil, "", nil, 0},
		{"gap", pubs, dl(a1, b1, b2, a3, b3), nil, "sequence 2..2 never arrived, between 1 (conn 1 from n1", func(r *report) int { return r.Gaps }, 1},
		{"gap of an acked event is missing too", pubs, dl(a1, b1, b2, a3, b3), nil, "1 acknowledged events never arrived", func(r *report) int { return r.Missing }, 1},
		{"gap of an unacknowledged event", unackedA2, dl(a1, b1, b2, a3, b3), nil, "2 = d2, unacked: 503", func(r *report) int { return r.Gaps }, 1},
		// Origin a's sequence 2 went to another channel (rumor's presence
		// events number with the origin's): not a gap.
		{"a sequence no publisher had", slices.Delete(slices.Clone(pubs), 2, 3), dl(a1, b1, b2, a3, b3), nil, "", nil, 0},
		{"unacknowledged last event may be missing", unackedA3, dl(a1, b1, a2, b2, b3), nil, "", nil, 0},
		{"missing at the end", pubs, dl(a1, b1, a2, b2, a3), nil, "1 acknowledged events never arrived, first: " + b3, func(r *report) int { return r.Gaps }, 0},
		{"duplicate", pubs, dl(a1, b1, b1, a2, b2, a3, b3), nil, "duplicate " + b1, func(r *report) int { return r.Duplicates }, 1},
		{"origins interleave freely", pubs, dl(a1, a2, a3, b1, b2, b3), nil, "", nil, 0},
		{"origin order", pubs, dl(a2, a1, b1, b2, a3, b3), nil, "sequence 1 (d0) arrived after 2", func(r *report) int { return r.OutOfOrder }, 1},
		{"no id line of its own", pubs, comment, nil, b2 + " (d3) came without an id line of its own", func(r *report) int { return r.NoOwnID }, 1},
		{"no id at all", pubs, []delivery{{Data: "d0", Node: "n1", Conn: 1}}, nil, `an event ("d0") without any id`, nil, 0},
		{"reset", pubs, all, []delivery{{Type: "rumor.reset", Data: "{}"}}, "rumor.reset", func(r *report) int { return r.Resets }, 1},
		{"wrong data", pubs, []delivery{{ID: a1, OwnID: true, Data: "d1"}}, nil, `carries "d1", its publisher sent "d0"`, nil, 0},
		{"unknown event", pubs[:1], []delivery{{ID: a1, OwnID: true, Data: "d0"}, {ID: b1, OwnID: true, Data: "zz"}}, nil, "which nobody published", nil, 0},
		{"same id twice", append([]publishRecord{pub(9, a1)}, pubs...), all, nil, "were both given id", nil, 0},
		{"unacked may be missing", append([]publishRecord{{Data: "x", Status: 503}}, pubs...), all, nil, "", nil, 0},
	}
	t.Run("every subscriber's problems show", func(t *testing.T) {
		dups := dl(a1, a1, a1, a1, a1, a1, a1, a1, a1, a1, b1, a2, b2, a3, b3)
		r := check(pubs, []subscriberLog{{Name: "s1", Events: dups}, {Name: "s2", Events: dl(a1, b1, b2, a3, b3)}})
		got := strings.Join(r.Problems, "\n")
		if r.Duplicates != 9 || !strings.Contains(got, "s2: origin") || len(r.BySubscriber) != 2 {
			t.Errorf("check() = %s\nwant 9 duplicates of s1 counted, s2's gap listed, and a line per subscriber", r)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := check(tt.pubs, []subscriberLog{{Name: "s1", Events: tt.events, Resets: tt.resets}})
			got := strings.Join(r.Problems, "\n")
			switch {
			case tt.want == "" && !r.OK():
				t.Errorf("check() problems:\n%s\nwant none", got)
			case tt.want != "" && !strings.Contains(got, tt.want):
				t.Errorf("check() problems:\n%s\nwant one containing %q", got, tt.want)
			}
			if tt.count != nil {
				if n := tt.count(r); n != tt.n {
					t.Errorf("check() counted %d, want %d; summary: %s", n, tt.n, r.Summary())
				}
			}
		})
	}
}
