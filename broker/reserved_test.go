package broker_test

import (
	"testing"

	"github.com/rumorhq/rumor/broker"
)

func TestReserved(t *testing.T) {
	for ch, want := range map[string]bool{
		"rumor": true, "rumor.census": true, "rumor.presence.room": true,
		"rumors": false, "room.rumor": false, "rumor-x.y": false,
	} {
		if got := broker.Reserved(ch); got != want {
			t.Errorf("Reserved(%q) = %v, want %v", ch, got, want)
		}
	}
}

// TestOwnSubscription: rumor's own subscriptions get events like any, but
// are not counted as subscribers.
func TestOwnSubscription(t *testing.T) {
	h := broker.NewHub(broker.Options{})
	defer h.Close()
	p, _ := broker.ParsePattern("rumor.census")
	own, err := h.Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{p}, Own: true})
	if err != nil {
		t.Fatal(err)
	}
	client, err := h.Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{p}})
	if err != nil {
		t.Fatal(err)
	}
	if n := h.Stats().Subscribers; n != 1 {
		t.Errorf("Stats().Subscribers = %d, want 1 (the client's only)", n)
	}
	own.Close()
	own.Close()
	if n := h.Stats().Subscribers; n != 1 {
		t.Errorf("after the own one closed: Stats().Subscribers = %d, want 1", n)
	}
	client.Close()
	if n := h.Stats().Subscribers; n != 0 {
		t.Errorf("after both closed: Stats().Subscribers = %d, want 0", n)
	}
}
