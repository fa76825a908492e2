package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// channels every scenario publishes to; each subscriber reads all of them
// on one stream, so resume and order are checked across channels.
var channels = []string{"e2e.a", "e2e.b", "e2e.c", "e2e.d"}

// steadyLoad is the workload of every scenario: about 60 events/s from
// three publishers (one per node), four subscribers that move to a random
// node every 1–3 s. At this volume the default history (1000 events per
// channel, 5 minutes) covers every resume, so no rumor.reset is expected.
func steadyLoad(t *testing.T, c *cluster, tr http.RoundTripper) *workload {
	t.Helper()
	w := startWorkload(workloadConfig{
		Nodes:       c.targets(),
		Channels:    channels,
		Publishers:  3,
		Every:       40 * time.Millisecond,
		Subscribers: 4,
		Stay:        [2]time.Duration{time.Second, 3 * time.Second},
		Transport:   tr,
	})
	t.Cleanup(w.Close)
	return w
}

// finish stops the workload, checks what the subscribers got and fails the
// test on every broken promise.
func finish(t *testing.T, w *workload) (*report, []subscriberLog) {
	t.Helper()
	// Publishing goes on until every subscriber read from two nodes (the
	// check below insists on it): a fixed sleep left it to chance.
	if !w.WaitMoved(30 * time.Second) {
		t.Logf("some subscriber read from one node only after 30s of moving")
	}
	start := time.Now()
	pubs, subs, complete := w.Finish(20 * time.Second)
	t.Logf("subscribers complete %v after publishing stopped: %v", time.Since(start).Round(time.Millisecond), complete)
	r := check(pubs, subs)
	t.Logf("check: %s", r)
	if !r.OK() {
		for _, s := range subs {
			var conns []string
			for _, c := range s.Conns {
				conns = append(conns, c.String())
			}
			t.Logf("%s connections:\n  %s", s.Name, strings.Join(conns, "\n  "))
		}
		t.Errorf("delivery promises broken:\n%s", r)
	}
	if r.Acked < 100 {
		t.Errorf("only %d publishes were acknowledged: the scenario tested too little", r.Acked)
	}
	for name, n := range r.NodesPerSub {
		if n < 2 {
			t.Errorf("%s read from %d node(s): resume across nodes was not exercised", name, n)
		}
	}
	return r, subs
}

