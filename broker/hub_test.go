package broker_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rumorhq/rumor/broker"
)

func TestPublishSubscribe(t *testing.T) {
	h := newHub(t, broker.Options{})
	s := subscribe(t, h, broker.ID{}, "a")
	if len(s.Replay) != 0 || s.Reset {
		t.Fatalf("live subscription: Replay %v, Reset %v; want none", s.Replay, s.Reset)
	}
	ids, replayed, err := h.Publish(context.Background(), []broker.Message{
		{Channel: "a", Type: "greeting", Data: []byte("hello")},
		{Channel: "b", Data: []byte("other channel")},
		{Channel: "a", Data: []byte("world")},
	}, broker.AckPeer)
	if err != nil || replayed || len(ids) != 3 {
		t.Fatalf("Publish() = %v, %v, %v", ids, replayed, err)
	}
	if !ids[0].Less(ids[1]) || !ids[1].Less(ids[2]) || ids[0].Origin != h.Origin() || ids[0].Seq != 1 || ids[2].Seq != 3 {
		t.Errorf("Publish() ids = %v, want increasing, from origin %x, seq 1..3", ids, h.Origin())
	}
	select {
	case <-s.Ready():
	default:
		t.Fatal("Ready() not signalled after a publish")
	}
	got := drain(t, s)
	checkIDs(t, "delivered", idsOf(got), []broker.ID{ids[0], ids[2]})
	if len(got) == 2 {
		if e := got[0]; e.Channel != "a" || e.Type != "greeting" || string(e.Data) != "hello" || e.Born.IsZero() {
			t.Errorf("event = %+v", e)
		}
		if want := broker.AppendFrame(nil, ids[0], "greeting", []byte("hello")); string(got[0].Frame()) != string(want) {
			t.Errorf("Frame() = %q, want %q", got[0].Frame(), want)
		}
	}
	if got := drain(t, s); len(got) != 0 {
		t.Errorf("second Drain() = %v, want nothing", idsOf(got))
	}
	st := h.Stats()
	if st.Published != 3 || st.Delivered != 2 || st.Subscribers != 1 || st.Pending != 0 || st.Peers != 0 {
		t.Errorf("Stats() = %+v", st)
	}
}

func TestSubscribeManyChannels(t *testing.T) {
	h := newHub(t, broker.Options{})
	s := subscribe(t, h, broker.ID{}, "a", "b", "a") // a repeated channel counts once
	var want []broker.ID
	for i := range 6 {
		id := publish(t, h, []string{"a", "b", "c"}[i%3], "x")
		if i%3 != 2 {
			want = append(want, id)
		}
	}
	checkIDs(t, "delivered", idsOf(drain(t, s)), want)
}

func TestPatternSubscriptions(t *testing.T) {
	h := newHub(t, broker.Options{})
	// Subscribed before any of these channels exists.
	star := subscribe(t, h, broker.ID{}, "orders.*")
	tail := subscribe(t, h, broker.ID{}, "orders.>")
	paid := subscribe(t, h, broker.ID{}, "*.paid")
	all := subscribe(t, h, broker.ID{}, ">")
	both := subscribe(t, h, broker.ID{}, "orders.eu", "orders.*", "orders.>") // overlapping: once each
	ids := map[string]broker.ID{}
	for _, ch := range []string{"orders", "orders.eu", "orders.eu.paid", "orders.paid", "shop.paid", "other"} {
		ids[ch] = publish(t, h, ch, ch)
	}
	pick := func(chs ...string) []broker.ID {
		var out []broker.ID
		for _, ch := range chs {
			out = append(out, ids[ch])
		}
		return sortedIDs(out)
	}
	checkIDs(t, "orders.*", idsOf(drain(t, star)), pick("orders.eu", "orders.paid"))
	checkIDs(t, "orders.>", idsOf(drain(t, tail)), pick("orders.eu", "orders.eu.paid", "orders.paid"))
	checkIDs(t, "*.paid", idsOf(drain(t, paid)), pick("orders.paid", "shop.paid"))
	checkIDs(t, ">", idsOf(drain(t, all)), pick("orders", "orders.eu", "orders.eu.paid", "orders.paid", "shop.paid", "other"))
	checkIDs(t, "overlapping", idsOf(drain(t, both)), pick("orders.eu", "orders.eu.paid", "orders.paid"))

	// A pattern subscription made after the channels exist replays them.
	late := subscribe(t, h, ids["orders"], "orders.*")
	checkIDs(t, "orders.* replay", idsOf(late.Replay), pick("orders.eu", "orders.paid"))
}

