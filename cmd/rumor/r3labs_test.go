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
		c := sse.NewClient(srv.URL)
		ch := make(chan *sse.Event, 16)
		if err := c.SubscribeChanRaw(ch); err != nil {
			t.Fatal(err)
		}
		defer c.Unsubscribe(ch)
		time.Sleep(time.Second)
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
		deadline := time.After(2 * time.Second)
	wait:
		for {
			select {
			case e := <-ch:
				if len(e.Data) > 0 {
					t.Errorf("r3labs delivered %d bytes of %q, want nothing: its scanner stops at 64 KiB", len(e.Data), e.ID)
				}
			case <-deadline:
				break wait
			}
		}
		if lastIDs, _ := srv.requests(); len(lastIDs) < 2 {
			t.Errorf("r3labs connected %d times, want it stuck reconnecting to the same event", len(lastIDs))
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
		before := readLoops()
		c := sse.NewClient(srv.URL)
		ch := make(chan *sse.Event, 16)
		if err := c.SubscribeChanRaw(ch); err != nil {
			t.Fatal(err)
		}
		<-ch
		c.Unsubscribe(ch)
		srv.CloseClientConnections()
		time.Sleep(500 * time.Millisecond)
		if readLoops() <= before {
			t.Error("no r3labs read loop left after Unsubscribe; the leak is fixed: drop the goleak exception in main_test.go")
		}
	})
}

// readLoops counts the goroutines in r3labs' read loop.
func readLoops() int {
	buf := make([]byte, 1<<20)
	return strings.Count(string(buf[:goruntime.Stack(buf, true)]), "r3labs/sse/v2.(*Client).readLoop")
}
