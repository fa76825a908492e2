package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/broker"
	"github.com/rumorhq/rumor/presence"
)

// newPresenceServer serves a Handler with a presence directory over a
// real single-node hub.
func newPresenceServer(tb testing.TB, o Options) *testServer {
	tb.Helper()
	hub := broker.NewHub(broker.Options{})
	dir, err := presence.New(presence.Options{Hub: hub, Interval: 10 * time.Millisecond, Grace: 100 * time.Millisecond, Handover: 10 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	o.Hub, o.Presence, o.NodeName = hub, dir, "test-node"
	o.Registry = prometheus.NewRegistry()
	h, err := NewHandler(o)
	if err != nil {
		tb.Fatal(err)
	}
	ts := &testServer{Server: httptest.NewServer(h), hub: hub, h: h, reg: o.Registry}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := h.CloseStreams(ctx); err != nil {
			tb.Errorf("CloseStreams: %v", err)
		}
		ts.Close()
		dir.Close()
		hub.Close()
	})
	return ts
}

func (ts *testServer) presence(tb testing.TB, path string, header http.Header) presenceAnswer {
	tb.Helper()
	a := ts.do(tb, http.MethodGet, path, header, "")
	if a.status != http.StatusOK {
		tb.Fatalf("GET %s = %d %s, want 200", path, a.status, a.body)
	}
	var p presenceAnswer
	decode(tb, a.body, &p)
	return p
}

func counts(p presenceAnswer) map[string]int {
	out := map[string]int{}
	for _, c := range p.Channels {
		out[c.Channel] = c.Subscribers
	}
	return out
}

func TestPresenceCounts(t *testing.T) {
	ts := newPresenceServer(t, Options{})
	s1 := ts.openStream(t, "/channels/demo", nil)
	ts.openStream(t, "/events?channel=demo&channel=orders.>", nil)
	want := map[string]int{"demo": 2, "orders.>": 1}
	if got := counts(ts.presence(t, "/presence", nil)); !mapsEqual(got, want) {
		t.Errorf("GET /presence = %v, want %v", got, want)
	}
	var one channelPresent
	decode(t, ts.do(t, http.MethodGet, "/presence/demo", nil, "").body, &one)
	if one.Channel != "demo" || one.Subscribers != 2 {
		t.Errorf("GET /presence/demo = %+v, want 2 subscribers", one)
	}
	// Named channels come back in the order asked, with 0 for the empty.
	p := ts.presence(t, "/presence?channel=nobody&channel=demo", nil)
	if len(p.Channels) != 2 || p.Channels[0].Channel != "nobody" || p.Channels[0].Subscribers != 0 || p.Channels[1].Subscribers != 2 {
		t.Errorf("GET /presence?channel=nobody&channel=demo = %+v", p.Channels)
	}
	if p.Status.Nodes != 1 || p.Status.Synced != 1 {
		t.Errorf("status = %+v, want one node, synced", p.Status)
	}
	s1.resp.Body.Close()
	waitFor(t, "demo down to 1", func() bool { return counts(ts.presence(t, "/presence", nil))["demo"] == 1 })
}

func TestPresenceNotices(t *testing.T) {
	ts := newPresenceServer(t, Options{})
	watch := ts.openStream(t, "/channels/rumor.presence.room", nil)
	s := ts.openStream(t, "/channels/room", nil)
	evs := watch.read(t, 1)
	if evs[0].Type != "occupied" {
		t.Fatalf("first notice = %+v, want occupied", evs[0])
	}
	var n presence.Notice
	decode(t, evs[0].Data, &n)
	if n.Channel != "room" || n.Kind != "occupied" || n.Subscribers != 1 {
		t.Errorf("occupied data = %+v", n)
	}
	s.resp.Body.Close()
	if evs = watch.read(t, 1); evs[0].Type != "vacated" {
		t.Fatalf("second notice = %+v, want vacated", evs[0])
	}
}

func TestReservedChannels(t *testing.T) {
	ts := newPresenceServer(t, Options{})
	wantError(t, "POST /channels/rumor.presence.room", ts.do(t, http.MethodPost, "/channels/rumor.presence.room", nil, "fake"), http.StatusBadRequest)
	wantError(t, "POST /channels/rumor.census", ts.do(t, http.MethodPost, "/channels/rumor.census", nil, "fake"), http.StatusBadRequest)
	a := ts.do(t, http.MethodPost, "/publish", nil, `[{"channel":"ok","data":"x"},{"channel":"rumor.presence.x","data":"fake"}]`)
	wantError(t, "POST /publish with a reserved channel", a, http.StatusBadRequest)
	if !strings.Contains(a.body, "reserved") {
		t.Errorf("POST /publish error = %s, want it to say reserved", a.body)
	}
	for _, path := range []string{"/channels/rumor.census", "/events?channel=rumor.>", "/events?channel=rumor.*", "/channels/rumor"} {
		wantError(t, "GET "+path, ts.do(t, http.MethodGet, path, nil, ""), http.StatusBadRequest)
	}
	wantError(t, "GET /presence?channel=rumor.census", ts.do(t, http.MethodGet, "/presence?channel=rumor.census", nil, ""), http.StatusBadRequest)
	wantError(t, "GET /channels/rumor.census/history", ts.do(t, http.MethodGet, "/channels/rumor.census/history", nil, ""), http.StatusBadRequest)
	wantError(t, "GET /channels/rumor.census/head", ts.do(t, http.MethodGet, "/channels/rumor.census/head", nil, ""), http.StatusBadRequest)
	if a := ts.do(t, http.MethodGet, "/channels/rumor.presence.room/history", nil, ""); a.status != http.StatusOK {
		t.Errorf("GET /channels/rumor.presence.room/history = %d %s, want 200: a channel's transitions are history like any", a.status, a.body)
	}
	// A stream of everything carries none of rumor's own events: the
	// first it gets is the marker published after an occupied.
	all := ts.openStream(t, "/events?channel=>", nil)
	ts.openStream(t, "/channels/room", nil)
	waitFor(t, "room occupied", func() bool { return ts.hub.Stats().Channels >= 3 })
	ts.publish(t, "marker", "m")
	if evs := all.read(t, 1); evs[0].Data != "m" {
		t.Fatalf("first event on > = %+v, want the marker", evs[0])
	}
}

