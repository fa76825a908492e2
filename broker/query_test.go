package broker_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// pageAll reads channel's history on h from after, limit events a page,
// until a page says no more.
func pageAll(tb testing.TB, h *broker.Hub, channel string, after broker.Position, limit int) (ids []broker.ID, next broker.Position) {
	tb.Helper()
	for range 1000 {
		page, err := h.History(broker.HistoryRequest{Channel: channel, After: after, Limit: limit})
		if err != nil {
			tb.Fatalf("History(%s, after %v) = %v", channel, after, err)
		}
		if len(page.Events) > limit {
			tb.Fatalf("History(limit %d) returned %d events", limit, len(page.Events))
		}
		ids = append(ids, idsOf(page.Events)...)
		// The cursor round-trips as text: clients carry it as a string.
		if !page.Next.IsZero() {
			back, err := broker.ParsePosition(page.Next.String())
			if err != nil {
				tb.Fatalf("Next %v does not parse: %v", page.Next, err)
			}
			after = back
		}
		if !page.More {
			return ids, after
		}
	}
	tb.Fatal("History never ran out of pages")
	return nil, after
}

func TestHistoryPages(t *testing.T) {
	h := newHub(t, broker.Options{})
	ids := publishN(t, h, "orders", 7)
	publishN(t, h, "other", 3)
	for _, limit := range []int{1, 2, 3, 7, 100} {
		got, _ := pageAll(t, h, "orders", broker.Position{}, limit)
		checkIDs(t, "every page", got, ids)
	}
	got, next := pageAll(t, h, "orders", broker.PositionOf(ids[3]), 2)
	checkIDs(t, "after the 4th", got, ids[4:])
	more := publishN(t, h, "orders", 2)
	got, _ = pageAll(t, h, "orders", next, 2)
	checkIDs(t, "the next page, later", got, more)

	page, err := h.History(broker.HistoryRequest{Channel: "orders", Last: 3, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	all := append(ids, more...)
	checkIDs(t, "last 3, limit 2", idsOf(page.Events), all[6:8])
	if !page.More {
		t.Error("last 3, limit 2: More = false")
	}
	got, _ = pageAll(t, h, "orders", page.Next, 10)
	checkIDs(t, "after the last 3's first page", got, all[8:])

	page, err = h.History(broker.HistoryRequest{Channel: "nothing.here"})
	if err != nil || len(page.Events) != 0 || page.More || !page.Next.IsZero() {
		t.Errorf("History of an unknown channel = %+v, %v; want an empty page", page, err)
	}
	if chans := h.Channels(); slices.ContainsFunc(chans, func(c broker.ChannelInfo) bool { return c.Name == "nothing.here" }) {
		t.Error("History created the channel it was asked about")
	}
	for _, req := range []broker.HistoryRequest{
		{Channel: "orders.>"}, {Channel: "a..b"}, {Channel: "x", Limit: -1}, {Channel: "x", Limit: broker.MaxHistoryLimit + 1}, {Channel: "x", Last: -1},
	} {
		if _, err := h.History(req); err == nil {
			t.Errorf("History(%+v) = nil error, want one", req)
		}
	}
}

func TestHistorySince(t *testing.T) {
	wall := time.UnixMilli(1_800_000_000_000)
	h := newHub(t, broker.Options{Now: func() time.Time { return wall }})
	old := publishN(t, h, "c", 2)
	wall = wall.Add(time.Minute)
	recent := publishN(t, h, "c", 2)
	got, _ := pageAll(t, h, "c", broker.Since(wall.UnixMilli()), 10)
	checkIDs(t, "since the minute", got, recent)
	got, _ = pageAll(t, h, "c", broker.Since(wall.Add(-time.Hour).UnixMilli()), 10)
	checkIDs(t, "since an hour ago", got, append(old, recent...))
	// A stream from the same position starts at the same events.
	s, err := h.Subscribe(broker.SubscribeRequest{Patterns: patterns(t, "c"), From: broker.Since(wall.UnixMilli())})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkIDs(t, "stream since the minute", idsOf(s.Replay), recent)
}

func TestHistoryReset(t *testing.T) {
	h := newHub(t, broker.Options{HistorySize: 3})
	ids := publishN(t, h, "c", 5)
	page, err := h.History(broker.HistoryRequest{Channel: "c", After: broker.PositionOf(ids[0])})
	if err != nil || !page.Reset {
		t.Errorf("History after an evicted event: Reset = %v (%v), want true", page.Reset, err)
	}
	checkIDs(t, "what is left", idsOf(page.Events), ids[2:])
	page, err = h.History(broker.HistoryRequest{Channel: "c", After: broker.PositionOf(ids[2])})
	if err != nil || page.Reset {
		t.Errorf("History after a retained event: Reset = %v (%v), want false", page.Reset, err)
	}
}

// TestHistoryCursorLate: across nodes, a page's cursor claims only the
// origins of the events it returned, so an event that reaches the node
// after the page, below its end, comes in the next page, and the same
// question gets the same answer from every node that holds the events.
func TestHistoryCursorLate(t *testing.T) {
	n := newCluster(t, 3, false, broker.Options{})
	a, b, c := n.hubs[0], n.hubs[1], n.hubs[2]
	early := publish(t, b, "x", "from B") // held back from C below
	n.wall.Add(5)
	ids := publishN(t, a, "x", 3)
	n.drop(1, 2, func(*broker.Event) bool { return true })
	n.flush(0, 1)
	n.flush(0, 2)
	got, next := pageAll(t, c, "x", broker.Position{}, 2)
	checkIDs(t, "C, before B's event", got, ids)
	gotB, _ := pageAll(t, b, "x", broker.Position{}, 2)
	checkIDs(t, "B", gotB, append([]broker.ID{early}, ids...))
	gotA, _ := pageAll(t, a, "x", broker.Position{}, 2)
	checkIDs(t, "A (without B's event yet)", gotA, ids)
	// B's event reaches C late (a repair, say).
	evs := drain(t, n.subs[1])
	for _, e := range evs {
		if e.ID == early {
			c.Deliver(&broker.Event{ID: e.ID, Channel: e.Channel, Data: e.Data, Born: e.Born})
		}
	}
	got, _ = pageAll(t, c, "x", next, 2)
	checkIDs(t, "C's next page", got, []broker.ID{early})
}

// TestHead: the head is a position a stream accepts, on any node: a
// stream from it gets exactly what the head's node had not delivered.
func TestHead(t *testing.T) {
	n := newCluster(t, 3, false, broker.Options{})
	a, b, c := n.hubs[0], n.hubs[1], n.hubs[2]
	ctx := context.Background()
	n.settle() // the peers' first watermarks
	head, err := b.Head(ctx, "x")
	if err != nil || !head.Last.IsZero() || head.Position.IsZero() {
		t.Fatalf("Head of an empty channel = %+v, %v; want no last and a position", head, err)
	}
	before := publishN(t, a, "x", 3)
	n.settle()
	head, err = b.Head(ctx, "x")
	if err != nil || head.Last != before[2] {
		t.Fatalf("Head = %+v, %v; want last %v", head, err, before[2])
	}
	after := publishN(t, a, "x", 2)
	n.flush(0, 2) // C has them; B does not yet
	p, err := broker.ParsePosition(head.Position.String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Subscribe(broker.SubscribeRequest{Patterns: patterns(t, "x"), From: p})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkIDs(t, "a stream on C from B's head", idsOf(s.Replay), after)
	if s.Reset {
		t.Error("a stream from the head: Reset")
	}
	live := publish(t, a, "x", "live")
	n.settle()
	checkIDs(t, "then live", idsOf(drain(t, s)), []broker.ID{live})

	if _, err := b.Head(ctx, "x.>"); !errors.Is(err, broker.ErrBadChannel) {
		t.Errorf("Head(pattern) = %v, want ErrBadChannel", err)
	}
}

func TestHeadWaitsForSettle(t *testing.T) {
	h := newHub(t, broker.Options{Relay: nopRelay{}, SettleWait: time.Millisecond})
	if _, err := h.Head(context.Background(), "x"); !errors.Is(err, broker.ErrJoining) {
		t.Errorf("Head on a joining node = %v, want ErrJoining", err)
	}
	h.Settle()
	if head, err := h.Head(context.Background(), "x"); err != nil || head.Position.IsZero() {
		t.Errorf("Head once settled = %+v, %v", head, err)
	}
}

type nopRelay struct{}

func (nopRelay) Send(*broker.Event)                            {}
func (nopRelay) Watermark(uint64)                              {}
func (nopRelay) Acked(context.Context, *broker.Event) error    { return nil }
func (nopRelay) AckedAll(context.Context, *broker.Event) error { return nil }
