package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/r3labs/sse/v2"
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
