package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/r3labs/sse/v2"
	"gopkg.in/cenkalti/backoff.v1"
)

// TestR3labsClient: rumor streams work with github.com/r3labs/sse/v2, the
// Go SSE client most Go backends reach for: it gets ids, event types and
// multi-line data, and resumes exactly after the Last-Event-ID it is given.
// rumor subscribe does not use it (its traps are the Trap tests in
// subscribe_test.go); this proves a service that does is served correctly.
func TestR3labsClient(t *testing.T) {
	_, url := startServe(t)
	first := publishVia(t, url, "demo", "one")
	second := publishVia(t, url, "demo", "two\nlines")

	c := sse.NewClient(url + "/channels/demo")
	c.LastEventID.Store([]byte(first))
	ch := make(chan *sse.Event, 16)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := c.SubscribeChanRawWithContext(ctx, ch); err != nil {
		t.Fatalf("r3labs subscribe: %v", err)
	}
	defer c.Unsubscribe(ch)

	var out bytes.Buffer
	if err := run(t.Context(), []string{"publish", "--server", url, "--event", "greeting", "demo", "three"}, env(nil), &out, io.Discard); err != nil {
		t.Fatalf("rumor publish: %v", err)
	}
	var ans struct{ ID string }
	if err := json.Unmarshal(out.Bytes(), &ans); err != nil || ans.ID == "" {
		t.Fatalf("rumor publish printed %q, want an id", out.String())
	}
	third := ans.ID

	type got struct{ id, typ, data string }
	want := []got{{second, "", "two\nlines"}, {third, "greeting", "three"}}
	var have []got
	timeout := time.After(10 * time.Second)
	for len(have) < len(want) {
		select {
		case e := <-ch:
			if len(e.Data) == 0 && len(e.Event) == 0 {
				continue // the preamble's retry: line, which r3labs hands out as an event
			}
			have = append(have, got{string(e.ID), string(e.Event), string(e.Data)})
		case <-timeout:
			t.Fatalf("r3labs client got %+v within 10s, want %+v", have, want)
		}
	}
	for i := range want {
		if have[i] != want[i] {
			t.Errorf("r3labs event %d = %+v, want %+v", i, have[i], want[i])
		}
	}
	if id, _ := c.LastEventID.Load().([]byte); string(id) != third {
		t.Errorf("r3labs LastEventID = %q, want %q", id, third)
	}
	// Leave no subscription behind: TestR3labsTraps counts them.
	cancel()
	waitFor(t, "r3labs to end the subscription", func() bool { return goroutinesIn(r3labsSubscription) == 0 })
}

// TestR3labsTraps shows, with the real library, the traps the README warns
// about and rumor subscribe avoids (its Trap tests in subscribe_test.go).
// If a release of r3labs/sse fixes one, this fails: update the README.
func TestR3labsTraps(t *testing.T) {
	t.Run("a clean end is the end", func(t *testing.T) {
		// A draining rumor node ends streams cleanly: r3labs does not come back.
		srv := newStreamServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			beginStream(w)
			writeFlush(w, "retry: 10\nid: A\ndata: before the drain\n\n")
		})
		before := goroutinesIn(r3labsSubscription)
		c := sse.NewClient(srv.URL)
		ch := make(chan *sse.Event, 16)
		if err := c.SubscribeChanRaw(ch); err != nil {
			t.Fatal(err)
		}
		defer c.Unsubscribe(ch)
		// The subscription's goroutine ends when r3labs decides not to
		// connect again: from then on nothing will.
		waitFor(t, "r3labs to give the subscription up", func() bool { return goroutinesIn(r3labsSubscription) == before })
		if lastIDs, _ := srv.requests(); len(lastIDs) != 1 {
			t.Errorf("r3labs connected %d times after a clean end, want once (no reconnect)", len(lastIDs))
		}
	})

	t.Run("an event over 64 KiB blocks the stream", func(t *testing.T) {
		srv := newStreamServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			beginStream(w)
			writeFlush(w, "id: A\ndata: "+strings.Repeat("x", 100<<10)+"\n\nid: B\ndata: small\n\n")
			<-r.Context().Done()
		})
		c := sse.NewClient(srv.URL)
		c.ReconnectStrategy = backoff.NewConstantBackOff(50 * time.Millisecond)
		ch := make(chan *sse.Event, 16)
		if err := c.SubscribeChanRaw(ch); err != nil {
			t.Fatal(err)
		}
		defer c.Unsubscribe(ch)
		// Stuck: it fails on the large event and connects again, for the
		// same event, again and again.
		waitFor(t, "r3labs to connect a third time", func() bool { lastIDs, _ := srv.requests(); return len(lastIDs) >= 3 })
		if goroutinesIn(r3labsSubscription) == 0 {
			// The other cases wait for this goroutine to end.
			t.Errorf("no goroutine in %s while r3labs reconnects: it was renamed, update the name", r3labsSubscription)
		}
		for len(ch) > 0 {
			if e := <-ch; len(e.Data) > 0 {
				t.Errorf("r3labs delivered %d bytes of %q, want nothing: its scanner stops at 64 KiB", len(e.Data), e.ID)
			}
		}
	})

	t.Run("the default backoff gives up after 15 minutes", func(t *testing.T) {
		if got := backoff.NewExponentialBackOff().MaxElapsedTime; got != 15*time.Minute {
			t.Errorf("MaxElapsedTime of the default backoff = %v, want 15m", got)
		}
	})

	t.Run("Unsubscribe leaks the read loop", func(t *testing.T) {
		srv := newStreamServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			beginStream(w)
			writeFlush(w, "id: A\ndata: one\n\n")
			<-r.Context().Done()
		})
		before, loops := goroutinesIn(r3labsSubscription), goroutinesIn(r3labsReadLoop)
		c := sse.NewClient(srv.URL)
		ch := make(chan *sse.Event, 16)
		if err := c.SubscribeChanRaw(ch); err != nil {
			t.Fatal(err)
		}
		<-ch
		c.Unsubscribe(ch)
		srv.CloseClientConnections()
		// Once the subscription's goroutine has ended, nobody reads what
		// the read loop sends when the connection closes: if one is left
		// then, it is left for good.
		waitFor(t, "r3labs to end the subscription", func() bool { return goroutinesIn(r3labsSubscription) == before })
		if goroutinesIn(r3labsReadLoop) <= loops {
			t.Error("no r3labs read loop left after Unsubscribe; the leak is fixed: drop the goleak exception in main_test.go")
		}
	})
}

// r3labs' goroutines: the one a subscription runs its reconnect loop on,
// and the read loop of each connection.
const (
	r3labsSubscription = "github.com/r3labs/sse/v2.(*Client).SubscribeChanWithContext.func"
	r3labsReadLoop     = "github.com/r3labs/sse/v2.(*Client).readLoop"
)

// goroutinesIn counts the goroutines with a function whose name starts
// with fn on their stack (not as their creator).
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:goruntime.Stack(buf, true)]), "\n\n") {
		for _, line := range strings.Split(g, "\n") {
			if strings.HasPrefix(line, fn) {
				n++
				break
			}
		}
	}
	return n
}
