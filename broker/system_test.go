package broker_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rumorhq/rumor/broker"
)

func TestSystemChannels(t *testing.T) {
	if err := broker.ValidateChannel("$mercure"); !errors.Is(err, broker.ErrBadChannel) {
		t.Errorf("ValidateChannel($mercure) = %v, want ErrBadChannel", err)
	}
	if _, err := broker.ParsePattern("$mercure"); !errors.Is(err, broker.ErrBadPattern) {
		t.Errorf("ParsePattern($mercure) = %v, want ErrBadPattern", err)
	}
	if _, err := broker.SystemPattern("bad name"); err == nil {
		t.Error("SystemPattern accepted a bad name")
	}
	h := newHub(t, broker.Options{})
	sys, err := broker.SystemPattern("mercure")
	if err != nil {
		t.Fatal(err)
	}
	own, err := h.Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{sys}})
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	wild := subscribe(t, h, broker.ID{}, ">", "*")
	publish(t, h, "$mercure", "secret")
	publish(t, h, "news", "public")
	if got := drain(t, wild); len(got) != 1 || got[0].Channel != "news" {
		t.Errorf("a wildcard stream got %d events (%v), want only news", len(got), got)
	}
	if got := drain(t, own); len(got) != 1 || string(got[0].Data) != "secret" {
		t.Errorf("the system subscription got %v", got)
	}
}

func TestSubscribeFilter(t *testing.T) {
	h := newHub(t, broker.Options{})
	first := publish(t, h, "c", "skip 0")
	publish(t, h, "c", "keep 1")
	publish(t, h, "c", "skip 2")
	keep := func(e *broker.Event) bool { return strings.HasPrefix(string(e.Data), "keep") }
	s, err := h.Subscribe(broker.SubscribeRequest{Patterns: patterns(t, "c"), From: broker.PositionOf(first), Filter: keep})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.Replay) != 1 || string(s.Replay[0].Data) != "keep 1" {
		t.Errorf("Replay = %v, want only keep 1", s.Replay)
	}
	publish(t, h, "c", "skip 3")
	select {
	case <-s.Ready():
		t.Error("a filtered event woke the subscriber")
	default:
	}
	publish(t, h, "c", "keep 4")
	if got := drain(t, s); len(got) != 1 || string(got[0].Data) != "keep 4" {
		t.Errorf("live = %v, want only keep 4", got)
	}
}

func TestEventDecodedOnce(t *testing.T) {
	e := &broker.Event{Data: []byte("x")}
	var calls atomic.Int32
	f := func(e *broker.Event) any { calls.Add(1); return string(e.Data) + "!" }
	for range 3 {
		if got := e.Decoded(f); got != "x!" {
			t.Fatalf("Decoded = %v", got)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("decode ran %d times, want 1", calls.Load())
	}
}

func TestRetainedAndEarliest(t *testing.T) {
	h := newHub(t, broker.Options{})
	publishN(t, h, "c", 3)
	publish(t, h, "d", "other")
	got := h.Retained("c")
	if len(got) != 3 || string(got[0].Data) != "c/0" || string(got[2].Data) != "c/2" {
		t.Fatalf("Retained(c) = %v", got)
	}
	if h.Retained("nothing") != nil {
		t.Error("Retained of an unknown channel is not nil")
	}
	s, err := h.Subscribe(broker.SubscribeRequest{Patterns: patterns(t, "c"), From: broker.Earliest()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.Replay) != 3 {
		t.Errorf("a resume from Earliest replayed %d events, want 3", len(s.Replay))
	}
	s2, err := h.Subscribe(broker.SubscribeRequest{Patterns: patterns(t, "c"), From: got[0].Position()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if len(s2.Replay) != 2 || string(s2.Replay[0].Data) != "c/1" {
		t.Errorf("a resume after c/0 replayed %v", s2.Replay)
	}
}

func TestIndex(t *testing.T) {
	h := newHub(t, broker.Options{HistorySize: -1})
	// An event's keys are its data's words.
	h.Index("c", func(e *broker.Event) []string { return strings.Fields(string(e.Data)) })
	sub := func(keys ...string) *broker.Subscription {
		s, err := h.Subscribe(broker.SubscribeRequest{Patterns: patterns(t, "c"), Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	a, ab, open := sub("a"), sub("a", "b"), sub()
	publish(t, h, "c", "a")
	publish(t, h, "c", "b")
	publish(t, h, "c", "a b")
	publish(t, h, "c", "z")
	publish(t, h, "c", "a a")
	data := func(evs []*broker.Event) string {
		var out []string
		for _, e := range evs {
			out = append(out, string(e.Data))
		}
		return strings.Join(out, "|")
	}
	for name, tt := range map[string]struct {
		s    *broker.Subscription
		want string
	}{"a": {a, "a|a b|a a"}, "a,b": {ab, "a|b|a b|a a"}, "open": {open, "a|b|a b|z|a a"}} {
		if got := data(drain(t, tt.s)); got != tt.want {
			t.Errorf("subscriber %s got %q, want %q", name, got, tt.want)
		}
	}
	// Once every subscriber left, the channel is dropped; a new one is
	// indexed again.
	a.Close()
	ab.Close()
	open.Close()
	b := sub("b")
	publish(t, h, "c", "a")
	publish(t, h, "c", "b")
	if got := data(drain(t, b)); got != "b" {
		t.Errorf("after the channel came back, subscriber b got %q, want b", got)
	}
}