func TestReplayAfter(t *testing.T) {
	h := newHub(t, broker.Options{})
	ids := publishN(t, h, "a", 10)
	s := subscribe(t, h, ids[3], "a")
	if s.Reset {
		t.Error("Reset = true for a retained position")
	}
	checkIDs(t, "Replay", idsOf(s.Replay), ids[4:])
	more := publishN(t, h, "a", 3)
	checkIDs(t, "live after replay", idsOf(drain(t, s)), more)

	last := subscribe(t, h, more[2], "a")
	if len(last.Replay) != 0 || last.Reset {
		t.Errorf("resume at the newest event: Replay %v, Reset %v; want nothing", idsOf(last.Replay), last.Reset)
	}
	// A position on another channel of the stream works too.
	b := publish(t, h, "b", "b")
	c := publish(t, h, "a", "after b")
	ab := subscribe(t, h, b, "a", "b")
	checkIDs(t, "Replay after b", idsOf(ab.Replay), []broker.ID{c})
	if ab.Reset {
		t.Error("Reset = true for a position on another channel of the stream")
	}
}

// TestResetBeforeStart: a position older than this hub and than anything
// it retains on the channel is unknown here, so Reset.
func TestResetBeforeStart(t *testing.T) {
	h := newHub(t, broker.Options{})
	base := time.Now().Add(-time.Minute).UnixMilli()
	old := func(seq uint64) *broker.Event { // repaired from a peer, published before h started
		return &broker.Event{ID: broker.ID{Time: uint64(base+int64(seq)) << 16, Origin: 7, Seq: seq}, Channel: "a", Data: []byte("old")}
	}
	for q := uint64(5); q <= 7; q++ {
		h.Deliver(old(q))
	}
	if s := subscribe(t, h, old(3).ID, "a"); !s.Reset || len(s.Replay) != 3 {
		t.Errorf("resume before everything known: Replay %d events, Reset %v; want 3, true", len(s.Replay), s.Reset)
	}
	if s := subscribe(t, h, old(5).ID, "a"); s.Reset || len(s.Replay) != 2 {
		t.Errorf("resume at a retained old event: Replay %d events, Reset %v; want 2, false", len(s.Replay), s.Reset)
	}
}

func TestReplayMergesChannelsInIDOrder(t *testing.T) {
	h := newHub(t, broker.Options{})
	var all []broker.ID
	chans := []string{"x.a", "x.b", "y", "x.c"}
	for i := range 40 {
		all = append(all, publish(t, h, chans[(i*7)%len(chans)], "d"))
	}
	s := subscribe(t, h, all[5], "x.*", "y")
	checkIDs(t, "Replay", idsOf(s.Replay), all[6:])
	if s.Reset {
		t.Error("Reset = true")
	}
}

