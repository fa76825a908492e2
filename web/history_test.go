package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/broker"
)

type testPage struct {
	Channel string
	Node    string
	Events  []struct{ ID, Channel, Type, Data, Time string }
	Next    *string
	More    bool
	Reset   bool
}

func (ts *testServer) history(tb testing.TB, path string, header http.Header) testPage {
	tb.Helper()
	a := ts.do(tb, http.MethodGet, path, header, "")
	if a.status != http.StatusOK {
		tb.Fatalf("GET %s = %d %s", path, a.status, a.body)
	}
	var p testPage
	if err := json.Unmarshal([]byte(a.body), &p); err != nil {
		tb.Fatalf("GET %s: %v in %s", path, err, a.body)
	}
	return p
}

func pageIDs(p testPage) []string {
	var out []string
	for _, e := range p.Events {
		out = append(out, e.ID)
	}
	return out
}

func TestHistoryHTTP(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	ids := ts.publishAll(t, "orders", []string{"a", "b\nc", "d", "e", "f"})
	ts.publish(t, "other", "x")

	// Page by two with the cursor.
	var got []string
	path := "/channels/orders/history?limit=2"
	for range 10 {
		p := ts.history(t, path, nil)
		if p.Channel != "orders" || p.Node != "test-node" || len(p.Events) > 2 {
			t.Fatalf("GET %s = %+v", path, p)
		}
		got = append(got, pageIDs(p)...)
		if !p.More {
			break
		}
		path = "/channels/orders/history?limit=2&cursor=" + url.QueryEscape(*p.Next)
	}
	if !slices.Equal(got, ids) {
		t.Errorf("paged history = %q, want %q", got, ids)
	}

	p := ts.history(t, "/channels/orders/history", nil)
	e := p.Events[1]
	if e.Data != "b\nc" || e.Channel != "orders" || e.Type != "" || p.More || p.Reset || p.Next == nil {
		t.Errorf("history = %+v, want every event, the 2nd with data b\\nc", p)
	}
	if tm, err := time.Parse(time.RFC3339, e.Time); err != nil || time.Since(tm) > time.Minute || time.Since(tm) < -time.Minute {
		t.Errorf("event time %q (%v), want about now", e.Time, err)
	}
	if p := ts.history(t, "/channels/orders/history?after="+ids[2], nil); !slices.Equal(pageIDs(p), ids[3:]) {
		t.Errorf("?after=%s = %q, want %q", ids[2], pageIDs(p), ids[3:])
	}
	if p := ts.history(t, "/channels/orders/history?last=2", nil); !slices.Equal(pageIDs(p), ids[3:]) {
		t.Errorf("?last=2 = %q, want %q", pageIDs(p), ids[3:])
	}
	if p := ts.history(t, "/channels/orders/history?since=1m", nil); !slices.Equal(pageIDs(p), ids) {
		t.Errorf("?since=1m = %q, want every event", pageIDs(p))
	}
	future := url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))
	p = ts.history(t, "/channels/orders/history?since="+future, nil)
	if len(p.Events) != 0 || p.Next == nil {
		t.Errorf("?since=in an hour = %+v, want no events and a cursor to poll with", p)
	}
	if p := ts.history(t, "/channels/none/history", nil); len(p.Events) != 0 || p.Next != nil || p.Events == nil {
		t.Errorf("history of an unknown channel = %+v, want [] and next null", p)
	}
}

func TestHistoryHTTPErrors(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	for _, q := range []string{
		"limit=0", "limit=1001", "limit=x", "last=0", "last=100001", "after=nope", "cursor=0~0",
		"since=-5m", "since=0s", "since=yesterday", "since=1969-01-01T00:00:00Z", "after=" + strings.Repeat("0", 35),
		"after=0194d0e5c3a70000-8f3c2a1b4d5e6f70-1&since=1m", "cursor=a&cursor=b",
	} {
		a := ts.do(t, http.MethodGet, "/channels/orders/history?"+q, nil, "")
		if a.status != http.StatusBadRequest || !strings.Contains(a.body, `"error"`) {
			t.Errorf("GET history?%s = %d %s, want 400 with an error", q, a.status, a.body)
		}
	}
	// Patterns, bad names, and system channels (the Mercure face's updates,
	// which its own authorization guards) are refused.
	for _, path := range []string{"/channels/orders.%3E/history", "/channels/orders.*/head", "/channels/a..b/head", "/channels/%24mercure/history", "/channels/$mercure/head"} {
		if a := ts.do(t, http.MethodGet, path, nil, ""); a.status != http.StatusBadRequest {
			t.Errorf("GET %s = %d %s, want 400", path, a.status, a.body)
		}
	}
	if a := ts.do(t, http.MethodPost, "/channels/orders/history", nil, "x"); a.status != http.StatusMethodNotAllowed {
		t.Errorf("POST history = %d, want 405", a.status)
	}
}

