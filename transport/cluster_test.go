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
	var orders [][]broker.ID
	for _, s := range subs {
		evs := recv(t, s, 3*per)
		ids := make([]broker.ID, len(evs))
		for i, e := range evs {
			ids[i] = e.ID
		}
		orders = append(orders, ids)
	}
	for i := 1; i < len(orders); i++ {
		for j := range orders[0] {
			if orders[i][j] != orders[0][j] {
				t.Fatalf("node %d event %d = %v, node 1 = %v: orders differ", i+1, j, orders[i][j], orders[0][j])
			}
		}
	}
	// Resume on another node from the middle.
	mid := orders[0][len(orders[0])/2]
	s, err := nodes[2].hub.Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{pat}, After: mid})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.Replay) != len(orders[0])/2-1+len(orders[0])%2 && len(s.Replay) != len(orders[0])-len(orders[0])/2-1 {
		t.Fatalf("replay has %d events, want %d", len(s.Replay), len(orders[0])-len(orders[0])/2-1)
	}
	for i, e := range s.Replay {
		if want := orders[0][len(orders[0])/2+1+i]; e.ID != want {
			t.Fatalf("replay[%d] = %v, want %v", i, e.ID, want)
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