// TestResumeExactUnderConcurrency runs publishers on several channels while
// subscribers resume from random positions already published (or subscribe
// live): each must see exactly the events after its position, in ID order,
// with no gap and no duplicate between its replay and its live events.
func TestResumeExactUnderConcurrency(t *testing.T) {
	const publishers, perPublisher, subscribers = 4, 250, 16
	h := newHub(t, broker.Options{QueueSize: 1 << 16, HistorySize: 1 << 16})
	chans := []string{"a", "b", "c.x", "c.y"}
	subPatterns := [][]string{{"a"}, {"a", "b"}, {"c.*"}, {">"}, {"b", "c.>"}}

	var mu sync.Mutex
	var published []broker.ID
	byID := map[broker.ID]string{}
	done := make(chan struct{})
	// Every fourth subscriber subscribes live before anything is published:
	// it must see everything it matches.
	live := map[int]*broker.Subscription{}
	for i := 0; i < subscribers; i += 4 {
		live[i] = subscribe(t, h, broker.ID{}, subPatterns[i%len(subPatterns)]...)
	}
	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Go(func() {
			r := rand.New(rand.NewPCG(uint64(p), 1))
			for i := range perPublisher {
				ch := chans[r.IntN(len(chans))]
				msgs := []broker.Message{{Channel: ch, Data: fmt.Appendf(nil, "%d/%d", p, i)}}
				ids, _, err := h.Publish(context.Background(), msgs, broker.AckLocal)
				if err != nil {
					t.Errorf("Publish() = %v", err)
					return
				}
				mu.Lock()
				published = append(published, ids[0])
				byID[ids[0]] = ch
				mu.Unlock()
			}
		})
	}
	type result struct {
		after    broker.ID
		patterns []string
		got      []broker.ID
		reset    bool
		err      error
	}
	results := make([]result, subscribers)
	var subs sync.WaitGroup
	for i := range subscribers {
		subs.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 2))
			res := &results[i]
			res.patterns = subPatterns[i%len(subPatterns)]
			s := live[i]
			if s == nil {
				// Wait for a random share of the publishes, bounded.
				for range 2000 {
					mu.Lock()
					n := len(published)
					mu.Unlock()
					if n > r.IntN(publishers*perPublisher) {
						break
					}
					time.Sleep(10 * time.Microsecond)
				}
				mu.Lock()
				if len(published) > 0 {
					res.after = published[r.IntN(len(published))]
				}
				mu.Unlock()
				ps := make([]broker.Pattern, len(res.patterns))
				for j, s := range res.patterns {
					ps[j], _ = broker.ParsePattern(s)
				}
				var err error
				if s, err = h.Subscribe(broker.SubscribeRequest{Patterns: ps, From: broker.PositionOf(res.after)}); err != nil {
					res.err = err
					return
				}
				defer s.Close()
			}
			res.reset = s.Reset
			res.got = idsOf(s.Replay)
			var buf []*broker.Event
			for {
				select {
				case <-s.Ready():
				case <-done:
				}
				buf, res.err = s.Drain(buf[:0])
				res.got = append(res.got, idsOf(buf)...)
				if res.err != nil {
					return
				}
				select {
				case <-done:
					buf, res.err = s.Drain(buf[:0])
					res.got = append(res.got, idsOf(buf)...)
					return
				default:
				}
			}
		})
	}
	pubs.Wait()
	close(done)
	subs.Wait()

	all := sortedIDs(published)
	if len(all) != publishers*perPublisher {
		t.Fatalf("published %d events, want %d", len(all), publishers*perPublisher)
	}
	for i, res := range results {
		if res.err != nil {
			t.Errorf("subscriber %d %q: %v", i, res.patterns, res.err)
			continue
		}
		if res.reset {
			t.Errorf("subscriber %d %q after %v: Reset with nothing evicted", i, res.patterns, res.after)
		}
		ps := patterns(t, res.patterns...)
		var want []broker.ID
		for _, id := range all {
			if !res.after.Less(id) {
				continue
			}
			if slices.ContainsFunc(ps, func(p broker.Pattern) bool { return p.Match(byID[id]) }) {
				want = append(want, id)
			}
		}
		if !slices.Equal(res.got, want) {
			t.Errorf("subscriber %d %q after %v got %d events, want %d; first difference at %d",
				i, res.patterns, res.after, len(res.got), len(want), firstDiff(res.got, want))
		}
	}
}

func firstDiff(a, b []broker.ID) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestSlowSubscriber(t *testing.T) {
	h := newHub(t, broker.Options{QueueSize: 4})
	slow := subscribe(t, h, broker.ID{}, "a")
	fast := subscribe(t, h, broker.ID{}, "a")
	var want []broker.ID
	var got []broker.ID
	for i := range 10 {
		want = append(want, publish(t, h, "a", fmt.Sprint(i)))
		got = append(got, idsOf(drain(t, fast))...)
	}
	checkIDs(t, "fast subscriber", got, want)
	events, err := slow.Drain(nil)
	if !errors.Is(err, broker.ErrSlow) {
		t.Errorf("slow Drain() error = %v, want ErrSlow", err)
	}
	checkIDs(t, "slow subscriber's last events", idsOf(events), want[:4])
	st := h.Stats()
	if st.SlowDisconnects != 1 || st.Dropped != 1 {
		t.Errorf("Stats() SlowDisconnects = %d, Dropped = %d, want 1, 1", st.SlowDisconnects, st.Dropped)
	}
	// Publishing goes on without blocking, the slow one stays ended.
	for range 1000 {
		publish(t, h, "a", "more")
		drain(t, fast)
	}
	if events, err := slow.Drain(nil); len(events) != 0 || !errors.Is(err, broker.ErrSlow) {
		t.Errorf("slow Drain() later = %d events, %v; want none, ErrSlow", len(events), err)
	}
	if st := h.Stats(); st.SlowDisconnects != 1 {
		t.Errorf("Stats().SlowDisconnects = %d after more publishes, want 1", st.SlowDisconnects)
	}
}

