package presence_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
	"github.com/rumorhq/rumor/presence"
)

// dropHub is a node's hub as its transport sees it: while an origin is
// set, it drops that origin's announcements from peers, direct or
// repaired, as a link that loses them would.
type dropHub struct {
	*broker.Hub
	origin atomic.Uint64
}

func (h *dropHub) Deliver(e *broker.Event) bool {
	if o := h.origin.Load(); o != 0 && e.ID.Origin == o && strings.HasPrefix(e.Channel, presence.NoticePrefix) {
		return false
	}
	return h.Hub.Deliver(e)
}

// TestDyingDeciderAnnouncedOnce kills a decider whose last announcement
// reached the other nodes but not the next decider: the next decider must
// wait for it (the relay's repair brings it) rather than announce the
// transition again.
func TestDyingDeciderAnnouncedOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for memberlist to declare a node dead")
	}
	nodes := startCluster(t, 4, testOpts())
	all := make([]uint64, len(nodes))
	for i, n := range nodes {
		all[i] = n.hub.Origin()
	}
	byOrigin := func(o uint64) *tnode {
		for _, n := range nodes {
			if n.hub.Origin() == o {
				return n
			}
		}
		return nil
	}
	// A channel decided by g, whose decider once g is gone is x; its
	// subscriber is on y, neither.
	var ch string
	var g, x, y *tnode
	for i := range 1000 {
		c := fmt.Sprintf("room.%d", i)
		dg := presence.DeciderAmong(c, all)
		var rest []uint64
		for _, o := range all {
			if o != dg {
				rest = append(rest, o)
			}
		}
		dx := presence.DeciderAmong(c, rest)
		for _, n := range nodes {
			if o := n.hub.Origin(); o != dg && o != dx {
				ch, g, x, y = c, byOrigin(dg), byOrigin(dx), n
				break
			}
		}
		if ch != "" {
			break
		}
	}
	if got := decidedBy(nodes[0].dir, ch, nodes); got != g {
		t.Fatalf("%s is decided by %v, want %s", ch, got, g.name)
	}
	w := watch(t, y.hub)
	x.drop.origin.Store(g.hub.Origin())
	leave := y.dir.Join(presence.Stream{Patterns: []string{ch}, Subject: "dave"})
	waitNotices(t, w, ch, "occupied", "join:dave")
	g.crash()
	waitFor(t, "x declaring g dead", 20*time.Second, func() bool { return x.dir.Status().Nodes == 3 })
	// x lacks g's announcements: it must not decide, so nothing comes
	// again while it lacks them.
	stays(t, w, ch, 2*time.Second, "occupied", "join:dave")
	if x.dir.Status().Deciding {
		t.Fatalf("%s decides without g's announcements", x.name)
	}
	// Repair brings them once the link stops losing them.
	x.drop.origin.Store(0)
	waitFor(t, "x deciding", 10*time.Second, func() bool { return x.dir.Status().Deciding })
	stays(t, w, ch, time.Second, "occupied", "join:dave")
	// And x does decide: the subscriber leaves, announced once.
	leave()
	waitNotices(t, w, ch, "occupied", "join:dave", "leave:dave", "vacated")
	stays(t, w, ch, time.Second, "occupied", "join:dave", "leave:dave", "vacated")
}
