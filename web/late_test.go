package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// An event that reaches this node after a position written here claimed
// it (here, from an origin nobody had heard of, whose clock is behind) goes
// out with its own id line like any other: the id starts with the event's
// id and its resume part keeps what the browser saw, so resuming from it
// replays nothing the client already has.
func TestLateEventKeepsLastEventID(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	s := ts.openStream(t, "/channels/orders", nil)

	first := ts.publish(t, "orders", "first")
	got := s.read(t, 1)
	if got[0].LastEventID != first {
		t.Fatalf("first event id = %q, want %q", got[0].LastEventID, first)
	}
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
	at := got[0].LastEventID
	if got[0].Data != "late" || !strings.HasPrefix(at, late.ID.String()+"~") {
		t.Fatalf("late event = %+v, want data %q with an id starting %q~", got[0], "late", late.ID)
	}
	p, err := broker.ParsePosition(at)
	if err != nil || !p.Includes(id) || !p.Includes(late.ID) {
		t.Fatalf("ParsePosition(%q) = %v, %v: want both events included", at, p, err)
	}
	if st := ts.hub.Stats(); st.Late != 1 {
		t.Errorf("Stats().Late = %d, want 1", st.Late)
	}

	// Resuming from where the browser is replays nothing it already has.
	second := ts.publish(t, "orders", "second")
	r := ts.openStream(t, "/channels/orders", http.Header{"Last-Event-Id": {at}})
	got = r.read(t, 1)
	if !strings.HasPrefix(got[0].LastEventID, second) || got[0].Data != "second" {
		t.Fatalf("after resume from %s: %+v, want only %q (%s)", at, got[0], "second", second)
	}
}