// A subscriber holds at most QueueBytes: events queued, and those its last
// Drain returned until it releases them (its write may be stuck). One
// event always fits, however large.
func TestSubscriberBytes(t *testing.T) {
	data := strings.Repeat("x", 1000)
	size := func() int64 { // one event's weight: its data, frame and fields
		e := &broker.Event{Channel: "a", Data: []byte(data)}
		e.Frame()
		return int64(e.Size())
	}() + 100 // the id is longer than the zero ID's
	h := newHub(t, broker.Options{QueueBytes: 3 * size})
	pub := func(n int) {
		for range n {
			publish(t, h, "a", data)
		}
	}
	s := subscribe(t, h, broker.ID{}, "a")
	big := subscribe(t, h, broker.ID{}, "b")
	publish(t, h, "b", strings.Repeat("y", 10000)) // over the budget, alone
	if evs, err := big.Drain(nil); len(evs) != 1 || err != nil {
		t.Errorf("an event over QueueBytes alone: Drain() = %d events, %v; want it", len(evs), err)
	}
	pub(2)
	if evs, err := s.Drain(nil); len(evs) != 2 || err != nil {
		t.Fatalf("Drain() = %d events, %v; want 2", len(evs), err)
	}
	held := h.Stats().SubscriberBytes
	// Two drained and not released, one queued: the next is one too many.
	pub(1)
	if got := h.Stats().SubscriberBytes; got <= held || got > held+size {
		t.Errorf("SubscriberBytes = %d after one more event, want %d plus one event", got, held)
	}
	s.Release()
	pub(2) // fits once the drained two are released
	if evs, err := s.Drain(nil); len(evs) != 3 || err != nil {
		t.Fatalf("after Release: Drain() = %d events, %v; want 3", len(evs), err)
	}
	pub(1) // the three drained are held still
	if _, err := s.Drain(nil); !errors.Is(err, broker.ErrSlow) {
		t.Errorf("over QueueBytes: Drain() error = %v, want ErrSlow", err)
	}
	if st := h.Stats(); st.SlowDisconnects != 1 {
		t.Errorf("SlowDisconnects = %d, want 1", st.SlowDisconnects)
	}
	s.Close()
	big.Close()
	if got := h.Stats().SubscriberBytes; got != 0 {
		t.Errorf("SubscriberBytes = %d once every subscription closed, want 0", got)
	}
}

func TestSubscriptionQueueBoundary(t *testing.T) {
	const q = 20
	h := newHub(t, broker.Options{QueueSize: q})
	s := subscribe(t, h, broker.ID{}, "a")
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		n := 1 + r.IntN(q) // up to a full queue, never more
		want := publishN(t, h, "a", n)
		checkIDs(t, fmt.Sprintf("round %d", round), idsOf(drain(t, s)), want)
	}
	want := publishN(t, h, "a", q)
	extra := publish(t, h, "a", "one too many")
	events, err := s.Drain(nil)
	if !errors.Is(err, broker.ErrSlow) {
		t.Errorf("Drain() after %d+1 events error = %v, want ErrSlow", q, err)
	}
	checkIDs(t, "full queue", idsOf(events), want)
	if slices.Contains(idsOf(events), extra) {
		t.Error("the overflowing event was queued")
	}
}

func TestIdempotency(t *testing.T) {
	h := newHub(t, broker.Options{})
	s := subscribe(t, h, broker.ID{}, "a")
	msg := []broker.Message{{Channel: "a", Data: []byte("x"), Key: "k1"}}
	first, replayed, err := h.Publish(context.Background(), msg, broker.AckLocal)
	if err != nil || replayed {
		t.Fatalf("Publish() = %v, %v, %v", first, replayed, err)
	}
	again, replayed, err := h.Publish(context.Background(), msg, broker.AckPeer)
	if err != nil || !replayed || !slices.Equal(again, first) {
		t.Errorf("Publish() again = %v, %v, %v; want %v, true, nil", again, replayed, err, first)
	}
	other, replayed, _ := h.Publish(context.Background(), []broker.Message{{Channel: "a", Data: []byte("x"), Key: "k2"}}, broker.AckLocal)
	if replayed || other[0] == first[0] {
		t.Errorf("Publish() with another key = %v, %v; want a new id", other, replayed)
	}
	checkIDs(t, "delivered", idsOf(drain(t, s)), []broker.ID{first[0], other[0]})
	if st := h.Stats(); st.Published != 2 {
		t.Errorf("Stats().Published = %d, want 2", st.Published)
	}
}

