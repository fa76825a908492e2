package broker_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

func TestIDStringRoundTrip(t *testing.T) {
	ids := []broker.ID{
		{Time: 1, Origin: 1, Seq: 1},
		{Time: 0x0192a3b4c5d60001, Origin: 0xdeadbeefcafef00d, Seq: 0x10},
		{Time: math.MaxUint64, Origin: math.MaxUint64, Seq: math.MaxUint64},
		{Time: 1 << 16, Origin: 42, Seq: 0xabc},
	}
	for _, id := range ids {
		s := id.String()
		if got := string(id.Append([]byte("x"))); got != "x"+s {
			t.Errorf("%v.Append(x) = %q, want %q", id, got, "x"+s)
		}
		got, err := broker.ParseID(s)
		if err != nil || got != id {
			t.Errorf("ParseID(%q) = %v, %v, want %v, nil", s, got, err, id)
		}
	}
	if got, want := (broker.ID{Time: 0x10, Origin: 0xab, Seq: 0x1f}).String(), "0000000000000010-00000000000000ab-1f"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestIDOrder(t *testing.T) {
	// Sorted by Time, then Origin, then Seq; Seq compares numerically.
	sorted := []broker.ID{
		{Time: 1, Origin: 9, Seq: 9},
		{Time: 2, Origin: 1, Seq: 5},
		{Time: 2, Origin: 1, Seq: 0x10},
		{Time: 2, Origin: 2, Seq: 1},
		{Time: 3, Origin: 1, Seq: 1},
	}
	for i, a := range sorted {
		for j, b := range sorted {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", a, b, got, want)
			}
			if got := a.Less(b); got != (want < 0) {
				t.Errorf("%v.Less(%v) = %v, want %v", a, b, got, want < 0)
			}
		}
	}
	if !(broker.ID{}).IsZero() || (broker.ID{Seq: 1}).IsZero() {
		t.Error("IsZero is wrong")
	}
	if got, want := (broker.ID{Time: 1234 << 16}).Unix(), time.UnixMilli(1234); !got.Equal(want) {
		t.Errorf("Unix() = %v, want %v", got, want)
	}
}

func TestParseIDRejects(t *testing.T) {
	good := "0000000000000010-00000000000000ab-1f"
	if _, err := broker.ParseID(good); err != nil {
		t.Fatalf("ParseID(%q) = %v", good, err)
	}
	bad := []string{
		"",
		"1",
		"0000000000000010-00000000000000AB-1f",                         // upper case origin
		"0000000000000010-00000000000000ab-1F",                         // upper case seq
		"000000000000010-00000000000000ab-1f",                          // time too short
		"00000000000000010-00000000000000ab-1f",                        // time too long
		"0000000000000010-0000000000000ab-1f",                          // origin too short
		"0000000000000010-000000000000000ab-1f",                        // origin too long
		"0000000000000000-00000000000000ab-1f",                         // zero time
		"0000000000000010-0000000000000000-1f",                         // zero origin
		"0000000000000010-00000000000000ab-0",                          // zero seq
		"0000000000000010-00000000000000ab-01f",                        // leading zero in seq
		"0000000000000010-00000000000000ab-",                           // no seq
		"0000000000000010-00000000000000ab-1f-1",                       // extra dash
		"0000000000000010-00000000000000ab--1",                         // extra dash
		"0000000000000010_00000000000000ab-1f",                         // wrong separator
		"+000000000000010-00000000000000ab-1f",                         // sign
		"0000000000000010-00000000000000ab-1g",                         // not hex
		"0000000000000010-00000000000000ab-1 ",                         // space
		" 0000000000000010-00000000000000ab-1f",                        // space
		"0000000000000010-00000000000000ab-1ffffffffffffffff",          // seq too long
		"0000000000000010-00000000000000ab-" + strings.Repeat("f", 17), // seq over 64 bits
		good + strings.Repeat("0", 1000),                               // long input
		"0x00000000000010-00000000000000ab-1f",                         // 0x prefix
		"0000000000000010-00000000000000ab-１",                          // non-ASCII
	}
	for _, s := range bad {
		id, err := broker.ParseID(s)
		if !errors.Is(err, broker.ErrBadID) {
			t.Errorf("ParseID(%q) = %v, %v, want ErrBadID", s, id, err)
		}
		if err != nil && len(err.Error()) > 120 {
			t.Errorf("ParseID(%q) error is %d bytes long; hostile input must be clipped", s, len(err.Error()))
		}
	}
}