func TestPresenceAuth(t *testing.T) {
	a := newAuth(t, auth.Config{HMACSecret: []byte(testSecret), Public: []string{"lobby"}})
	ts := newPresenceServer(t, Options{Auth: a})
	bearer := func(sub string, subscribe, pres []string) http.Header {
		c := claims(nil, subscribe, time.Hour)
		c["sub"] = sub
		c["rumor"] = map[string]any{"subscribe": subscribe, "presence": pres}
		return http.Header{"Authorization": {"Bearer " + hs256(t, c)}}
	}
	ts.openStream(t, "/channels/room", bearer("alice", []string{"room"}, nil))
	ts.openStream(t, "/channels/room", bearer("bob", []string{"room"}, nil))
	ts.openStream(t, "/channels/room", bearer("bob", []string{"room"}, nil))
	ts.openStream(t, "/channels/lobby", nil)

	// A subscribe grant reads the count, not the subjects.
	p := ts.presence(t, "/presence?channel=room", bearer("carol", []string{"room"}, nil))
	if c := p.Channels[0]; c.Subscribers != 3 || c.Subjects != nil {
		t.Errorf("with a subscribe grant: %+v, want 3 and no subjects", c)
	}
	// A presence grant reads both.
	p = ts.presence(t, "/presence?channel=room", bearer("carol", nil, []string{"room"}))
	if c := p.Channels[0]; c.Subscribers != 3 || !slices.Equal(c.Subjects, []string{"alice", "bob"}) {
		t.Errorf("with a presence grant: %+v, want 3, alice and bob", c)
	}
	// Without a token: a public channel's count; otherwise 401.
	if c := ts.presence(t, "/presence?channel=lobby", nil).Channels[0]; c.Subscribers != 1 || c.Subjects != nil {
		t.Errorf("lobby without a token: %+v", c)
	}
	wantError(t, "GET /presence?channel=room without a token", ts.do(t, http.MethodGet, "/presence?channel=room", nil, ""), http.StatusUnauthorized)
	wantError(t, "GET /presence/room with another channel's grant", ts.do(t, http.MethodGet, "/presence/room", bearer("eve", []string{"other"}, nil), ""), http.StatusForbidden)
	// Unnamed, the list holds what the token may see.
	if got := counts(ts.presence(t, "/presence", bearer("eve", []string{"other"}, nil))); !mapsEqual(got, map[string]int{"lobby": 1}) {
		t.Errorf("GET /presence for eve = %v, want only lobby", got)
	}
	// Following joins and leaves takes the presence grant: subscribe to
	// everything is not enough.
	wantError(t, "stream of rumor.presence.room with subscribe >", ts.do(t, http.MethodGet, "/channels/rumor.presence.room", bearer("eve", []string{">"}, nil), ""), http.StatusForbidden)
	w := ts.openStream(t, "/channels/rumor.presence.room", bearer("carol", nil, []string{"room"}))
	ts.openStream(t, "/channels/room", bearer("dave", []string{"room"}, nil))
	// What it reads: the joins it missed, if they were not announced
	// before it came, then dave's.
	var got []string
	for len(got) < 4 && !slices.Contains(got, "join:dave") {
		ev := w.read(t, 1)[0]
		var n presence.Notice
		decode(t, ev.Data, &n)
		if n.Channel != "room" || n.Kind != ev.Type {
			t.Errorf("notice %+v: data %+v", ev, n)
		}
		got = append(got, strings.TrimSuffix(ev.Type+":"+n.Subject, ":"))
	}
	if !slices.Contains(got, "join:dave") {
		t.Errorf("notices = %v, want join:dave among them", got)
	}
}

func FuzzPresenceKeys(f *testing.F) {
	f.Add("demo", "orders.>")
	f.Add("rumor.census", "")
	f.Add("a.*.b", "a..b")
	f.Fuzz(func(t *testing.T, a, b string) {
		keys, err := parsePresenceKeys([]string{a, b})
		if err != nil {
			return
		}
		for _, k := range keys {
			if _, err := broker.ParsePattern(k.String()); err != nil || broker.Reserved(k.String()) {
				t.Fatalf("accepted %q", k.String())
			}
		}
		if len(keys) == 0 || len(keys) > 2 || a == b && len(keys) != 1 {
			t.Fatalf("parsePresenceKeys(%q, %q) = %v", a, b, keys)
		}
	})
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
