package main

// History on request and the head recipe on a real 3-node cluster
// (memberlist, relays and HTTP, in process): every node pages a channel's
// history the same way, a cursor from one node continues on another, and
// the snapshot-then-stream recipe — head on one node, stream from it on
// another, while a publisher on a third keeps going — misses nothing and
// repeats nothing.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// getJSON GETs url and decodes its JSON answer into v.
func (c *testCluster) getJSON(tb testing.TB, u string, v any) {
	tb.Helper()
	resp, err := c.client.Get(u)
	if err != nil {
		tb.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s = %d %s", u, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		tb.Fatalf("GET %s: %v in %s", u, err, body)
	}
}

type historyAnswer struct {
	Events []struct{ ID, Channel, Data string }
	Next   *string
	More   bool
	Reset  bool
}

// pages reads channel's whole history on n, limit events a page, starting
// at cursor (empty: from the first retained event); it returns the ids and
// the cursor to continue from.
func (c *testCluster) pages(tb testing.TB, n *testNode, channel string, limit int, cursor string) (ids []string, next string) {
	tb.Helper()
	for range 1000 {
		u := fmt.Sprintf("%s/channels/%s/history?limit=%d", n.URL(), channel, limit)
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		var p historyAnswer
		c.getJSON(tb, u, &p)
		if len(p.Events) > limit || p.Reset {
			tb.Fatalf("GET %s: %d events, reset %v", u, len(p.Events), p.Reset)
		}
		for _, e := range p.Events {
			ids = append(ids, e.ID)
		}
		if p.Next != nil {
			cursor = *p.Next
		}
		if !p.More {
			return ids, cursor
		}
	}
	tb.Fatal("history never ran out of pages")
	return nil, ""
}

func TestHistoryAcrossNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := startCluster(t, ctx, 3)
	var all []string
	for i := range 24 { // every node publishes, interleaved
		all = append(all, c.publish(t, c.nodes[i%3], "ledger", "", fmt.Sprintf("entry %d", i)))
	}
	c.publish(t, c.nodes[0], "ledger.other", "", "not this channel")
	for _, n := range c.nodes {
		waitFor(t, n.name()+" to hold every event", func() bool {
			var p historyAnswer
			c.getJSON(t, n.URL()+"/channels/ledger/history?limit=1000", &p)
			return len(p.Events) == len(all)
		})
	}
	// Pages are in id order: the same on every node.
	want := slices.Clone(all)
	slices.SortFunc(want, func(a, b string) int { return idOf(t, a).Compare(idOf(t, b)) })
	for _, n := range c.nodes {
		if got, _ := c.pages(t, n, "ledger", 5, ""); !slices.Equal(got, want) {
			t.Errorf("history on %s =\n  %q\nwant\n  %q", n.name(), got, want)
		}
	}
	// A cursor from one node continues on another, and polls for more.
	var first historyAnswer
	c.getJSON(t, c.nodes[0].URL()+"/channels/ledger/history?limit=10", &first)
	rest, cursor := c.pages(t, c.nodes[1], "ledger", 4, *first.Next)
	if !slices.Equal(rest, want[10:]) {
		t.Errorf("n1's first page, then n2's pages from its cursor: %q, want %q", rest, want[10:])
	}
	later := c.publish(t, c.nodes[2], "ledger", "", "later")
	waitFor(t, "the later event on n1 after the cursor", func() bool {
		got, _ := c.pages(t, c.nodes[0], "ledger", 4, cursor)
		return slices.Equal(got, []string{later})
	})
	// last=N and since on another node.
	var last historyAnswer
	c.getJSON(t, c.nodes[2].URL()+"/channels/ledger/history?last=3", &last)
	if got := []string{last.Events[0].ID, last.Events[1].ID, last.Events[2].ID}; !slices.Equal(got, append(want[len(want)-2:], later)) {
		t.Errorf("last=3 on n3 = %q, want %q", got, append(want[len(want)-2:], later))
	}
}

func idOf(tb testing.TB, s string) broker.ID {
	tb.Helper()
	id, err := broker.ParseID(s)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// TestHeadRecipe: while n1 publishes, the application reads the head on
// n2, then streams from it on n3: the stream brings exactly the published
// events the head does not include, in order, once each.
func TestHeadRecipe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := startCluster(t, ctx, 3)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	for i := range 5 {
		c.publish(t, n1, "account.7", "", fmt.Sprintf("before %d", i))
	}
	var (
		mu        sync.Mutex
		published []string
	)
	done := make(chan struct{})
	go func() { // the application's backend, publishing through n1
		defer close(done)
		for i := range 150 {
			resp, err := c.client.Post(n1.URL()+"/channels/account.7", "text/plain", strings.NewReader(fmt.Sprint("during ", i)))
			if err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			var out struct{ ID string }
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if err != nil || out.ID == "" {
				t.Errorf("publish = %d, %v", resp.StatusCode, err)
				return
			}
			mu.Lock()
			published = append(published, out.ID)
			mu.Unlock()
			time.Sleep(time.Millisecond) // a steady publisher, not a test wait
		}
	}()
	waitFor(t, "publishing to be under way", func() bool { mu.Lock(); defer mu.Unlock(); return len(published) > 30 })

	var head struct{ Head string }
	c.getJSON(t, n2.URL()+"/channels/account.7/head", &head)
	p, err := broker.ParsePosition(head.Head)
	if err != nil {
		t.Fatalf("head %q: %v", head.Head, err)
	}
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, n3.URL()+"/channels/account.7?lastEventId="+url.QueryEscape(head.Head), nil)
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-done
	mu.Lock()
	var want []string
	for _, id := range published {
		if !p.Includes(idOf(t, id)) {
			want = append(want, id)
		}
	}
	mu.Unlock()
	if len(want) == 0 || len(want) == len(published) {
		t.Fatalf("the head %s includes %d of the %d events published meanwhile: want some, not all", head.Head, len(published)-len(want), len(published))
	}
	r := newEventReader(resp.Body, 1<<20)
	var got []string
	deadline := time.AfterFunc(15*time.Second, scancel)
	defer deadline.Stop()
	for len(got) < len(want) {
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("stream from the head on n3 after %d of %d events: %v", len(got), len(want), err)
		}
		if ev.Type == broker.ResetType {
			t.Fatalf("stream from the head: %s %s", ev.Type, ev.Data)
		}
		id, _, _ := strings.Cut(ev.ID, "~")
		got = append(got, id)
	}
	if !slices.Equal(got, want) {
		t.Errorf("stream on n3 from n2's head:\n  %q\nwant exactly the events after the head\n  %q", got, want)
	}
	// Nothing more comes: one more event is the next one.
	last := c.publish(t, n1, "account.7", "", "after")
	ev, err := r.Next()
	if id, _, _ := strings.Cut(ev.ID, "~"); err != nil || id != last {
		t.Errorf("next event = %q (%v), want %s", ev.ID, err, last)
	}
}
