package presence_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
	"github.com/rumorhq/rumor/presence"
	"github.com/rumorhq/rumor/transport"
)

// testOpts are the directory's timings in tests: fast, in the same
// proportions as the defaults.
func testOpts() presence.Options {
	return presence.Options{
		Interval:  20 * time.Millisecond,
		Heartbeat: 200 * time.Millisecond,
		Grace:     1500 * time.Millisecond, // long against the test's hops (100 ms), for loaded CI machines
		Handover:  300 * time.Millisecond,
	}
}

// tnode is one real node: a hub, a memberlist cluster on loopback and a
// directory.
type tnode struct {
	name string
	hub  *broker.Hub
	c    *transport.Cluster
	dir  *presence.Directory
	drop *dropHub // the hub as the transport sees it: it can drop announcements
	once sync.Once
}

var testKey = []byte("0123456789abcdef0123456789abcdef")

func testLogger(name string) *slog.Logger {
	if testing.Verbose() && os.Getenv("RUMOR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	}
	return nil
}

func startNode(tb testing.TB, name string, o presence.Options, join ...string) *tnode {
	tb.Helper()
	return startNodeHub(tb, name, o, broker.Options{}, join...)
}

// startNodeHub is startNode with the hub's options (Origin, Relay and
// Logger are set here).
func startNodeHub(tb testing.TB, name string, o presence.Options, ho broker.Options, join ...string) *tnode {
	tb.Helper()
	origin := broker.NewOrigin()
	log := testLogger(name)
	c, err := transport.New(transport.Config{
		NodeName: name, BindAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:1",
		Join: join, Origin: origin, Local: true, Label: "presence-test", Key: testKey, Logger: log,
	})
	if err != nil {
		tb.Fatalf("transport.New: %v", err)
	}
	ho.Origin, ho.Relay, ho.Logger = origin, c, log
	hub := broker.NewHub(ho)
	o.Hub, o.Members, o.Logger = hub, c, log
	dir, err := presence.New(o)
	if err != nil {
		tb.Fatalf("presence.New: %v", err)
	}
	drop := &dropHub{Hub: hub}
	if err := c.Start(context.Background(), drop); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	n := &tnode{name: name, hub: hub, c: c, dir: dir, drop: drop}
	tb.Cleanup(n.crash)
	return n
}

// crash stops the node as a crash looks to its peers: no leave.
func (n *tnode) crash() {
	n.once.Do(func() {
		n.dir.Close()
		_ = n.c.Shutdown()
		n.hub.Close()
	})
}

func startCluster(tb testing.TB, size int, o presence.Options) []*tnode {
	tb.Helper()
	return startClusterHub(tb, size, o, broker.Options{})
}

func startClusterHub(tb testing.TB, size int, o presence.Options, ho broker.Options) []*tnode {
	tb.Helper()
	nodes := []*tnode{startNodeHub(tb, "n1", o, ho)}
	for i := 1; i < size; i++ {
		nodes = append(nodes, startNodeHub(tb, fmt.Sprintf("n%d", i+1), o, ho, nodes[0].c.GossipAddr()))
	}
	for _, n := range nodes {
		waitFor(tb, n.name+" sees every member, synced", 15*time.Second, func() bool {
			st := n.dir.Status()
			return n.c.Ready() == nil && st.Nodes == size && st.Synced == size
		})
	}
	return nodes
}

func waitFor(tb testing.TB, what string, timeout time.Duration, ok func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// notices follows rumor.presence.> on a hub and keeps what arrives.
type notices struct {
	mu  sync.Mutex
	got []notice
}

type notice struct {
	id   broker.ID
	kind string
	n    presence.Notice
}

func watch(tb testing.TB, hub *broker.Hub) *notices {
	tb.Helper()
	p, _ := broker.ParsePattern(presence.NoticePrefix + ">")
	sub, err := hub.Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{p}})
	if err != nil {
		tb.Fatal(err)
	}
	w := &notices{}
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-sub.Ready():
			}
			evs, err := sub.Drain(nil)
			w.mu.Lock()
			for _, e := range evs {
				var n presence.Notice
				if json.Unmarshal(e.Data, &n) != nil {
					tb.Errorf("notice %s: bad data %q", e.ID, e.Data)
				}
				w.got = append(w.got, notice{id: e.ID, kind: e.Type, n: n})
			}
			w.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	tb.Cleanup(func() { close(stop); sub.Close(); <-done })
	return w
}