// The head recipe on one node: read the head, then stream from it: the
// stream starts exactly after the head, whatever was published meanwhile.
func TestHeadHTTP(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	var head struct {
		Channel, Node, Head string
		Last                *string
	}
	a := ts.do(t, http.MethodGet, "/channels/prices/head", nil, "")
	if err := json.Unmarshal([]byte(a.body), &head); a.status != http.StatusOK || err != nil || head.Last != nil || !strings.HasPrefix(head.Head, "0~") {
		t.Fatalf("GET head of an empty channel = %d %s, want last null and a head", a.status, a.body)
	}
	first := ts.publish(t, "prices", "1")
	empty := head.Head
	a = ts.do(t, http.MethodGet, "/channels/prices/head", nil, "")
	if err := json.Unmarshal([]byte(a.body), &head); err != nil || head.Last == nil || *head.Last != first || !strings.HasPrefix(head.Head, first) {
		t.Fatalf("GET head = %s, want last %s", a.body, first)
	}
	second := ts.publish(t, "prices", "2")
	s := ts.openStream(t, "/channels/prices?lastEventId="+url.QueryEscape(head.Head), nil)
	if ev := s.read(t, 1)[0]; !strings.HasPrefix(ev.LastEventID, second) {
		t.Errorf("stream from the head starts at %s, want %s", ev.LastEventID, second)
	}
	s = ts.openStream(t, "/channels/prices?lastEventId="+url.QueryEscape(empty), nil)
	if evs := s.read(t, 2); !strings.HasPrefix(evs[0].LastEventID, first) || !strings.HasPrefix(evs[1].LastEventID, second) {
		t.Errorf("stream from the empty channel's head = %+v, want %s then %s", evs, first, second)
	}
}

// History and head are read with the authorization of a stream.
func TestHistoryAuth(t *testing.T) {
	a := newAuth(t, auth.Config{HMACSecret: []byte(testSecret), Public: []string{"news"}})
	ts := newServer(t, broker.Options{}, Options{Auth: a})
	pub := http.Header{"Authorization": {"Bearer " + hs256(t, claims([]string{">"}, nil, time.Hour))}}
	for _, ch := range []string{"news", "orders.eu"} {
		if ans := ts.do(t, http.MethodPost, "/channels/"+ch, pub, "x"); ans.status != http.StatusOK {
			t.Fatalf("publish %s = %d %s", ch, ans.status, ans.body)
		}
	}
	reader := http.Header{"Authorization": {"Bearer " + hs256(t, claims(nil, []string{"orders.*"}, time.Hour))}}
	expired := http.Header{"Authorization": {"Bearer " + hs256(t, claims(nil, []string{"orders.*"}, -time.Hour))}}
	for _, what := range []string{"history", "head"} {
		for _, tc := range []struct {
			name    string
			channel string
			header  http.Header
			want    int
		}{
			{"no token, public channel", "news", nil, http.StatusOK},
			{"no token", "orders.eu", nil, http.StatusUnauthorized},
			{"a granted token", "orders.eu", reader, http.StatusOK},
			{"a token without the grant", "orders.eu.paid", reader, http.StatusForbidden},
			{"an expired token", "orders.eu", expired, http.StatusUnauthorized},
			{"a publish-only token", "orders.eu", pub, http.StatusForbidden},
		} {
			ans := ts.do(t, http.MethodGet, "/channels/"+tc.channel+"/"+what, tc.header, "")
			if ans.status != tc.want {
				t.Errorf("%s: GET %s of %s = %d %s, want %d", tc.name, what, tc.channel, ans.status, ans.body, tc.want)
			}
			if tc.want == http.StatusOK && what == "history" && !strings.Contains(ans.body, `"data":"x"`) {
				t.Errorf("%s: history of %s = %s, want its event", tc.name, tc.channel, ans.body)
			}
			if tc.want != http.StatusOK && (ans.header.Get("WWW-Authenticate") == "" || strings.Contains(ans.body, `"data"`)) {
				t.Errorf("%s: refusal = %v %s, want WWW-Authenticate and no events", tc.name, ans.header, ans.body)
			}
		}
	}
}

// FuzzHistoryRequest: any query is a history request within bounds or a
// clear error, never a panic.
func FuzzHistoryRequest(f *testing.F) {
	for _, q := range []string{
		"limit=5", "last=3&limit=2", "since=5m", "since=2026-12-08T06:00:00Z", "after=0194d0e5c3a70000-8f3c2a1b4d5e6f70-1",
		"cursor=0~1952a0c8e5e0010~3b07f8e2a4c91d05.1952a0c8e5f0001", "since=9223372036s", "limit=%00", "since=1e3h",
	} {
		f.Add(q)
	}
	now := time.UnixMilli(1_800_000_000_000)
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		req, err := historyRequest(q, now)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("historyRequest(%q): an empty error", query)
			}
			return
		}
		if req.Limit < 1 || req.Limit > broker.MaxHistoryLimit || req.Last < 0 || req.Last > maxHistoryLast {
			t.Fatalf("historyRequest(%q) = %+v: out of bounds", query, req)
		}
		if !req.After.IsZero() {
			if _, err := broker.ParsePosition(req.After.String()); err != nil {
				t.Fatalf("historyRequest(%q) start %v does not round-trip: %v", query, req.After, err)
			}
		}
	})
}

// FuzzParseSince: a since is a position at or before its time, or an error.
func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"90s", "5m", "1h30m", "2026-12-08T06:00:00Z", "2026-12-08T06:00:00.123+02:00", "-1s", "0", "87600h1s", "9999-12-31T23:59:59Z", "10000-01-01T00:00:00Z"} {
		f.Add(s)
	}
	now := time.UnixMilli(1_800_000_000_000)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseSince(s, now)
		if err != nil {
			return
		}
		if p.IsZero() || !p.Last.IsZero() || len(p.Marks) != 0 {
			t.Fatalf("parseSince(%q) = %v, want a position with a Stable only", s, p)
		}
		if back, err := broker.ParsePosition(p.String()); err != nil || back.String() != p.String() {
			t.Fatalf("parseSince(%q) = %v does not round-trip: %v", s, p, err)
		}
	})
}
