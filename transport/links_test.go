package transport

import (
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// TestLinks: Links reports every peer's link, up, and the events a peer
// holds back unacknowledged with the age of the oldest.
func TestLinks(t *testing.T) {
	a, b, c, held := startHeldCluster(t, nil)
	ls := a.c.Links()
	if len(ls) != 2 || ls[0].Peer != b.c.Self() || ls[1].Peer != c.c.Self() || !ls[0].Up || !ls[1].Up {
		t.Fatalf("Links() = %+v, want up links to %s and %s", ls, b.c.Self(), c.c.Self())
	}
	held.hold()
	_ = publishAsync(t.Context(), a.hub, broker.AckLocal, "orders", "x")
	waitFor(t, "the event unacknowledged by "+c.c.Self(), 5*time.Second, func() bool {
		ls = a.c.Links()
		return ls[1].Unacked == 1 && ls[1].Oldest > 0 && ls[0].Unacked == 0
	})
	held.release()
	waitFor(t, c.c.Self()+" to acknowledge", 5*time.Second, func() bool {
		ls = a.c.Links()
		return ls[1].Unacked == 0 && ls[1].Oldest == 0 && ls[1].LastAck > 0
	})
}
