package broker

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// TestSeenModel checks seen against a plain set of sequence numbers.
func TestSeenModel(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 3))
		var s seen
		have := map[uint64]bool{}
		now := time.Unix(0, 0)
		for range 400 {
			now = now.Add(time.Duration(r.IntN(3)) * time.Second)
			if r.IntN(10) == 0 {
				skipped := s.abandon(now, 5*time.Second)
				if skipped > 0 {
					// The model: the lowest missing run is now held.
					low := uint64(1)
					for have[low] {
						low++
					}
					for ; !have[low]; low++ {
						have[low] = true
						skipped--
					}
					if skipped != 0 {
						t.Fatalf("seed %d: abandon skipped a run of the wrong length", seed)
					}
				}
			} else {
				q := uint64(1 + r.IntN(60))
				if got := s.add(q, now); got == have[q] {
					t.Fatalf("seed %d: add(%d) = %v, held before: %v", seed, q, got, have[q])
				}
				have[q] = true
			}
			var contig, maxSeq uint64
			for contig+1 <= 60 && have[contig+1] {
				contig++
			}
			var want []Range
			for q := uint64(1); q <= 60; q++ {
				if have[q] {
					maxSeq = q
				}
			}
			for q := contig + 1; q < maxSeq; q++ {
				if !have[q] {
					if n := len(want); n > 0 && want[n-1].To == q-1 {
						want[n-1].To = q
					} else {
						want = append(want, Range{q, q})
					}
				}
			}
			if s.contig != contig || s.max != maxSeq {
				t.Fatalf("seed %d: contig, max = %d, %d; want %d, %d", seed, s.contig, s.max, contig, maxSeq)
			}
			if got := s.gaps(1000); !slices.Equal(got, want) {
				t.Fatalf("seed %d: gaps() = %v, want %v", seed, got, want)
			}
			if got := s.gaps(2); !slices.Equal(got, want[:min(2, len(want))]) {
				t.Fatalf("seed %d: gaps(2) = %v, want %v", seed, got, want[:min(2, len(want))])
			}
			if s.stuck.IsZero() != (len(want) == 0) {
				t.Fatalf("seed %d: stuck = %v with gaps %v", seed, s.stuck, want)
			}
		}
	}
}

