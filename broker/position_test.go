package broker_test

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/rumorhq/rumor/broker"
)

func randomPosition(r *rand.Rand, origins []uint64) broker.Position {
	p := broker.Position{
		Last:   broker.ID{Time: 1 + r.Uint64N(1000), Origin: origins[r.IntN(len(origins))], Seq: 1 + r.Uint64N(50)},
		Stable: r.Uint64N(1000),
	}
	for _, o := range origins {
		if r.IntN(3) == 0 {
			t := r.Uint64N(1000)
			if o == p.Last.Origin {
				t = max(t, p.Last.Time) // a position includes its own event
			}
			p.Marks = append(p.Marks, broker.Mark{Origin: o, Time: t})
		}
	}
	return p
}

func TestPositionText(t *testing.T) {
	id := broker.ID{Time: 0x18bcfe568000001, Origin: 0xabc, Seq: 0x1f}
	for _, tc := range []struct {
		p    broker.Position
		want string
	}{
		{broker.PositionOf(id), "018bcfe568000001-0000000000000abc-1f"},
		{broker.Position{Last: id, Stable: 0x10}, "018bcfe568000001-0000000000000abc-1f~10"},
		{broker.Position{Last: id, Stable: id.Time, Marks: []broker.Mark{{Origin: 7, Time: 0}, {Origin: 0xfe, Time: 0x2a}}}, "018bcfe568000001-0000000000000abc-1f~18bcfe568000001~7.0~fe.2a"},
		{broker.Position{Stable: 0x10}, "0~10"},                                      // no event: a head before the first
		{broker.Position{Marks: []broker.Mark{{Origin: 7, Time: 0x2a}}}, "0~0~7.2a"}, // nothing but one origin's events
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
		back, err := broker.ParsePosition(tc.want)
		if err != nil || back.String() != tc.want {
			t.Errorf("ParsePosition(%q) = %v, %v", tc.want, back, err)
		}
	}
	r := rand.New(rand.NewPCG(3, 3))
	for range 1000 {
		p := randomPosition(r, []uint64{1, 2, 0xffffffffffffffff})
		s := p.String()
		back, err := broker.ParsePosition(s)
		if err != nil {
			t.Fatalf("ParsePosition(%q) = %v", s, err)
		}
		if back.String() != s {
			t.Fatalf("ParsePosition(%q).String() = %q", s, back.String())
		}
	}
}

func TestParsePositionRefuses(t *testing.T) {
	id := "018bcfe568000001-0000000000000abc-1f"
	for _, s := range []string{
		"", "~", id + "~", id + "~~", id + "~010", id + "~10~", id + "~10~7", id + "~10~7.", id + "~10~.5",
		id + "~10~0.5",            // origin zero
		id + "~10~8.1~7.1",        // marks out of order
		id + "~10~7.1~7.2",        // the same origin twice
		id + "~18bcfe568000001",   // the bare id's meaning, written long
		id + "~10~7.1" + "\n",     // a line break
		id + "~10000000000000000", // 17 hex digits
		id + "~10" + strings.Repeat("~7.1", 300),
		"018bcfe568000001-0000000000000abc-0~10",
		"0", "0~0", "00~10", "0~", "0000000000000000-0000000000000000-0~10", // no event: never bare, never the zero Position
	} {
		if p, err := broker.ParsePosition(s); err == nil {
			t.Errorf("ParsePosition(%q) = %v, want an error", s, p)
		}
	}
}

// TestPositionJoinCovers checks Join and Covers against thresholds per
// origin, the model of what a position means.
func TestPositionJoinCovers(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	origins := []uint64{1, 2, 3, 4}
	probe := append(slices.Clone(origins), 99) // 99: an origin neither names
	for range 5000 {
		p, q := randomPosition(r, origins[:3]), randomPosition(r, origins[1:])
		last := broker.ID{Time: 1 + r.Uint64N(1000), Origin: origins[r.IntN(4)], Seq: 1}
		// Join's own last event must be within what it claims, as every
		// caller's is: its origin is at or past it in one of the two.
		if max(p.Threshold(last.Origin), q.Threshold(last.Origin)) < last.Time {
			continue
		}
		j := p.Join(q, last)
		covers := true
		for _, o := range probe {
			want := max(p.Threshold(o), q.Threshold(o))
			if got := j.Threshold(o); got != want {
				t.Fatalf("%v.Join(%v, %v) = %v: threshold of %d = %d, want %d", p, q, last, j, o, got, want)
			}
			if q.Threshold(o) > p.Threshold(o) {
				covers = false
			}
		}
		if p.Covers(q) && !covers {
			t.Fatalf("%v.Covers(%v) = true, but some origin's threshold is higher in q", p, q)
		}
		if !j.Covers(p) || !j.Covers(q) {
			t.Fatalf("%v, the join of %v and %v, does not cover both", j, p, q)
		}
		if back, err := broker.ParsePosition(j.String()); err != nil || back.String() != j.String() {
			t.Fatalf("ParsePosition(%q) = %v, %v", j.String(), back, err)
		}
	}
}

func FuzzParsePosition(f *testing.F) {
	f.Add("018bcfe568000001-0000000000000abc-1f")
	f.Add("018bcfe568000001-0000000000000abc-1f~10~7.0~fe.2a")
	f.Add("018bcfe568000001-0000000000000abc-1f~0")
	f.Add("0~10~7.2a")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := broker.ParsePosition(s)
		if err != nil {
			return
		}
		if got := p.String(); got != s {
			t.Fatalf("ParsePosition(%q).String() = %q", s, got)
		}
		if !p.Includes(p.Last) {
			t.Fatalf("%q does not include its own event", s)
		}
	})
}