func TestIdempotentBatch(t *testing.T) {
	h := newHub(t, broker.Options{})
	s := subscribe(t, h, broker.ID{}, "a")
	pub := func(keys ...string) ([]broker.ID, bool) {
		t.Helper()
		msgs := make([]broker.Message, len(keys))
		for i, k := range keys {
			msgs[i] = broker.Message{Channel: "a", Data: []byte("data " + k), Key: k}
		}
		ids, replayed, err := h.Publish(context.Background(), msgs, broker.AckLocal)
		if err != nil {
			t.Fatalf("Publish(keys %q) = %v", keys, err)
		}
		for i, id := range ids {
			if id.IsZero() {
				t.Errorf("Publish(keys %q) id %d is zero", keys, i)
			}
		}
		return ids, replayed
	}
	ab, _ := pub("a", "b")
	if got, replayed := pub("a", "b"); !replayed || !slices.Equal(got, ab) {
		t.Errorf("retry of batch = %v, %v; want %v, true", got, replayed, ab)
	}
	// The first key is known, the second new: the second is published.
	ac, replayed := pub("a", "c")
	if !replayed || ac[0] != ab[0] || ac[1] == ab[1] {
		t.Errorf("batch (a, c) = %v, %v; want [%v new], true", ac, replayed, ab[0])
	}
	// The first key is new, the second known: the second is not published again.
	db, _ := pub("d", "b")
	if db[1] != ab[1] {
		t.Errorf("batch (d, b) = %v; want b's first id %v", db, ab[1])
	}
	// A key repeated inside one batch is published once.
	ee, _ := pub("e", "e")
	if ee[0] != ee[1] {
		t.Errorf("batch (e, e) = %v; want one id twice", ee)
	}
	// Messages without keys are always published.
	nn, replayed := pub("", "")
	if replayed || nn[0] == nn[1] {
		t.Errorf("batch without keys = %v, %v", nn, replayed)
	}
	got := drain(t, s)
	checkIDs(t, "delivered", idsOf(got), []broker.ID{ab[0], ab[1], ac[1], db[0], ee[0], nn[0], nn[1]})
}

func TestIdempotencyExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Minute
		h := newHub(t, broker.Options{IdempotencyTTL: ttl, Now: time.Now})
		msg := []broker.Message{{Channel: "a", Data: []byte("x"), Key: "k"}}
		time.Sleep(500 * time.Millisecond) // between two sweeps
		first, _, _ := h.Publish(context.Background(), msg, broker.AckLocal)
		time.Sleep(ttl - time.Millisecond)
		if got, replayed, _ := h.Publish(context.Background(), msg, broker.AckLocal); !replayed || got[0] != first[0] {
			t.Errorf("Publish() just before the TTL = %v, %v; want %v, true", got, replayed, first)
		}
		time.Sleep(time.Millisecond)
		got, replayed, _ := h.Publish(context.Background(), msg, broker.AckLocal)
		if replayed || got[0] == first[0] {
			t.Errorf("Publish() at the TTL = %v, %v; want a new id", got, replayed)
		}
	})
}

func TestIdempotencyKeyLimit(t *testing.T) {
	h := newHub(t, broker.Options{IdempotencyKeys: 3})
	var ids []broker.ID
	for i := range 4 {
		got, _, _ := h.Publish(context.Background(), []broker.Message{{Channel: "a", Data: []byte("x"), Key: fmt.Sprint(i)}}, broker.AckLocal)
		ids = append(ids, got[0])
	}
	for i, wantReplay := range []bool{false, true, true, true} { // key 0 is forgotten
		got, replayed, _ := h.Publish(context.Background(), []broker.Message{{Channel: "a", Data: []byte("x"), Key: fmt.Sprint(i)}}, broker.AckLocal)
		if replayed != wantReplay || replayed != (got[0] == ids[i]) {
			t.Errorf("Publish(key %d) = %v, replayed %v; want replayed %v", i, got, replayed, wantReplay)
		}
		if !replayed {
			break // re-adding key 0 evicts key 1
		}
	}
}

