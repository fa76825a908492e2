package broker_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/rumorhq/rumor/broker"
)

// newHub returns a hub that is closed when the test ends.
func newHub(tb testing.TB, opts broker.Options) *broker.Hub {
	tb.Helper()
	h := broker.NewHub(opts)
	tb.Cleanup(h.Close)
	return h
}

func patterns(tb testing.TB, ss ...string) []broker.Pattern {
	tb.Helper()
	out := make([]broker.Pattern, len(ss))
	for i, s := range ss {
		p, err := broker.ParsePattern(s)
		if err != nil {
			tb.Fatalf("ParsePattern(%q) = %v", s, err)
		}
		out[i] = p
	}
	return out
}

// subscribe subscribes to the patterns after the position; the
// subscription is closed when the test ends.
func subscribe(tb testing.TB, h *broker.Hub, after broker.ID, ss ...string) *broker.Subscription {
	tb.Helper()
	s, err := h.Subscribe(broker.SubscribeRequest{Patterns: patterns(tb, ss...), From: broker.PositionOf(after)})
	if err != nil {
		tb.Fatalf("Subscribe(%q, after %v) = %v", ss, after, err)
	}
	tb.Cleanup(s.Close)
	return s
}

// publish publishes one message and returns its id.
func publish(tb testing.TB, h *broker.Hub, channel, data string) broker.ID {
	tb.Helper()
	ids, _, err := h.Publish(context.Background(), []broker.Message{{Channel: channel, Data: []byte(data)}}, broker.AckLocal)
	if err != nil {
		tb.Fatalf("Publish(%q, %q) = %v", channel, data, err)
	}
	return ids[0]
}

// publishN publishes n messages to channel, with data "<channel>/<i>".
func publishN(tb testing.TB, h *broker.Hub, channel string, n int) []broker.ID {
	tb.Helper()
	ids := make([]broker.ID, n)
	for i := range ids {
		ids[i] = publish(tb, h, channel, fmt.Sprintf("%s/%d", channel, i))
	}
	return ids
}

// drain returns what the subscription has queued and fails the test if the
// subscription has ended.
func drain(tb testing.TB, s *broker.Subscription) []*broker.Event {
	tb.Helper()
	events, err := s.Drain(nil)
	if err != nil {
		tb.Fatalf("Drain() error = %v", err)
	}
	return events
}

func idsOf(events []*broker.Event) []broker.ID {
	out := make([]broker.ID, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func sortedIDs(ids []broker.ID) []broker.ID {
	out := slices.Clone(ids)
	slices.SortFunc(out, broker.ID.Compare)
	return out
}

func checkIDs(tb testing.TB, what string, got, want []broker.ID) {
	tb.Helper()
	if !slices.Equal(got, want) {
		tb.Errorf("%s = %v, want %v", what, got, want)
	}
}