// of returns the kinds of the notices of channel, in arrival order, with
// the subject after join and leave ("join:alice").
func (w *notices) of(channel string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	seen := map[broker.ID]bool{}
	for _, n := range w.got {
		if n.n.Channel != channel || seen[n.id] {
			continue
		}
		seen[n.id] = true
		k := n.kind
		if n.n.Subject != "" {
			k += ":" + n.n.Subject
		}
		out = append(out, k)
	}
	return out
}

func waitNotices(tb testing.TB, w *notices, channel string, want ...string) {
	tb.Helper()
	waitNoticesFor(tb, 15*time.Second, w, channel, want...)
}

func waitNoticesFor(tb testing.TB, d time.Duration, w *notices, channel string, want ...string) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !slices.Equal(w.of(channel), want) {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for the notices of %s: %v, want %v", d, channel, w.of(channel), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stays checks that the notices of channel stay want for d (a check that
// nothing more comes: a duplicate would come within d).
func stays(tb testing.TB, w *notices, channel string, d time.Duration, want ...string) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		if got := w.of(channel); !slices.Equal(got, want) {
			tb.Fatalf("notices of %s = %v, want %v", channel, got, want)
		}
		if !time.Now().Before(deadline) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCountsConverge(t *testing.T) {
	nodes := startCluster(t, 3, testOpts())
	var leaves []func()
	for i, n := range nodes {
		for j := 0; j <= i; j++ {
			leaves = append(leaves, n.dir.Join(presence.Stream{Patterns: []string{"room.a", "orders.>"}, Subject: fmt.Sprintf("u%d", j)}))
		}
	}
	leaves = append(leaves, nodes[2].dir.Join(presence.Stream{Patterns: []string{"room.b"}}))
	for _, n := range nodes {
		waitFor(t, n.name+" counts 6 on room.a", 5*time.Second, func() bool {
			return n.dir.Count("room.a") == 6 && n.dir.Count("orders.>") == 6 && n.dir.Count("room.b") == 1
		})
		if got := n.dir.Subjects("room.a"); !slices.Equal(got, []string{"u0", "u1", "u2"}) {
			t.Errorf("%s: Subjects(room.a) = %v", n.name, got)
		}
		if got := n.dir.Subjects("room.b"); len(got) != 0 {
			t.Errorf("%s: Subjects(room.b) = %v, want none", n.name, got)
		}
	}
	for _, l := range leaves {
		l()
	}
	for _, n := range nodes {
		waitFor(t, n.name+" counts nothing", 5*time.Second, func() bool { return len(n.dir.Counts()) == 0 })
	}
}

func TestOccupiedVacatedOnce(t *testing.T) {
	nodes := startCluster(t, 3, testOpts())
	w := watch(t, nodes[0].hub)
	// Two subscribers on two nodes: one occupied, one join each subject.
	l1 := nodes[1].dir.Join(presence.Stream{Patterns: []string{"room"}, Subject: "alice"})
	l2 := nodes[2].dir.Join(presence.Stream{Patterns: []string{"room"}, Subject: "bob"})
	waitFor(t, "occupied and two joins", 10*time.Second, func() bool { return len(w.of("room")) == 3 })
	got := w.of("room")
	if got[0] != "occupied" || !slices.Contains(got, "join:alice") || !slices.Contains(got, "join:bob") {
		t.Fatalf("notices = %v, want occupied then join:alice and join:bob", got)
	}
	l1()
	waitNotices(t, w, "room", append(got, "leave:alice")...)
	l2()
	waitNotices(t, w, "room", append(got, "leave:alice", "leave:bob", "vacated")...)
	stays(t, w, "room", time.Second, append(got, "leave:alice", "leave:bob", "vacated")...)
}

func TestHopWithinGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("hops within the grace: seconds of real time")
	}
	nodes := startCluster(t, 3, testOpts())
	w := watch(t, nodes[0].hub)
	leave := nodes[1].dir.Join(presence.Stream{Patterns: []string{"hop"}, Subject: "carol"})
	waitNotices(t, w, "hop", "occupied", "join:carol")
	// The subscriber hops from node to node, each time well within the
	// grace: neither a leave nor a vacated.
	for i := range 4 {
		leave()
		time.Sleep(100 * time.Millisecond) // the client reconnecting: part of the scenario, not a check
		leave = nodes[(i+2)%3].dir.Join(presence.Stream{Patterns: []string{"hop"}, Subject: "carol"})
		time.Sleep(300 * time.Millisecond) // connected a while before the next hop
	}
	stays(t, w, "hop", testOpts().Grace+500*time.Millisecond, "occupied", "join:carol")
	leave()
	waitNotices(t, w, "hop", "occupied", "join:carol", "leave:carol", "vacated")
}