// TestKillAfterAck kills a node with SIGKILL right after it answered 200 to
// a publish, while publishers and subscribers run on every node. The
// default ack (stored here and acknowledged by one live peer) promises the
// event survives: it must reach every subscriber exactly once, as must
// every other acknowledged event, and subscribers of the dead node must
// resume elsewhere without a gap or a duplicate. It also measures how long
// the survivors take to see the crash, then restarts the node (a new
// incarnation) and moves every subscriber onto it as soon as it is ready.
func TestKillAfterAck(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test")
	}
	c := newCluster(t, loopbackSpecs(t, 3), clusterOptions{})
	c.startAll()
	w := steadyLoad(t, c, nil)
	time.Sleep(2 * time.Second)

	const victim = 0
	name := c.selves()[victim]
	rec := w.Publish("killer", victim, channels[0], "killer-1")
	killed := c.kill(victim)
	if !rec.acked() {
		t.Fatalf("publish before the kill: status %d, %s; want 200", rec.Status, rec.Err)
	}
	t.Logf("killed %s (%s) %v after its 200 for %s", c.specs[victim].Name, name, killed.Sub(rec.Done).Round(time.Microsecond), rec.ID)

	// How long until the survivors notice, from their logs: the relay
	// stream from the dead node closes, memberlist suspects it, then
	// declares it dead and the cluster drops its link.
	origin := strings.Split(rec.ID, "-")[1]
	for _, obs := range []int{1, 2} {
		p := c.running(obs)
		relay, _ := waitLog(p, killed, 20*time.Second, func(l logLine) bool {
			return l.Msg == "relay inbound closed" && l.Attrs["origin"] == origin
		})
		suspect, _ := waitLog(p, killed, 20*time.Second, func(l logLine) bool {
			return strings.HasPrefix(l.Msg, "Suspect "+name+" ")
		})
		dead, ok := waitLog(p, killed, 20*time.Second, func(l logLine) bool {
			return strings.HasPrefix(l.Msg, "member ") && l.Msg != "member joined" && l.Attrs["node"] == name
		})
		if !ok {
			t.Fatalf("%s did not drop %s within 20s of the kill", c.specs[obs].Name, name)
		}
		t.Logf("DETECT %s: relay stream from %s closed after %v, suspected after %v, declared dead after %v",
			c.specs[obs].Name, c.specs[victim].Name, since(relay, killed), since(suspect, killed), since(dead, killed))
		v, err := c.view(obs)
		if err != nil {
			t.Fatal(err)
		}
		if s := state(v, name); s != "dead" {
			t.Errorf("GET /cluster on %s lists the crashed %s as %q, want \"dead\"", c.specs[obs].Name, name, s)
		}
	}

	c.start(victim)
	t.Logf("restarted %s: ready after %v", c.specs[victim].Name, c.waitReady(victim, 30*time.Second).Round(10*time.Millisecond))
	// Every subscriber resumes on the new incarnation at once, while it
	// still catches up on the retained events.
	w.MoveAll(victim)
	if !w.WaitArrived(10 * time.Second) {
		t.Errorf("not every subscriber could open a stream on the restarted %s within 10s", c.specs[victim].Name)
	}
	t.Logf("cluster converged %v later", c.waitConverged(30*time.Second).Round(10*time.Millisecond))
	time.Sleep(2 * time.Second)

	_, subs := finish(t, w)
	for _, s := range subs {
		if !slices.ContainsFunc(s.Events, func(d delivery) bool { return d.ID == rec.ID }) {
			t.Errorf("%s never got %s, acknowledged by %s right before it was killed", s.Name, rec.ID, c.specs[victim].Name)
		}
	}
}

// TestRollingRestart restarts every node in turn, gracefully (SIGTERM,
// then a new process: a new incarnation on the same addresses), while
// publishers and subscribers run. A graceful stop must exit 0 within the
// drain timeout, peers must see a leave (not a death), and no
// acknowledged event may be lost or duplicated for any subscriber, whose
// streams the draining node ends with retry: so they resume elsewhere.
func TestRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test")
	}
	c := newCluster(t, loopbackSpecs(t, 3), clusterOptions{})
	c.startAll()
	w := steadyLoad(t, c, nil)
	time.Sleep(2 * time.Second)

	for i := range c.specs {
		old := c.selves()[i]
		took := c.stop(i)
		for j := range c.specs {
			if j == i {
				continue
			}
			// Peers hear the leave before the process exits; allow a
			// moment for the answer to be read.
			if c.waitSeen(j, old, func(s string) bool { return s == "left" }, 3*time.Second).IsZero() {
				v, err := c.view(j)
				t.Errorf("after %s's graceful stop, %s sees it as %q (%v), want \"left\"", c.specs[i].Name, c.specs[j].Name, state(v, old), err)
			}
		}
		c.start(i)
		ready := c.waitReady(i, 30*time.Second)
		conv := c.waitConverged(30 * time.Second)
		t.Logf("RESTART %s: stopped in %v, ready %v after start, converged %v later",
			c.specs[i].Name, took.Round(10*time.Millisecond), ready.Round(10*time.Millisecond), conv.Round(10*time.Millisecond))
		time.Sleep(time.Second)
	}
	time.Sleep(time.Second)
	finish(t, w)
}

// since is t-from, rounded, or "never" for a zero t.
func since(t, from time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Sub(from).Round(10 * time.Millisecond).String()
}