func TestPublishValidation(t *testing.T) {
	h := newHub(t, broker.Options{})
	s := subscribe(t, h, broker.ID{}, ">")
	ok := broker.Message{Channel: "a", Data: []byte("fine")}
	tests := []struct {
		name string
		msgs []broker.Message
		want error
	}{
		{"empty data", []broker.Message{{Channel: "a"}}, broker.ErrBadData},
		{"invalid UTF-8", []broker.Message{{Channel: "a", Data: []byte("\xff")}}, broker.ErrBadData},
		{"bad channel", []broker.Message{{Channel: "a.*", Data: []byte("x")}}, broker.ErrBadChannel},
		{"reserved type", []broker.Message{{Channel: "a", Type: broker.ResetType, Data: []byte("x")}}, broker.ErrBadType},
		{"bad type", []broker.Message{{Channel: "a", Type: "a b", Data: []byte("x")}}, broker.ErrBadType},
		{"last of a batch", []broker.Message{ok, ok, {Channel: "a", Data: []byte{}}}, broker.ErrBadData},
		{"first of a batch", []broker.Message{{Channel: "", Data: []byte("x")}, ok}, broker.ErrBadChannel},
		{"empty batch", nil, broker.ErrBadData},
	}
	for _, tt := range tests {
		ids, _, err := h.Publish(context.Background(), tt.msgs, broker.AckLocal)
		if !errors.Is(err, tt.want) || ids != nil {
			t.Errorf("%s: Publish() = %v, %v; want nil, %v", tt.name, ids, err, tt.want)
		}
	}
	if _, _, err := h.Publish(context.Background(), []broker.Message{ok, {Channel: "b"}}, broker.AckLocal); err == nil || !strings.Contains(err.Error(), "message 1") {
		t.Errorf("batch error %v does not name message 1", err)
	}
	if got := drain(t, s); len(got) != 0 {
		t.Errorf("rejected batches delivered %d events", len(got))
	}
	if st := h.Stats(); st.Published != 0 || st.HistoryEvents != 0 {
		t.Errorf("Stats() = %+v after rejected publishes", st)
	}
}

func TestSubscribeErrors(t *testing.T) {
	h := newHub(t, broker.Options{})
	if _, err := h.Subscribe(broker.SubscribeRequest{}); !errors.Is(err, broker.ErrBadPattern) {
		t.Errorf("Subscribe(no patterns) = %v, want ErrBadPattern", err)
	}
	if _, err := h.Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{{}}}); !errors.Is(err, broker.ErrBadPattern) {
		t.Errorf("Subscribe(zero Pattern) = %v, want ErrBadPattern", err)
	}
	if n := len(h.Channels()); n != 0 {
		t.Errorf("failed subscriptions left %d channels", n)
	}
}

func TestHistorySizeAndReset(t *testing.T) {
	h := newHub(t, broker.Options{HistorySize: 3})
	ids := publishN(t, h, "a", 5)
	publishN(t, h, "b", 2)
	tests := []struct {
		after  broker.ID
		replay []broker.ID
		reset  bool
	}{
		{ids[0], ids[2:], true},  // missed ids[1]
		{ids[1], ids[2:], false}, // saw the last evicted one
		{ids[2], ids[3:], false},
		{ids[4], nil, false},
	}
	for _, tt := range tests {
		s := subscribe(t, h, tt.after, "a")
		checkIDs(t, fmt.Sprintf("Replay after %v", tt.after), idsOf(s.Replay), tt.replay)
		if s.Reset != tt.reset {
			t.Errorf("Subscribe(after %v).Reset = %v, want %v", tt.after, s.Reset, tt.reset)
		}
	}
	info := h.Channels()
	if len(info) != 2 || info[0].Name != "a" || info[0].Events != 3 || info[0].Published != 5 || info[1].Name != "b" || info[1].Events != 2 {
		t.Errorf("Channels() = %+v", info)
	}
	if st := h.Stats(); st.HistoryEvents != 5 || st.Channels != 2 {
		t.Errorf("Stats() = %+v, want 5 events in 2 channels", st)
	}
}

func TestHistoryTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Minute
		h := newHub(t, broker.Options{HistoryTTL: ttl, Now: time.Now})
		first := publish(t, h, "a", "1")
		time.Sleep(ttl / 2)
		second := publish(t, h, "a", "2")
		time.Sleep(ttl/2 + time.Second) // the sweep runs every second
		synctest.Wait()
		if st := h.Stats(); st.HistoryEvents != 1 {
			t.Errorf("Stats().HistoryEvents = %d after the first event's TTL, want 1", st.HistoryEvents)
		}
		s := subscribe(t, h, first, "a")
		if checkIDs(t, "Replay after the expired event", idsOf(s.Replay), []broker.ID{second}); s.Reset {
			t.Error("Reset = true after the expired event itself")
		}
		before := broker.ID{Time: first.Time - 1, Origin: first.Origin, Seq: 1}
		if s := subscribe(t, h, before, "a"); !s.Reset {
			t.Error("Reset = false before an expired event")
		}
		time.Sleep(ttl)
		synctest.Wait()
		if st := h.Stats(); st.HistoryEvents != 0 || st.HistoryBytes != 0 {
			t.Errorf("Stats() = %+v after every TTL, want an empty history", st)
		}
		if s := subscribe(t, h, first, "a"); !s.Reset || len(s.Replay) != 0 {
			t.Errorf("after everything expired: Replay %v, Reset %v; want none, true", idsOf(s.Replay), s.Reset)
		}
	})
}