// TestDeciderKilled kills the node that decides a channel, and the node
// that holds its only subscriber: each transition still comes exactly
// once.
func TestDeciderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for memberlist to declare nodes dead")
	}
	// Four nodes, so that two remain to confirm the second death quickly.
	nodes := startCluster(t, 4, testOpts())
	w := watch(t, nodes[0].hub)
	// A channel decided by n2 (the one we kill), whose subscriber is on n3.
	ch := channelDecidedBy(t, nodes, nodes[1])
	nodes[2].dir.Join(presence.Stream{Patterns: []string{ch}, Subject: "dave"})
	waitNotices(t, w, ch, "occupied", "join:dave")
	nodes[1].crash()
	// The subscriber stays: the new decider must not announce anything.
	stays(t, w, ch, 3*time.Second, "occupied", "join:dave")
	waitFor(t, "n1 decides again", 45*time.Second, func() bool { return nodes[0].dir.Status().Deciding && nodes[0].dir.Status().Nodes == 3 })
	stays(t, w, ch, time.Second, "occupied", "join:dave")
	// Now the node holding the only subscriber dies: leave and vacated,
	// once, decided by one of the two left.
	nodes[2].crash()
	waitFor(t, "n1 and n4 declaring n3 dead", 40*time.Second, func() bool {
		return nodes[0].dir.Status().Nodes == 2 && nodes[3].dir.Status().Nodes == 2
	})
	waitNotices(t, w, ch, "occupied", "join:dave", "leave:dave", "vacated")
	stays(t, w, ch, time.Second, "occupied", "join:dave", "leave:dave", "vacated")
}

// TestJoinerKnowsAnnouncements starts a node after a channel was occupied:
// it must learn that from the others (their snapshots, or history's
// catch-up) and not announce it again, even where it decides.
// TestSnapshotCarriesAnnouncements covers the snapshots alone.
func TestJoinerKnowsAnnouncements(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a joiner to settle and decide: seconds of real time")
	}
	nodes := startCluster(t, 2, testOpts())
	w := watch(t, nodes[0].hub)
	var chans []string
	for i := range 20 {
		ch := fmt.Sprintf("busy.%d", i)
		chans = append(chans, ch)
		nodes[1].dir.Join(presence.Stream{Patterns: []string{ch}})
	}
	for _, ch := range chans {
		waitNotices(t, w, ch, "occupied")
	}
	n3 := startNode(t, "n3", testOpts(), nodes[0].c.GossipAddr())
	waitFor(t, "n3 synced and deciding", 15*time.Second, func() bool {
		st := n3.dir.Status()
		return st.Nodes == 3 && st.Synced == 3 && st.Deciding
	})
	decided := 0
	for _, ch := range chans {
		if n3.dir.Count(ch) != 1 {
			t.Errorf("n3: Count(%s) = %d, want 1", ch, n3.dir.Count(ch))
		}
		if decidedBy(nodes[0].dir, ch, []*tnode{nodes[0], nodes[1], n3}) == n3 {
			decided++
		}
	}
	if decided == 0 {
		t.Fatalf("n3 decides none of %d channels: the test proves nothing", len(chans))
	}
	for _, ch := range chans {
		stays(t, w, ch, 50*time.Millisecond, "occupied")
	}
}

