package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// One stream of several channels and patterns with ?envelope=json learns
// each event's channel; the same stream without it gets the data as
// published, and the event type stays the publisher's either way.
func TestStreamEnvelope(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	env := ts.openStream(t, "/events?channel=demo&channel=orders.%3E&envelope=json", nil)
	plain := ts.openStream(t, "/events?channel=demo&channel=orders.%3E", nil)
	ids := []string{ts.publish(t, "demo", "a\nb"), ts.publish(t, "orders.eu", `{"n":1}`)}
	if a := ts.do(t, http.MethodPost, "/channels/orders.us?event=order.paid", nil, "paid"); a.status != http.StatusOK {
		t.Fatalf("publish = %d %s", a.status, a.body)
	}
	want := []struct{ channel, typ, data string }{{"demo", "message", "a\nb"}, {"orders.eu", "message", `{"n":1}`}, {"orders.us", "order.paid", "paid"}}
	for i, ev := range env.read(t, 3) {
		var e struct{ ID, Channel, Type, Data string }
		if err := json.Unmarshal([]byte(ev.Data), &e); err != nil {
			t.Fatalf("enveloped data %q: %v", ev.Data, err)
		}
		w := want[i]
		if e.Channel != w.channel || e.Data != w.data || ev.Type != w.typ || strings.Split(ev.LastEventID, "~")[0] != e.ID {
			t.Errorf("enveloped event %d = %+v (type %s, id %s), want channel %s, data %q, type %s", i, e, ev.Type, ev.LastEventID, w.channel, w.data, w.typ)
		}
		if i < len(ids) && e.ID != ids[i] {
			t.Errorf("enveloped event %d id %s, want the publisher's %s", i, e.ID, ids[i])
		}
		if w.typ != "message" && e.Type != w.typ || w.typ == "message" && e.Type != "" {
			t.Errorf("enveloped event %d type field %q, want %q", i, e.Type, w.typ)
		}
	}
	for i, ev := range plain.read(t, 3) {
		if ev.Data != want[i].data || ev.Type != want[i].typ {
			t.Errorf("plain event %d = %+v, want data %q type %s", i, ev, want[i].data, want[i].typ)
		}
	}
}

// A resumed enveloped stream is enveloped too, including the frames whose
// ids join the resume position.
func TestStreamEnvelopeResume(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	ids := ts.publishAll(t, "chat", []string{"one", "two", "three"})
	s := ts.openStream(t, "/channels/chat?envelope=json&lastEventId="+url.QueryEscape(ids[0]), nil)
	var got []string
	for _, ev := range s.read(t, 2) {
		var e struct{ Channel, Data string }
		if err := json.Unmarshal([]byte(ev.Data), &e); err != nil || e.Channel != "chat" {
			t.Fatalf("replayed data %q: %v, want an envelope of chat", ev.Data, err)
		}
		got = append(got, e.Data)
	}
	if !slices.Equal(got, []string{"two", "three"}) {
		t.Errorf("resumed enveloped stream = %q, want two, three", got)
	}
}

// ?since= starts a stream with the events published since then; a resume
// ignores it.
func TestStreamSince(t *testing.T) {
	wall := time.UnixMilli(1_800_000_000_000)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return wall }
	ts := newServer(t, broker.Options{Now: now}, Options{})
	ts.publishAll(t, "c", []string{"old"})
	mu.Lock()
	wall = wall.Add(time.Hour)
	mu.Unlock()
	ids := ts.publishAll(t, "c", []string{"new1", "new2"})
	at := url.QueryEscape(wall.Add(-time.Minute).Format(time.RFC3339))
	s := ts.openStream(t, "/channels/c?since="+at, nil)
	var got []string
	for _, ev := range s.read(t, 2) {
		got = append(got, ev.Data)
	}
	if !slices.Equal(got, []string{"new1", "new2"}) {
		t.Errorf("?since=%s = %q, want new1, new2", at, got)
	}
	s = ts.openStream(t, "/channels/c?since="+at, http.Header{"Last-Event-ID": {ids[0]}})
	if ev := s.read(t, 1)[0]; ev.Data != "new2" {
		t.Errorf("a resume with ?since= starts at %q, want new2 (the resume wins)", ev.Data)
	}
}

// ?last=N starts a stream with the last N retained events, then live ones.
func TestStreamLast(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	ts.publishAll(t, "price", []string{"1", "2", "3", "4"})
	s := ts.openStream(t, "/channels/price?last=2", nil)
	ts.publish(t, "price", "5")
	var got []string
	for _, ev := range s.read(t, 3) {
		got = append(got, ev.Data)
	}
	if !slices.Equal(got, []string{"3", "4", "5"}) {
		t.Errorf("?last=2 then live = %q, want 3, 4, 5", got)
	}
}

func TestStreamOptionsErrors(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	for _, q := range []string{"envelope=xml", "envelope=json&envelope=none", "last=0", "last=-1", "last=x", "last=10001", "last=01", "last=+1", "last=1&last=2", "last=", "since=x", "since=-1m", "since=1m&since=2m", "since=1m&last=1"} {
		a := ts.do(t, http.MethodGet, "/channels/x?"+q, nil, "")
		if a.status != http.StatusBadRequest || !strings.Contains(a.body, `"error"`) {
			t.Errorf("GET /channels/x?%s = %d %s, want 400 with an error", q, a.status, a.body)
		}
	}
}

// FuzzStreamOptions: any query is a stream's options or a clear error,
// never a panic; a count is within its bounds.
func FuzzStreamOptions(f *testing.F) {
	for _, q := range []string{"envelope=json", "last=5", "last=99999999999999999999", "envelope=none&last=1", "last=%00", "envelope", "since=5m", "since=2026-12-08T06:00:00Z&envelope=json", "since=1m&last=2"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, query string) {
		r := &http.Request{URL: &url.URL{RawQuery: query}}
		envelope, last, since, err := streamOptions(r, time.UnixMilli(1_800_000_000_000))
		if err != nil {
			if envelope || last != 0 || !since.IsZero() || err.Error() == "" {
				t.Fatalf("streamOptions(%q) = %v, %d, %v, %v", query, envelope, last, since, err)
			}
			return
		}
		if last > 0 && !since.IsZero() {
			t.Fatalf("streamOptions(%q) = last %d and since %v: want one", query, last, since)
		}
		if last < 0 || last > maxStreamLast {
			t.Fatalf("streamOptions(%q) last = %d, out of bounds", query, last)
		}
		q := r.URL.Query()
		if envelope != (q.Get("envelope") == "json") {
			t.Fatalf("streamOptions(%q) envelope = %v", query, envelope)
		}
	})
}
