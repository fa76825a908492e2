package transport

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		// memberlist.Shutdown does not wait for a probe already under way
		// (its goroutine waits out the probe's timeouts, about a probe
		// interval), so give stragglers that long before calling them
		// leaks.
		deadline := time.Now().Add(10 * time.Second)
		err := goleak.Find()
		for err != nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			err = goleak.Find()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestRelayOrderAndResumeAnywhere(t *testing.T) {
	inMemory(t, testRelayOrderAndResumeAnywhere)
}

func testRelayOrderAndResumeAnywhere(t *testing.T) {
	nodes := startCluster(t, 3)
	pat, _ := broker.ParsePattern("orders.>")
	var subs []*broker.Subscription
	for _, nd := range nodes {
		s, err := nd.hub.Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{pat}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		subs = append(subs, s)
	}
	const per = 200
	done := make(chan error, len(nodes))
	for i, nd := range nodes {
		go func() {
			for j := range per {
				_, _, err := nd.hub.Publish(context.Background(), []broker.Message{{Channel: fmt.Sprintf("orders.n%d", i), Data: []byte(fmt.Sprint(j))}}, broker.AckPeer)
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range nodes {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	var orders [][]*broker.Event
	for _, s := range subs {
		orders = append(orders, recv(t, s, 3*per))
	}
	// Every node delivers every event once, each origin's in sequence;
	// the interleaving of origins is each node's own.
	for i, evs := range orders {
		seen := map[broker.ID]bool{}
		last := map[uint64]uint64{}
		for _, e := range evs {
			if seen[e.ID] || e.ID.Seq <= last[e.ID.Origin] {
				t.Fatalf("node %d: %v twice or out of its origin's order", i+1, e.ID)
			}
			seen[e.ID], last[e.ID.Origin] = true, e.ID.Seq
		}
	}
	// Resume on another node from the middle of node 1's stream, with the
	// id node 1 wrote: exactly the rest of node 1's stream comes back.
	k := len(orders[0]) / 2
	from, err := broker.ParsePosition(orders[0][k].Position().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := nodes[2].hub.Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{pat}, From: from})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := map[broker.ID]bool{}
	for _, e := range orders[0][k+1:] {
		want[e.ID] = true
	}
	if len(s.Replay) != len(want) {
		t.Fatalf("replay has %d events, want %d", len(s.Replay), len(want))
	}
	for i, e := range s.Replay {
		if !want[e.ID] {
			t.Fatalf("replay[%d] = %v, which node 1's position had passed", i, e.ID)
		}
	}
	for _, nd := range nodes {
		if st := nd.hub.Stats(); st.Late != 0 {
			t.Errorf("late events = %d, want 0", st.Late)
		}
	}
}

// TestMembersCarryAddresses: every member learns each peer's HTTP and
// admin addresses from gossip; a node without an admin listener has none.
func TestMembersCarryAddresses(t *testing.T) {
	nodes := startClusterWith(t, 2, func(i int) nodeOpts {
		return nodeOpts{config: func(c *Config) {
			c.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", 8080+i)
			if i == 0 {
				c.AdminAddr = "127.0.0.1:9090"
			}
		}}
	})
	want := map[string][2]string{
		nodes[0].c.Self(): {"127.0.0.1:8080", "127.0.0.1:9090"},
		nodes[1].c.Self(): {"127.0.0.1:8081", ""},
	}
	for _, nd := range nodes {
		for _, m := range nd.c.Members() {
			if got := [2]string{m.HTTP, m.Admin}; got != want[m.Name] {
				t.Errorf("%s sees %s at http %q admin %q, want %q", nd.name, m.Name, m.HTTP, m.Admin, want[m.Name])
			}
		}
	}
}
