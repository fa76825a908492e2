package web

import (
	"net/http"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// A late event (one that reaches this node after a larger id was released,
// e.g. from a peer that was partitioned) must not move the browser's
// Last-Event-ID backwards, or the next resume would replay events the
// client already has: it goes out with its id line turned into a comment.
func TestLateEventKeepsLastEventID(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	s := ts.openStream(t, "/channels/orders", nil)

	first := ts.publish(t, "orders", "first")
	got := s.read(t, 1)
	if got[0].LastEventID != first {
		t.Fatalf("first event id = %q, want %q", got[0].LastEventID, first)
	}
	// An event from another origin, published before first: late here.
	id, _ := broker.ParseID(first)
	late := &broker.Event{
		ID:      broker.ID{Time: id.Time - 1, Origin: id.Origin + 1, Seq: 1},
		Channel: "orders",
		Data:    []byte("late"),
		Born:    time.Now(),
	}
	if !ts.hub.Deliver(late) {
		t.Fatal("Deliver(late) = false, want true")
	}
	got = s.read(t, 1)
	if got[0].Data != "late" || got[0].LastEventID != first {
		t.Fatalf("late event = %+v, want data %q with Last-Event-ID still %q", got[0], "late", first)
	}
	if st := ts.hub.Stats(); st.Late != 1 {
		t.Errorf("Stats().Late = %d, want 1", st.Late)
	}

	// Resuming from where the browser is replays nothing it already has.
	second := ts.publish(t, "orders", "second")
	r := ts.openStream(t, "/channels/orders", http.Header{"Last-Event-Id": {first}})
	got = r.read(t, 1)
	if got[0].LastEventID != second || got[0].Data != "second" {
		t.Fatalf("after resume from %s: %+v, want only %q (%s)", first, got[0], "second", second)
	}
}