// checkHub verifies the hub's indexes agree: channel logs, arrival queue,
// origin logs, byte and event counts, bounds, and pattern registrations.
func checkHub(tb testing.TB, h *Hub) {
	tb.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	live := map[*entry]bool{}
	var events int
	var bytes int64
	for name, c := range h.channels {
		if c.name != name {
			tb.Fatalf("channel %q stored under %q", c.name, name)
		}
		for _, en := range c.log.entries[:c.log.head] {
			if en != nil {
				tb.Fatalf("channel %q keeps a reference before head", name)
			}
		}
		var cb int64
		for i, en := range c.log.live() {
			if en.removed || en.e == nil {
				tb.Fatalf("channel %q holds a removed entry %v", name, en.id)
			}
			if i > 0 && c.log.live()[i-1].n >= en.n {
				tb.Fatalf("channel %q out of order at %d", name, i)
			}
			if en.e.Channel != name {
				tb.Fatalf("channel %q holds an event of %q", name, en.e.Channel)
			}
			cb += int64(en.e.Size())
			live[en] = true
		}
		if cb != c.log.bytes {
			tb.Fatalf("channel %q counts %d bytes, holds %d", name, c.log.bytes, cb)
		}
		if c.log.len() > h.hist.size {
			tb.Fatalf("channel %q holds %d events, over %d", name, c.log.len(), h.hist.size)
		}
		for s := range c.subs {
			if !slices.Contains(s.channels, c) {
				tb.Fatalf("channel %q lists a subscription that does not list it", name)
			}
		}
		for s := range h.wild {
			if _, in := c.subs[s]; in != s.matches(name) {
				tb.Fatalf("pattern subscription %v registered on %q: %v, matches: %v", s.patterns, name, in, s.matches(name))
			}
		}
		events += c.log.len()
		bytes += cb
	}
	if events != h.hist.events || bytes != h.hist.bytes {
		tb.Fatalf("history counts %d events, %d bytes; channels hold %d, %d", h.hist.events, h.hist.bytes, events, bytes)
	}
	if h.hist.bytes > h.hist.budget {
		tb.Fatalf("history holds %d bytes, over %d", h.hist.bytes, h.hist.budget)
	}
	// The arrival queue: every live entry once, in arrival order, dead counted.
	inQueue := 0
	dead := 0
	var last time.Time
	for _, en := range h.hist.arrival.items[h.hist.arrival.head:] {
		if en.removed {
			dead++
			continue
		}
		if !live[en] {
			tb.Fatalf("arrival queue holds %v, in no channel", en.id)
		}
		if en.arrived.Before(last) {
			tb.Fatalf("arrival queue out of order at %v", en.id)
		}
		last = en.arrived
		inQueue++
	}
	if q := &h.hist.arrival; q.head > 64 && q.head > len(q.items)/2 {
		tb.Fatalf("arrival queue keeps %d slots for %d entries: it grows forever", len(q.items), len(q.items)-q.head)
	}
	if inQueue != len(live) || dead != h.hist.arrival.dead {
		tb.Fatalf("arrival queue holds %d live, %d dead (counted %d); channels hold %d", inQueue, dead, h.hist.arrival.dead, len(live))
	}
	// Origin logs: sequence order, every live entry, dead counted.
	inOrigins := 0
	for o, log := range h.hist.origins {
		dead := 0
		for i, en := range log.entries {
			if en.id.Origin != o {
				tb.Fatalf("origin %x log holds %v", o, en.id)
			}
			if i > 0 && log.entries[i-1].id.Seq >= en.id.Seq {
				tb.Fatalf("origin %x log out of order at %d", o, i)
			}
			if en.removed {
				dead++
				continue
			}
			if !live[en] {
				tb.Fatalf("origin %x log holds %v, in no channel", o, en.id)
			}
			inOrigins++
		}
		if dead != log.dead {
			tb.Fatalf("origin %x log counts %d dead, holds %d", o, log.dead, dead)
		}
		if dead == len(log.entries) {
			tb.Fatalf("origin %x log is all dead and kept", o)
		}
	}
	if inOrigins != len(live) {
		tb.Fatalf("origin logs hold %d live entries, channels %d", inOrigins, len(live))
	}
	// Nothing blocked could go out: each waits behind a missing event.
	for o, st := range h.orders {
		for _, e := range st.blocked {
			if e.ID.Seq <= st.next {
				tb.Fatalf("origin %x: %v blocked though next is %d", o, e.ID, st.next)
			}
		}
	}
}