func FuzzParseID(f *testing.F) {
	f.Add("0000000000000010-00000000000000ab-1f")
	f.Add("ffffffffffffffff-ffffffffffffffff-ffffffffffffffff")
	f.Add("0000000000000010-00000000000000ab-01")
	f.Add("0000000000000010-00000000000000AB-1")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := broker.ParseID(s)
		if err != nil {
			if !errors.Is(err, broker.ErrBadID) {
				t.Fatalf("ParseID(%q) = %v, want an ErrBadID", s, err)
			}
			return
		}
		if got := id.String(); got != s {
			t.Fatalf("ParseID(%q).String() = %q, want the input back", s, got)
		}
		if id.Origin == 0 || id.Seq == 0 || id.Time == 0 {
			t.Fatalf("ParseID(%q) = %+v, a zero field", s, id)
		}
	})
}

// fakeWall is a wall clock the test moves by hand, in any direction.
type fakeWall struct{ ms int64 }

func (w *fakeWall) now() time.Time { return time.UnixMilli(w.ms) }

func TestClockMonotonic(t *testing.T) {
	wall := &fakeWall{ms: 1_000_000}
	c := &broker.Clock{Now: wall.now}
	var got []uint64
	steps := []int64{0, 0, 0, 5, -3, -1000, 0, 1, 2000, -2000} // stuck, forward, backwards
	for _, d := range steps {
		wall.ms += d
		got = append(got, c.Next())
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("Next() returned %#x after %#x (wall steps %v): not increasing", got[i], got[i-1], steps[:i+1])
		}
	}
	// It follows the wall clock when that moves ahead.
	wall.ms = 5_000_000
	if got, want := c.Next(), uint64(5_000_000)<<16; got != want {
		t.Errorf("Next() after the wall clock jumped ahead = %#x, want %#x", got, want)
	}
}

func TestClockObserve(t *testing.T) {
	wall := &fakeWall{ms: 1_000}
	c := &broker.Clock{Now: wall.now}
	peer := uint64(9_000)<<16 | 7
	c.Observe(peer)
	if got := c.Next(); got <= peer {
		t.Errorf("Next() after Observe(%#x) = %#x, want more", peer, got)
	}
	c.Observe(5) // an old time moves nothing
	a := c.Next()
	if b := c.Next(); b <= a {
		t.Errorf("Next() = %#x after %#x", b, a)
	}
	if w := c.Watermark(); w < peer {
		t.Errorf("Watermark() = %#x, below the observed %#x", w, peer)
	}
}

func TestClockWatermarkBelowLaterNext(t *testing.T) {
	// The watermark is a promise to peers: no later Next is at or below it,
	// even if the wall clock steps back (NTP) right after it was given.
	for _, back := range []int64{0, 1, 10, 10_000} {
		wall := &fakeWall{ms: 100_000}
		c := &broker.Clock{Now: wall.now}
		c.Next()
		wall.ms += 50
		w := c.Watermark()
		if w < uint64(wall.ms-1)<<16 {
			t.Errorf("Watermark() = %#x, want at least the wall clock's previous millisecond", w)
		}
		wall.ms -= back
		if n := c.Next(); n <= w {
			t.Errorf("wall clock back %dms: Next() = %#x, not above the earlier Watermark() %#x", back, n, w)
		}
	}
	// Watermark alone never goes backwards either.
	wall := &fakeWall{ms: 100_000}
	c := &broker.Clock{Now: wall.now}
	var last uint64
	for _, d := range []int64{0, 10, -5, 0, -100, 200} {
		wall.ms += d
		w := c.Watermark()
		if w < last {
			t.Errorf("Watermark() = %#x after %#x", w, last)
		}
		last = w
	}
}

func TestClockZeroUsesTimeNow(t *testing.T) {
	var c broker.Clock
	before := uint64(time.Now().UnixMilli()) << 16
	got := c.Next()
	after := uint64(time.Now().UnixMilli()+1) << 16
	if got < before || got >= after {
		t.Errorf("Next() = %#x, want within [%#x, %#x)", got, before, after)
	}
}
