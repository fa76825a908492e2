package transport

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// node is one in-process cluster member for tests.
type node struct {
	hub *broker.Hub
	c   *Cluster
}

func startNode(tb testing.TB, name string, join ...string) *node {
	tb.Helper()
	origin := broker.NewOrigin()
	var logger *slog.Logger
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	}
	c, err := New(Config{
		NodeName: name,
		BindAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:1",
		Join:     join,
		Origin:   origin,
		Local:    true,
		Label:    "test",
		Key:      []byte("0123456789abcdef"),
		Logger:   logger,
	})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	hub := broker.NewHub(broker.Options{Origin: origin, Relay: c, Logger: logger})
	if err := c.Start(context.Background(), hub); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	n := &node{hub: hub, c: c}
	tb.Cleanup(func() {
		_ = c.Leave(time.Second)
		_ = c.Shutdown()
		hub.Close()
	})
	return n
}

func waitFor(tb testing.TB, what string, timeout time.Duration, ok func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startCluster(tb testing.TB, n int) []*node {
	tb.Helper()
	first := startNode(tb, "n1")
	nodes := []*node{first}
	for i := 2; i <= n; i++ {
		nodes = append(nodes, startNode(tb, fmt.Sprintf("n%d", i), first.c.GossipAddr()))
	}
	for _, nd := range nodes {
		waitFor(tb, "ready", 10*time.Second, func() bool {
			return nd.c.Ready() == nil && len(nd.c.Members()) == n && nd.hub.Stats().Peers == n-1
		})
	}
	return nodes
}

func recv(tb testing.TB, s *broker.Subscription, n int) []*broker.Event {
	tb.Helper()
	var got []*broker.Event
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case <-s.Ready():
			evs, err := s.Drain(nil)
			got = append(got, evs...)
			if err != nil {
				tb.Fatalf("Drain: %v after %d events", err, len(got))
			}
		case <-deadline:
			tb.Fatalf("received %d events, want %d", len(got), n)
		}
	}
	return got
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
