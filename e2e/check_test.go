package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// eventID is an event id as a client sees it:
// "TTTTTTTTTTTTTTTT-OOOOOOOOOOOOOOOO-S", hex, ordered by time, origin, seq.
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

func (a eventID) less(b eventID) bool {
	if a.Time != b.Time {
		return a.Time < b.Time
	}
	if a.Origin != b.Origin {
		return a.Origin < b.Origin
	}
	return a.Seq < b.Seq
}

// Unix is the wall-clock part of the id's hybrid logical clock time.
func (a eventID) Unix() time.Time { return time.UnixMilli(int64(a.Time >> 16)) }

// checkPolicy says which departures from ID order a scenario expects.
type checkPolicy struct {
	// Late says why an event that reached a subscriber after an event with
	// a larger id is expected there; ok false makes it a problem. nil
	// means no such event is expected.
	Late func(id eventID, d delivery) (reason string, ok bool)
}

// lateDelivery is an event a subscriber got out of ID order.
type lateDelivery struct {
	Subscriber string
	ID         string
	Origin     string        // the node that published it
	Node       string        // the node that delivered it
	Behind     time.Duration // how far its time is below the largest id seen before it
	Reason     string
}

// report is the checker's verdict.
type report struct {
	Published       int // publish attempts
	Acked           int // answered 200: must reach every subscriber exactly once
	Unacked         int // failed or unanswered: may arrive, at most once
	Deliveries      int
	UnackedArrived  int // deliveries of events whose publisher got no 200
	Conns           int
	NodesPerSub     map[string]int // subscriber → distinct nodes it read from
	Late            []lateDelivery
	LateBy          map[string]int // "origin → delivering node: reason" → count
	Problems        []string
	problemsDropped int
}