func TestHistoryBytes(t *testing.T) {
	// Measure one event's weight, then allow a little over three of them.
	probe := newHub(t, broker.Options{})
	ps := subscribe(t, probe, broker.ID{}, "a")
	publish(t, probe, "a", "0123456789")
	size := int64(drain(t, ps)[0].Size())

	h := newHub(t, broker.Options{HistoryBytes: 3*size + size/2})
	var ids []broker.ID
	for i := range 6 {
		ids = append(ids, publish(t, h, []string{"a", "b"}[i%2], "0123456789")) // same sizes: same id width
	}
	st := h.Stats()
	if st.HistoryEvents != 3 || st.HistoryBytes != 3*size {
		t.Errorf("Stats() = %d events, %d bytes; want 3, %d", st.HistoryEvents, st.HistoryBytes, 3*size)
	}
	info := h.Channels()
	if len(info) != 2 || info[0].Bytes+info[1].Bytes != 3*size || info[0].Events+info[1].Events != 3 {
		t.Errorf("Channels() = %+v", info)
	}
	// The oldest went first, across channels.
	s := subscribe(t, h, ids[0], "a", "b")
	checkIDs(t, "Replay", idsOf(s.Replay), ids[3:])
	if !s.Reset {
		t.Error("Reset = false after events were evicted for bytes")
	}
	if s := subscribe(t, h, ids[2], "a", "b"); s.Reset {
		t.Error("Reset = true after the last evicted event")
	}
}

func TestNoHistory(t *testing.T) {
	h := newHub(t, broker.Options{HistorySize: -1})
	s := subscribe(t, h, broker.ID{}, "a")
	ids := publishN(t, h, "a", 3)
	checkIDs(t, "live", idsOf(drain(t, s)), ids)
	if st := h.Stats(); st.HistoryEvents != 0 {
		t.Errorf("Stats().HistoryEvents = %d, want 0", st.HistoryEvents)
	}
	r := subscribe(t, h, ids[0], "a")
	if len(r.Replay) != 0 || !r.Reset {
		t.Errorf("resume without history: Replay %v, Reset %v; want none, true", idsOf(r.Replay), r.Reset)
	}
	if r := subscribe(t, h, ids[2], "a"); r.Reset {
		t.Error("resume at the newest event without history: Reset = true")
	}
}

// TestResetDeletedChannel: a channel whose events all expired is dropped;
// a resume position from before that must still say Reset, also once the
// channel exists again and for pattern subscriptions.
func TestResetDeletedChannel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Minute
		h := newHub(t, broker.Options{HistoryTTL: ttl, Now: time.Now})
		first := publish(t, h, "orders.eu", "1")
		publish(t, h, "orders.eu", "2") // the client never sees this one
		time.Sleep(ttl + time.Second)
		synctest.Wait()
		if n := len(h.Channels()); n != 0 {
			t.Fatalf("Channels() has %d entries after everything expired, want 0", n)
		}
		for _, p := range []string{"orders.eu", "orders.*", ">"} {
			s, err := h.Subscribe(broker.SubscribeRequest{Patterns: patterns(t, p), From: broker.PositionOf(first)})
			if err != nil {
				t.Fatal(err)
			}
			if !s.Reset {
				t.Errorf("Subscribe(%q) after a deleted channel's event: Reset = false", p)
			}
			s.Close()
		}
		third := publish(t, h, "orders.eu", "3") // the channel is back
		for _, p := range []string{"orders.eu", "orders.*"} {
			s := subscribe(t, h, first, p)
			checkIDs(t, "Replay", idsOf(s.Replay), []broker.ID{third})
			if !s.Reset {
				t.Errorf("Subscribe(%q) after a deleted channel's event, channel recreated: Reset = false", p)
			}
		}
		if s := subscribe(t, h, third, "orders.eu"); s.Reset {
			t.Error("Reset = true for a position after the recreated channel's event")
		}
	})
}

func TestChannelLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Minute
		h := newHub(t, broker.Options{HistoryTTL: ttl, Now: time.Now})
		lit, _ := h.Subscribe(broker.SubscribeRequest{Patterns: patterns(t, "idle")})
		if info := h.Channels(); len(info) != 1 || info[0].Name != "idle" || info[0].Subscribers != 1 {
			t.Errorf("Channels() = %+v, want the subscribed channel", info)
		}
		lit.Close()
		lit.Close() // safe twice
		if info := h.Channels(); len(info) != 0 {
			t.Errorf("Channels() = %+v after the only subscriber left, want none", info)
		}
		// A pattern subscriber holds the channels it matches while their history expires.
		wild, _ := h.Subscribe(broker.SubscribeRequest{Patterns: patterns(t, "a.*")})
		id := publish(t, h, "a.x", "1")
		time.Sleep(ttl + time.Second)
		synctest.Wait()
		info := h.Channels()
		if len(info) != 1 || info[0].Events != 0 || info[0].Subscribers != 1 || info[0].Published != 1 {
			t.Errorf("Channels() = %+v, want a.x held by its pattern subscriber", info)
		}
		later := publish(t, h, "a.x", "2")
		events, _ := wild.Drain(nil)
		checkIDs(t, "pattern subscriber", idsOf(events), []broker.ID{id, later})
		wild.Close()
		time.Sleep(ttl + time.Second)
		synctest.Wait()
		if info := h.Channels(); len(info) != 0 {
			t.Errorf("Channels() = %+v after the pattern subscriber left and history expired, want none", info)
		}
		if st := h.Stats(); st.Subscribers != 0 || st.Channels != 0 {
			t.Errorf("Stats() = %+v", st)
		}
	})
}

func TestChannelsInfo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, broker.Options{Now: time.Now})
		subscribe(t, h, broker.ID{}, "b")
		subscribe(t, h, broker.ID{}, "b", "c")
		publish(t, h, "a", "xy")
		time.Sleep(time.Second)
		publish(t, h, "b", "z")
		at := time.Now()
		publish(t, h, "b", "w")
		info := h.Channels()
		if len(info) != 3 {
			t.Fatalf("Channels() = %+v, want a, b, c", info)
		}
		a, b, c := info[0], info[1], info[2]
		if a.Name != "a" || a.Subscribers != 0 || a.Events != 1 || a.Published != 1 || a.Bytes <= 0 {
			t.Errorf("a = %+v", a)
		}
		if b.Name != "b" || b.Subscribers != 2 || b.Events != 2 || b.Published != 2 || !b.LastPublished.Equal(at) {
			t.Errorf("b = %+v, want last published %v", b, at)
		}
		if c.Name != "c" || c.Subscribers != 1 || c.Events != 0 || c.Published != 0 || !c.LastPublished.IsZero() {
			t.Errorf("c = %+v", c)
		}
		if st := h.Stats(); st.HistoryBytes != a.Bytes+b.Bytes || st.Subscribers != 2 {
			t.Errorf("Stats() = %+v, channels %+v", st, info)
		}
	})
}

func TestClose(t *testing.T) {
	h := broker.NewHub(broker.Options{})
	a := subscribe(t, h, broker.ID{}, "a")
	w := subscribe(t, h, broker.ID{}, "x.*")
	id := publish(t, h, "a", "before close")
	h.Close()
	h.Close() // safe twice
	for _, s := range []*broker.Subscription{a, w} {
		select {
		case <-s.Ready():
		default:
			t.Errorf("Ready() not signalled by Close for %v", s.Patterns())
		}
	}
	events, err := a.Drain(nil)
	if !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Drain() after Close = %v, want ErrClosed", err)
	}
	checkIDs(t, "events queued before Close", idsOf(events), []broker.ID{id})
	if _, err := w.Drain(nil); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("pattern Drain() after Close = %v, want ErrClosed", err)
	}
	if _, _, err := h.Publish(context.Background(), []broker.Message{{Channel: "a", Data: []byte("x")}}, broker.AckLocal); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish() after Close = %v, want ErrClosed", err)
	}
	if _, err := h.Subscribe(broker.SubscribeRequest{Patterns: patterns(t, "a")}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Subscribe() after Close = %v, want ErrClosed", err)
	}
	if h.Deliver(&broker.Event{ID: broker.ID{Time: 1, Origin: 9, Seq: 1}, Channel: "a", Data: []byte("x")}) {
		t.Error("Deliver() after Close = true")
	}
}