// channelDecidedBy finds a channel name that n decides while all of nodes
// are live.
func channelDecidedBy(tb testing.TB, nodes []*tnode, n *tnode) string {
	tb.Helper()
	for i := range 1000 {
		ch := fmt.Sprintf("room.%d", i)
		if decidedBy(nodes[0].dir, ch, nodes) == n {
			return ch
		}
	}
	tb.Fatal("no channel decided by " + n.name)
	return ""
}

func decidedBy(d *presence.Directory, ch string, nodes []*tnode) *tnode {
	o := d.Decider(ch)
	for _, n := range nodes {
		if n.hub.Origin() == o {
			return n
		}
	}
	return nil
}

// TestRestart kills the node that decides some channels and starts a new
// one in its place (a restart: a new incarnation), which then decides some
// of them; their subscriber moves onto the new node within the grace.
// Nothing is announced twice, and vacated comes once for each at the end.
func TestRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for memberlist to declare a node dead")
	}
	nodes := startCluster(t, 3, testOpts())
	w := watch(t, nodes[0].hub)
	var chans []string
	for i := 0; len(chans) < 12; i++ {
		if ch := fmt.Sprintf("desk.%d", i); decidedBy(nodes[0].dir, ch, nodes) == nodes[1] {
			chans = append(chans, ch)
		}
	}
	leave := nodes[2].dir.Join(presence.Stream{Patterns: chans, Subject: "erin"})
	for _, ch := range chans {
		waitNotices(t, w, ch, "occupied", "join:erin")
	}

	nodes[1].crash()
	waitFor(t, "n1 and n3 declaring n2 dead", 40*time.Second, func() bool {
		return nodes[0].dir.Status().Nodes == 2 && nodes[2].dir.Status().Nodes == 2
	})
	again := startNode(t, "n2-again", testOpts(), nodes[0].c.GossipAddr())
	live := []*tnode{nodes[0], again, nodes[2]}
	for _, n := range live {
		waitFor(t, n.name+" synced with the new node and deciding", 15*time.Second, func() bool {
			st := n.dir.Status()
			return st.Nodes == 3 && st.Synced == 3 && st.Deciding
		})
	}
	decides := 0
	for _, ch := range chans {
		if again.dir.Count(ch) != 1 {
			t.Errorf("the new node counts %d on %s, want 1", again.dir.Count(ch), ch)
		}
		if decidedBy(nodes[0].dir, ch, live) == again {
			decides++
		}
	}
	t.Logf("the new node decides %d of the %d channels", decides, len(chans))
	for _, ch := range chans {
		stays(t, w, ch, 50*time.Millisecond, "occupied", "join:erin")
	}

	// The subscriber moves onto the new node.
	leave()
	leave = again.dir.Join(presence.Stream{Patterns: chans, Subject: "erin"})
	stays(t, w, chans[0], 2*testOpts().Grace, "occupied", "join:erin")
	for _, ch := range chans {
		stays(t, w, ch, 0, "occupied", "join:erin")
	}
	leave()
	for _, ch := range chans {
		waitNotices(t, w, ch, "occupied", "join:erin", "leave:erin", "vacated")
	}
	stays(t, w, chans[0], time.Second, "occupied", "join:erin", "leave:erin", "vacated")
	for _, ch := range chans {
		stays(t, w, ch, 0, "occupied", "join:erin", "leave:erin", "vacated")
	}
}