func (r *report) problem(format string, args ...any) {
	if len(r.Problems) >= 60 {
		r.problemsDropped++
		return
	}
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// OK reports whether every promise held.
func (r *report) OK() bool { return len(r.Problems) == 0 }

// Summary is one line for logs and docs.
func (r *report) Summary() string {
	return fmt.Sprintf("%d publishes, %d acked, %d unacked (%d of their deliveries arrived); %d deliveries over %d connections; %d late; %d problems",
		r.Published, r.Acked, r.Unacked, r.UnackedArrived, r.Deliveries, r.Conns, len(r.Late), len(r.Problems)+r.problemsDropped)
}

func (r *report) String() string {
	var b strings.Builder
	b.WriteString(r.Summary())
	b.WriteByte('\n')
	for k, n := range r.LateBy {
		fmt.Fprintf(&b, "  late: %s: %d\n", k, n)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  PROBLEM: %s\n", p)
	}
	if r.problemsDropped > 0 {
		fmt.Fprintf(&b, "  … and %d more problems\n", r.problemsDropped)
	}
	return b.String()
}

// check holds the workload's records to rumor's promises:
//   - every acknowledged event reaches every subscriber exactly once, with
//     the id and data its publisher was given;
//   - an unacknowledged event reaches a subscriber at most once;
//   - each subscriber sees each origin's events in sequence order;
//   - each subscriber sees events in ID order, the order every node
//     delivers in, except the late events the policy expects;
//   - no subscriber is told rumor.reset.
func check(pubs []publishRecord, subs []subscriberLog, pol checkPolicy) *report {
	r := &report{NodesPerSub: map[string]int{}, LateBy: map[string]int{}}
	byID := map[string]publishRecord{}
	byData := map[string]publishRecord{}
	origins := map[uint64]string{} // origin → node name
	for _, p := range pubs {
		r.Published++
		byData[p.Data] = p
		if !p.acked() {
			r.Unacked++
			if p.ID != "" {
				byID[p.ID] = p
			}
			continue
		}
		r.Acked++
		id, err := parseEventID(p.ID)
		if err != nil {
			r.problem("publish %s to %s: 200 with %v", p.Data, p.Node, err)
			continue
		}
		if q, dup := byID[p.ID]; dup && q.acked() {
			r.problem("publishes %s and %s were both given id %s", q.Data, p.Data, p.ID)
		}
		byID[p.ID] = p
		origins[id.Origin] = p.Node
	}
	originName := func(o uint64) string {
		if n, ok := origins[o]; ok {
			return n
		}
		return fmt.Sprintf("%016x", o)
	}

	for _, s := range subs {
		for _, d := range s.Resets {
			r.problem("%s: rumor.reset on conn %d from %s at %s: %s", s.Name, d.Conn, d.Node, d.At.Format("15:04:05.000"), d.Data)
		}
		r.Conns += len(s.Conns)
		nodes := map[string]bool{}
		seen := map[string]delivery{}
		lastSeq := map[uint64]uint64{}
		var maxID eventID
		var maxText string
		for _, d := range s.Events {
			r.Deliveries++
			nodes[d.Node] = true
			id, err := parseEventID(d.ID)
			if err != nil {
				r.problem("%s: conn %d from %s: %v", s.Name, d.Conn, d.Node, err)
				continue
			}
			if first, dup := seen[d.ID]; dup {
				r.problem("%s: duplicate %s (%s): conn %d from %s, again on conn %d from %s", s.Name, d.ID, d.Data, first.Conn, first.Node, d.Conn, d.Node)
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
				r.problem("%s: origin %s sequence %x arrived after %x (conn %d from %s)", s.Name, originName(id.Origin), id.Seq, prev, d.Conn, d.Node)
			}
			lastSeq[id.Origin] = max(lastSeq[id.Origin], id.Seq)
			if id.less(maxID) {
				ld := lateDelivery{Subscriber: s.Name, ID: d.ID, Origin: originName(id.Origin), Node: d.Node,
					Behind: maxID.Unix().Sub(id.Unix())}
				reason, ok := "", false
				if pol.Late != nil {
					reason, ok = pol.Late(id, d)
				}
				if !ok {
					r.problem("%s: %s from %s arrived out of ID order, %v behind %s (conn %d from %s)", s.Name, d.ID, ld.Origin, ld.Behind, maxText, d.Conn, d.Node)
				} else {
					ld.Reason = reason
					r.Late = append(r.Late, ld)
					r.LateBy[fmt.Sprintf("published on %s, delivered by %s: %s", ld.Origin, ld.Node, reason)]++
				}
			} else {
				maxID, maxText = id, d.ID
			}
		}
		r.NodesPerSub[s.Name] = len(nodes)
		var missing []string
		for _, p := range pubs {
			if p.acked() {
				if _, ok := seen[p.ID]; !ok {
					missing = append(missing, fmt.Sprintf("%s (%s on %s at %s)", p.ID, p.Data, p.Node, p.Done.Format("15:04:05.000")))
				}
			}
		}
		if len(missing) > 0 {
			r.problem("%s: %d acknowledged events never arrived, first: %s", s.Name, len(missing), strings.Join(missing[:min(5, len(missing))], ", "))
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
	// Two origins, interleaved in time: ID order is a1 b1 a2 b2.
	a1, b1, a2, b2 := id(1, 0xa, 1), id(2, 0xb, 1), id(3, 0xa, 2), id(4, 0xb, 2)
	pubs := []publishRecord{pub(0, a1), pub(1, b1), pub(2, a2), pub(3, b2)}
	dl := func(ids ...string) []delivery {
		var out []delivery
		for _, x := range ids {
			for _, p := range pubs {
				if p.ID == x {
					out = append(out, delivery{ID: x, Data: p.Data, Node: "n1", Conn: 1, At: time.Now()})
				}
			}
		}
		return out
	}
	anyLate := checkPolicy{Late: func(eventID, delivery) (string, bool) { return "expected", true }}
	tests := []struct {
		name   string
		pubs   []publishRecord
		events []delivery
		resets []delivery
		pol    checkPolicy
		want   string // a problem containing this; "" means none
		late   int
	}{
		{"all in order", pubs, dl(a1, b1, a2, b2), nil, checkPolicy{}, "", 0},
		{"gap", pubs, dl(a1, b1, b2), nil, checkPolicy{}, "1 acknowledged events never arrived", 0},
		{"duplicate", pubs, dl(a1, b1, b1, a2, b2), nil, checkPolicy{}, "duplicate " + b1, 0},
		{"id order", pubs, dl(a1, a2, b1, b2), nil, checkPolicy{}, b1 + " from n2 arrived out of ID order", 0},
		{"expected late", pubs, dl(a1, a2, b1, b2), nil, anyLate, "", 1},
		{"origin order", pubs, dl(a2, a1, b1, b2), nil, anyLate, "sequence 1 arrived after 2", 2},
		{"reset", pubs, dl(a1, b1, a2, b2), []delivery{{Type: "rumor.reset", Data: "{}"}}, checkPolicy{}, "rumor.reset", 0},
		{"wrong data", pubs, []delivery{{ID: a1, Data: "d1"}}, nil, checkPolicy{}, `carries "d1", its publisher sent "d0"`, 0},
		{"unknown event", pubs[:1], []delivery{{ID: a1, Data: "d0"}, {ID: b1, Data: "zz"}}, nil, checkPolicy{}, "which nobody published", 0},
		{"same id twice", append([]publishRecord{pub(9, a1)}, pubs...), dl(a1, b1, a2, b2), nil, checkPolicy{}, "were both given id", 0},
		{"unacked may be missing", append([]publishRecord{{Data: "x", Status: 503}}, pubs...), dl(a1, b1, a2, b2), nil, checkPolicy{}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := check(tt.pubs, []subscriberLog{{Name: "s1", Events: tt.events, Resets: tt.resets}}, tt.pol)
			got := strings.Join(r.Problems, "\n")
			switch {
			case tt.want == "" && !r.OK():
				t.Errorf("check() problems:\n%s\nwant none", got)
			case tt.want != "" && !strings.Contains(got, tt.want):
				t.Errorf("check() problems:\n%s\nwant one containing %q", got, tt.want)
			}
			if len(r.Late) != tt.late {
				t.Errorf("check() found %d late events, want %d", len(r.Late), tt.late)
			}
		})
	}
}