// TestHistoryIndexes drives a hub through random publishes, in-order and
// late peer events, subscriptions and time, and checks every index after
// each step.
func TestHistoryIndexes(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 9))
			var wallMS atomic.Int64 // the sweep reads it too
			wallMS.Store(1_700_000_000_000)
			now := func() time.Time { return time.UnixMilli(wallMS.Load()) }
			h := NewHub(Options{
				HistorySize:  5,
				HistoryBytes: 3000,
				HistoryTTL:   20 * time.Second,
				QueueSize:    1 << 16,
				Now:          now,
			})
			defer h.Close()
			chans := []string{"a", "b", "c.x", "c.y", "d.e.f"}
			pats := []string{"a", "c.*", "c.>", "*.x", ">", "b"}
			var subs []*Subscription
			peerSeq := map[uint64]uint64{} // the next sequence per peer origin
			holes := map[uint64][]uint64{} // sequences skipped, delivered later
			// Long enough for the origin logs to compact themselves.
			for step := range 3000 {
				switch k := r.IntN(20); {
				case k < 8:
					data := make([]byte, 1+r.IntN(300))
					for i := range data {
						data[i] = 'x'
					}
					ch := chans[r.IntN(len(chans))]
					if _, _, err := h.Publish(t.Context(), []Message{{Channel: ch, Data: data}}, AckLocal); err != nil {
						t.Fatal(err)
					}
				case k < 12:
					// A peer's event: the next in sequence (sometimes
					// skipping one), or one skipped before (repair); its
					// time now, or late (below what was released).
					o := uint64(1 + r.IntN(3))
					if peerSeq[o] == 0 {
						peerSeq[o] = 20 // seen first in the middle: 1-19 come later
						for q := uint64(1); q < 20; q++ {
							holes[o] = append(holes[o], q)
						}
					}
					var seq uint64
					if len(holes[o]) > 0 && r.IntN(4) == 0 {
						i := r.IntN(len(holes[o]))
						seq = holes[o][i]
						holes[o] = slices.Delete(holes[o], i, i+1)
					} else {
						if r.IntN(8) == 0 {
							holes[o] = append(holes[o], peerSeq[o])
							peerSeq[o]++
						}
						seq = peerSeq[o]
						peerSeq[o]++
					}
					tm := uint64(wallMS.Load()) << 16
					if r.IntN(3) == 0 {
						tm -= uint64(r.IntN(5000)) << 16
					}
					h.Deliver(&Event{ID: ID{Time: tm, Origin: o, Seq: seq}, Channel: chans[r.IntN(len(chans))], Data: []byte("peer")})
				case k < 14:
					var ps []Pattern
					for range 1 + r.IntN(2) {
						p, _ := ParsePattern(pats[r.IntN(len(pats))])
						ps = append(ps, p)
					}
					s, err := h.Subscribe(SubscribeRequest{Patterns: ps})
					if err != nil {
						t.Fatal(err)
					}
					subs = append(subs, s)
				case k < 16 && len(subs) > 0:
					i := r.IntN(len(subs))
					subs[i].Close()
					subs = slices.Delete(subs, i, i+1)
				case k < 17:
					h.mu.Lock()
					h.hist.expire(now()) // what the sweep does
					h.mu.Unlock()
				default:
					wallMS.Add(int64(r.IntN(3000)))
				}
				if step < 300 || step%17 == 0 {
					checkHub(t, h)
				}
				if t.Failed() {
					t.Fatalf("after step %d", step)
				}
			}
		})
	}
}

func TestIdempotencyCompaction(t *testing.T) {
	m := idempotency{ttl: time.Hour, limit: 10}
	now := time.Unix(0, 0)
	for i := range 5000 {
		m.put(fmt.Sprint(i), ID{Seq: uint64(i + 1)}, now)
	}
	if len(m.ids) != 10 {
		t.Errorf("holds %d keys, want 10", len(m.ids))
	}
	for i := 4990; i < 5000; i++ {
		if id, ok := m.get(fmt.Sprint(i)); !ok || id.Seq != uint64(i+1) {
			t.Errorf("get(%d) = %v, %v", i, id, ok)
		}
	}
	if len(m.order)-m.head != 10 {
		t.Errorf("order holds %d live keys, want 10", len(m.order)-m.head)
	}
	for i, k := range m.order[len(m.order):cap(m.order)] {
		if k.key != "" {
			t.Fatalf("order's spare capacity still holds key %q at %d", k.key, i)
		}
	}
}

// TestArrivalQueueCompacts: entries evicted behind a long-lived one are
// dropped from the arrival queue, which stays small, and every index agrees.
func TestArrivalQueueCompacts(t *testing.T) {
	h := NewHub(Options{HistorySize: 1})
	defer h.Close()
	pub := func(ch string) {
		t.Helper()
		if _, _, err := h.Publish(t.Context(), []Message{{Channel: ch, Data: []byte("x")}}, AckLocal); err != nil {
			t.Fatal(err)
		}
	}
	pub("old") // stays at the front of the arrival queue
	for range 5000 {
		pub("hot") // each evicts the one before, behind "old"
	}
	checkHub(t, h)
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.hist.arrival.items); n > 2100 {
		t.Errorf("arrival queue holds %d slots for 2 live entries", n)
	}
	if n := len(h.hist.origins[h.origin].entries); n > 200 {
		t.Errorf("origin log holds %d entries for 2 live ones", n)
	}
}
