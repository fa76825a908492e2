package main

// Presence across real `rumor serve` processes: counts converge, and a
// channel whose only subscriber's node is killed (kill -9) while the
// subscriber reconnects elsewhere within the grace is neither vacated nor
// occupied again; once it leaves for good, vacated comes once.

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sseTypes follows a stream and keeps the event types it gets.
type sseTypes struct {
	mu    sync.Mutex
	types []string
}

func (s *sseTypes) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.types)
}

// follow opens url as an event stream until the test ends, keeping its
// event types in order.
func follow(tb testing.TB, url string) *sseTypes {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		tb.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		tb.Fatalf("GET %s = %d", url, resp.StatusCode)
	}
	s := &sseTypes{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if t, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				s.mu.Lock()
				s.types = append(s.types, t)
				s.mu.Unlock()
			}
		}
	}()
	tb.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	return s
}

// hold opens url as a stream and returns a func that closes it.
func hold(tb testing.TB, url string) (closeIt func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		cancel()
		tb.Fatalf("GET %s: %v %v", url, resp, err)
	}
	var once sync.Once
	closeIt = func() { once.Do(func() { cancel(); resp.Body.Close() }) }
	tb.Cleanup(closeIt)
	return closeIt
}

// presenceOf returns the count of channel at url's GET /presence, and the
// live members it knows.
func presenceOf(tb testing.TB, url, channel string) (count, nodes int) {
	tb.Helper()
	code, body := get(tb, url+"/presence?channel="+channel)
	var p struct {
		Status   struct{ Nodes int }
		Channels []struct{ Subscribers int }
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &p) != nil || len(p.Channels) != 1 {
		tb.Fatalf("GET %s/presence?channel=%s = %d %s", url, channel, code, body)
	}
	return p.Channels[0].Subscribers, p.Status.Nodes
}

// within polls cond for at most d.
func within(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBinaryPresence(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the cluster to declare a killed node dead")
	}
	t.Parallel()
	nodes := startBinCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	watch := follow(t, n1.url+"/channels/rumor.presence.room")

	hold(t, n2.url+"/channels/room")
	for _, n := range nodes {
		within(t, 5*time.Second, n.name+" counting the subscriber", func() bool { c, _ := presenceOf(t, n.url, "room"); return c == 1 })
	}
	within(t, 10*time.Second, "occupied", func() bool { return slices.Equal(watch.get(), []string{"occupied"}) })

	// n2 dies with the only subscriber, who reconnects to n3 at once:
	// well within the grace (5 s), so no vacated and no second occupied.
	n2.signal(t, syscall.SIGKILL)
	closeOnN3 := hold(t, n3.url+"/channels/room")
	within(t, 30*time.Second, "n1 declaring n2 dead and counting the subscriber on n3 only", func() bool {
		c, live := presenceOf(t, n1.url, "room")
		return live == 2 && c == 1
	})
	time.Sleep(2 * time.Second) // past a handover: any wrong announcement would be out
	if got := watch.get(); !slices.Equal(got, []string{"occupied"}) {
		t.Fatalf("notices after the kill and the hop = %v, want only the first occupied", got)
	}

	// The subscriber leaves for good: vacated, once.
	closeOnN3()
	within(t, 20*time.Second, "vacated", func() bool { return slices.Equal(watch.get(), []string{"occupied", "vacated"}) })
	time.Sleep(time.Second) // a duplicate would come within it
	if got := watch.get(); !slices.Equal(got, []string{"occupied", "vacated"}) {
		t.Fatalf("notices = %v, want occupied and vacated once", got)
	}
}

// TestServePresence: presence is on by default; --presence=false turns
// GET /presence off, and with it the census the node publishes.
func TestServePresence(t *testing.T) {
	_, on := startServe(t)
	if c, nodes := presenceOf(t, on, "demo"); c != 0 || nodes != 1 {
		t.Errorf("GET /presence?channel=demo = %d subscribers, %d nodes; want 0 and 1", c, nodes)
	}
	_, off := startServe(t, "--presence=false")
	if code, body := get(t, off+"/presence"); code != http.StatusNotFound {
		t.Errorf("GET /presence with --presence=false = %d %s, want 404", code, body)
	}
	if _, body := get(t, off+"/channels"); strings.Contains(body, "rumor.census") {
		t.Errorf("GET /channels with --presence=false lists rumor.census: %s", body)
	}
}
