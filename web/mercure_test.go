package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/broker"
	"github.com/rumorhq/rumor/presence"
)

const (
	mercurePubKey = "publisher-secret-publisher-secret-0123"
	mercureSubKey = "subscriber-secret-subscriber-secret-01"
	mercureAud    = "https://hub.example.com/.well-known/mercure"
)

// mercureToken signs claims with key (HS256); at makes it a 1.0 access token.
func mercureToken(tb testing.TB, key string, at bool, claims jwt.MapClaims) string {
	tb.Helper()
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	if at {
		t.Header["typ"] = "at+jwt"
	}
	s, err := t.SignedString([]byte(key))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func pubClaim(topics ...string) jwt.MapClaims {
	return jwt.MapClaims{"mercure": map[string]any{"publish": topics}}
}

func subClaim(topics ...string) jwt.MapClaims {
	return jwt.MapClaims{"mercure": map[string]any{"subscribe": topics}}
}

func accessClaims(action string, topics ...map[string]any) jwt.MapClaims {
	return jwt.MapClaims{
		"aud": mercureAud, "exp": time.Now().Add(time.Hour).Unix(), "sub": "someone",
		"authorization_details": []any{map[string]any{"type": "mercure", "actions": []string{action}, "topics": topics}},
	}
}

func newMercureServer(tb testing.TB, tune func(*MercureOptions)) *testServer {
	tb.Helper()
	pub, err := auth.New(auth.Config{HMACSecret: []byte(mercurePubKey)})
	if err != nil {
		tb.Fatal(err)
	}
	sub, err := auth.New(auth.Config{HMACSecret: []byte(mercureSubKey)})
	if err != nil {
		tb.Fatal(err)
	}
	mo := &MercureOptions{Publisher: pub, Subscriber: sub, Anonymous: true, Claims: true, AccessTokens: true,
		Audience: mercureAud, Subscriptions: true}
	if tune != nil {
		tune(mo)
	}
	return newServer(tb, broker.Options{}, Options{Mercure: mo, Heartbeat: time.Hour})
}

// mercurePublish posts form with token and returns the status and body.
func mercurePublish(tb testing.TB, base, token string, form url.Values) (int, string, http.Header) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, base+MercurePath, strings.NewReader(form.Encode()))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// mercureSubscribe opens a Mercure stream; header may set a token or Last-Event-ID.
func mercureSubscribe(tb testing.TB, base, query string, header http.Header) (*sseParser, *http.Response) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+MercurePath+"?"+query, nil)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cancel()
		resp.Body.Close()
	})
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("GET %s?%s = %d %s", MercurePath, query, resp.StatusCode, b)
	}
	return newParser(resp.Body), resp
}

// nextData reads the next event and returns its id and data.
func nextEvent(tb testing.TB, p *sseParser) sseEvent {
	tb.Helper()
	ev, err := p.next()
	if err != nil {
		tb.Fatalf("read event: %v", err)
	}
	return ev
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

func TestMercurePublishSubscribe(t *testing.T) {
	ts := newMercureServer(t, nil)
	pub := mercureToken(t, mercurePubKey, false, pubClaim("*"))
	tmpl, _ := mercureSubscribe(t, ts.URL, "topic="+url.QueryEscape("https://example.com/books/{id}"), nil)
	both, _ := mercureSubscribe(t, ts.URL, "topic=https://example.com/books/1&topic=https://example.com/alt/1", nil)
	pat, _ := mercureSubscribe(t, ts.URL, "match_urlpattern="+url.QueryEscape("https://example.com/books/:id"), nil)
	pat2, _ := mercureSubscribe(t, ts.URL, "matchURLPattern="+url.QueryEscape("https://example.com/alt/:id"), nil)
	other, _ := mercureSubscribe(t, ts.URL, "match=https://example.com/other", nil)
	waitFor(t, "5 streams", func() bool { return ts.h.openStreams() == 5 })

	status, body, hd := mercurePublish(t, ts.URL, pub, url.Values{
		"topic": {"https://example.com/books/1", "https://example.com/alt/1"},
		"data":  {"line one\nline two"}, "id": {"my-id-1"}, "type": {"book"}, "retry": {"5000"},
	})
	if status != http.StatusOK || body != "my-id-1" || !strings.HasPrefix(hd.Get("Content-Type"), "text/plain") {
		t.Fatalf("publish = %d %q %s, want 200 my-id-1 text/plain", status, body, hd.Get("Content-Type"))
	}
	status, body, _ = mercurePublish(t, ts.URL, pub, url.Values{"topic": {"https://example.com/other"}, "data": {"x"}})
	if status != http.StatusOK || !strings.HasPrefix(body, "urn:uuid:") {
		t.Fatalf("publish without id = %d %q, want an urn:uuid: id", status, body)
	}
	generated := body
	for name, p := range map[string]*sseParser{"template": tmpl, "both topics": both, "url pattern": pat, "url pattern alt": pat2} {
		ev := nextEvent(t, p)
		if ev.Data != "line one\nline two" || ev.LastEventID != "my-id-1" || ev.Type != "book" || p.retry != 5000 {
			t.Errorf("%s got %+v retry %d, want the update once", name, ev, p.retry)
		}
	}
	// Each got the update once: the next event of "both" must not be it again.
	pub2, _, _ := mercurePublish(t, ts.URL, pub, url.Values{"topic": {"https://example.com/books/2"}, "data": {"second"}})
	if pub2 != http.StatusOK {
		t.Fatal("second publish failed")
	}
	if ev := nextEvent(t, tmpl); ev.Data != "second" {
		t.Errorf("template subscriber's next event = %+v, want second", ev)
	}
	if ev := nextEvent(t, other); ev.LastEventID != generated || ev.Data != "x" {
		t.Errorf("exact subscriber got %+v, want %s", ev, generated)
	}
	// The subscriber of both topics got the first update once: its next
	// event is the next update of one of them.
	if s, _, _ := mercurePublish(t, ts.URL, pub, url.Values{"topic": {"https://example.com/alt/1"}, "data": {"third"}}); s != http.StatusOK {
		t.Fatal("third publish failed")
	}
	if ev := nextEvent(t, both); ev.Data != "third" {
		t.Errorf("the subscriber of both topics got %q next, want third (the first update once)", ev.Data)
	}
	// Two topics under one template's literal start: the template's
	// subscriber gets the update once too.
	for _, form := range []url.Values{
		{"topic": {"https://example.com/books/3", "https://example.com/books/4"}, "data": {"twins"}},
		{"topic": {"https://example.com/books/5"}, "data": {"after"}},
	} {
		if s, _, _ := mercurePublish(t, ts.URL, pub, form); s != http.StatusOK {
			t.Fatal("publish failed")
		}
	}
	for _, want := range []string{"twins", "after"} {
		if ev := nextEvent(t, tmpl); ev.Data != want {
			t.Errorf("the template's subscriber got %q, want %q", ev.Data, want)
		}
	}
}

func TestMercurePrivate(t *testing.T) {
	ts := newMercureServer(t, nil)
	pub := mercureToken(t, mercurePubKey, false, pubClaim("https://example.com/{any}"))
	granted := mercureToken(t, mercureSubKey, false, subClaim("https://example.com/secret"))
	grantedAT := mercureToken(t, mercureSubKey, true, accessClaims("subscribe", map[string]any{"match": "https://example.com/:x", "matchType": "URLPattern"}))
	ungranted := mercureToken(t, mercureSubKey, false, subClaim("https://example.com/else"))
	q := "topic=*"
	okSub, _ := mercureSubscribe(t, ts.URL, q, bearer(granted))
	okAT, _ := mercureSubscribe(t, ts.URL, "match=*", bearer(grantedAT))
	noSub, _ := mercureSubscribe(t, ts.URL, q, bearer(ungranted))
	anon, _ := mercureSubscribe(t, ts.URL, q, nil)
	waitFor(t, "4 streams", func() bool { return ts.h.openStreams() == 4 })
	if s, b, _ := mercurePublish(t, ts.URL, pub, url.Values{"topic": {"https://example.com/secret"}, "data": {"private"}, "private": {""}}); s != 200 {
		t.Fatalf("private publish = %d %s", s, b)
	}
	if s, b, _ := mercurePublish(t, ts.URL, pub, url.Values{"topic": {"https://example.com/public"}, "data": {"public"}}); s != 200 {
		t.Fatalf("public publish = %d %s", s, b)
	}
	for name, p := range map[string]*sseParser{"granted": okSub, "granted 1.0": okAT} {
		if ev := nextEvent(t, p); ev.Data != "private" {
			t.Errorf("%s got %q first, want the private update", name, ev.Data)
		}
	}
	for name, p := range map[string]*sseParser{"ungranted": noSub, "anonymous": anon} {
		if ev := nextEvent(t, p); ev.Data != "public" {
			t.Errorf("%s got %q first, want the public update only", name, ev.Data)
		}
	}
}

func TestMercureResume(t *testing.T) {
	ts := newMercureServer(t, nil)
	pub := mercureToken(t, mercurePubKey, false, pubClaim("*"))
	for i, id := range []string{"a", "b", "c"} {
		if s, _, _ := mercurePublish(t, ts.URL, pub, url.Values{"topic": {"t"}, "data": {id}, "id": {id}}); s != 200 {
			t.Fatalf("publish %d = %d", i, s)
		}
	}
	mercurePublish(t, ts.URL, pub, url.Values{"topic": {"hidden"}, "data": {"secret"}, "id": {"p"}, "private": {"on"}})
	mercurePublish(t, ts.URL, pub, url.Values{"topic": {"t"}, "data": {"d"}, "id": {"d"}})

	p, resp := mercureSubscribe(t, ts.URL, "topic=t", http.Header{"Last-Event-Id": {"a"}})
	if got := resp.Header.Get("Last-Event-ID"); got != "a" {
		t.Errorf("Last-Event-ID response header = %q, want a", got)
	}
	for _, want := range []string{"b", "c", "d"} {
		if ev := nextEvent(t, p); ev.LastEventID != want {
			t.Errorf("resume after a: got %q, want %q", ev.LastEventID, want)
		}
	}
	p, resp = mercureSubscribe(t, ts.URL, "topic=*&lastEventID=earliest", nil)
	if got := resp.Header.Get("Last-Event-ID"); got != "earliest" {
		t.Errorf("Last-Event-ID for earliest = %q", got)
	}
	for _, want := range []string{"a", "b", "c", "d"} { // never the private p
		if ev := nextEvent(t, p); ev.LastEventID != want {
			t.Errorf("earliest: got %q, want %q", ev.LastEventID, want)
		}
	}
	// After the private p the header names c, not p.
	_, resp = mercureSubscribe(t, ts.URL, "topic=t&last_event_id=p", nil)
	if got := resp.Header.Get("Last-Event-ID"); got != "c" {
		t.Errorf("Last-Event-ID after a private update = %q, want c", got)
	}
	_, resp = mercureSubscribe(t, ts.URL, "topic=t", http.Header{"Last-Event-Id": {"unknown"}})
	if got := resp.Header.Get("Last-Event-ID"); got != "earliest" {
		t.Errorf("Last-Event-ID for an unknown id = %q, want earliest", got)
	}
}

func TestMercureRefusals(t *testing.T) {
	ts := newMercureServer(t, func(o *MercureOptions) { o.Anonymous = false })
	pub := mercureToken(t, mercurePubKey, false, pubClaim("https://example.com/books/{id}"))
	none := func() string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, pubClaim("*")).SignedString(jwt.UnsafeAllowNoneSignatureType)
		return s
	}()
	get := func(query string, h http.Header) (int, http.Header, string) {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+MercurePath+"?"+query, nil)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	subTok := mercureToken(t, mercureSubKey, false, subClaim("*"))
	for _, tt := range []struct {
		name   string
		query  string
		header http.Header
		status int
		code   string
	}{
		{"no token", "topic=a", nil, 401, ""},
		{"alg none", "topic=a", bearer(none), 401, "invalid_token"},
		{"publisher key", "topic=a", bearer(pub), 401, "invalid_token"},
		{"bad claim", "topic=a", bearer(mercureToken(t, mercureSubKey, false, jwt.MapClaims{"mercure": "all"})), 401, "invalid_token"},
		{"details without at+jwt", "topic=a", bearer(mercureToken(t, mercureSubKey, false, accessClaims("subscribe", map[string]any{"match": "*"}))), 401, "invalid_token"},
		{"at+jwt wrong aud", "match=a", bearer(mercureToken(t, mercureSubKey, true, jwt.MapClaims{"aud": "other", "exp": time.Now().Add(time.Hour).Unix()})), 401, "invalid_token"},
		{"at+jwt no exp", "match=a", bearer(mercureToken(t, mercureSubKey, true, jwt.MapClaims{"aud": mercureAud})), 401, "invalid_token"},
		{"unknown match param", "matchRegexp=a", bearer(subTok), 400, "invalid_request"},
		{"unknown match case", "MATCH=a", bearer(subTok), 400, "invalid_request"},
		{"no selector", "foo=bar", bearer(subTok), 400, "invalid_request"},
		{"bad url pattern", "match_urlpattern=" + url.QueryEscape("https://x/(("), bearer(subTok), 400, "invalid_request"},
		{"control char", "match=a%0Ab", bearer(subTok), 400, "invalid_request"},
	} {
		status, hd, body := get(tt.query, tt.header)
		if status != tt.status {
			t.Errorf("%s: GET = %d %s, want %d", tt.name, status, body, tt.status)
			continue
		}
		if tt.status == 401 && !strings.HasPrefix(hd.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate = %q", tt.name, hd.Get("WWW-Authenticate"))
		}
		if got := hd.Get("WWW-Authenticate"); tt.code == "" && strings.Contains(got, "error=") || tt.code != "" && tt.status != 400 && !strings.Contains(got, `error="`+tt.code+`"`) {
			t.Errorf("%s: WWW-Authenticate = %q, want code %q", tt.name, got, tt.code)
		}
	}

	pubAT := mercureToken(t, mercurePubKey, true, accessClaims("publish", map[string]any{"match": "*"}))
	for _, tt := range []struct {
		name   string
		token  string
		form   url.Values
		status int
	}{
		{"no token", "", url.Values{"topic": {"https://example.com/books/1"}, "data": {"x"}}, 401},
		{"alg none", none, url.Values{"topic": {"https://example.com/books/1"}, "data": {"x"}}, 401},
		{"subscriber key", subTok, url.Values{"topic": {"https://example.com/books/1"}, "data": {"x"}}, 401},
		{"topic not granted", pub, url.Values{"topic": {"https://example.com/users/1"}, "data": {"x"}}, 403},
		{"one topic not granted", pub, url.Values{"topic": {"https://example.com/books/1", "https://example.com/users/1"}, "data": {"x"}}, 403},
		{"no publish claim", mercureToken(t, mercurePubKey, false, subClaim("*")), url.Values{"topic": {"https://example.com/books/1"}, "data": {"x"}}, 403},
		{"no topic", pub, url.Values{"data": {"x"}}, 400},
		{"1.0 two topics", pubAT, url.Values{"topic": {"a", "b"}, "data": {"x"}}, 400},
		{"reserved topic", pubAT, url.Values{"topic": {"/.well-known/mercure/subscriptions/x/y"}, "data": {"x"}}, 403},
		{"id with newline", pub, url.Values{"topic": {"https://example.com/books/1"}, "id": {"a\nb"}}, 400},
		{"id with #", pub, url.Values{"topic": {"https://example.com/books/1"}, "id": {"#1"}}, 400},
		{"id earliest", pub, url.Values{"topic": {"https://example.com/books/1"}, "id": {"earliest"}}, 400},
		{"type with newline", pub, url.Values{"topic": {"https://example.com/books/1"}, "type": {"a\rb"}}, 400},
		{"retry not digits", pub, url.Values{"topic": {"https://example.com/books/1"}, "retry": {"-1"}}, 400},
		{"topic control", pub, url.Values{"topic": {"https://example.com/books/\x00"}}, 400},
		{"ok 1.0", pubAT, url.Values{"topic": {"https://example.com/x"}}, 200},
		{"ok empty data", pub, url.Values{"topic": {"https://example.com/books/1"}}, 200},
	} {
		if status, body, _ := mercurePublish(t, ts.URL, tt.token, tt.form); status != tt.status {
			t.Errorf("%s: publish = %d %s, want %d", tt.name, status, body, tt.status)
		}
	}
}

// TestMercureNotOnChannels checks that the Mercure face's system channel
// stays out of reach of rumor's own streams and publishes.
func TestMercureNotOnChannels(t *testing.T) {
	ts := newMercureServer(t, nil)
	wild := openSSE(t, ts.URL+"/events?channel=%3E")
	waitFor(t, "stream", func() bool { return ts.h.openStreams() == 1 })
	pub := mercureToken(t, mercurePubKey, false, pubClaim("*"))
	mercurePublish(t, ts.URL, pub, url.Values{"topic": {"t"}, "data": {"mercure"}, "private": {"on"}})
	publishNow(t, ts, "news", "rumor")
	if ev := nextEvent(t, wild); ev.Data != "rumor" {
		t.Errorf("a > stream got %q, want only the rumor event", ev.Data)
	}
	for _, path := range []string{"/channels/$mercure", "/events?channel=$mercure"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s = %d, want 400", path, resp.StatusCode)
		}
	}
	resp, err := http.Post(ts.URL+"/channels/$mercure", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("POST /channels/$mercure = %d, want 400", resp.StatusCode)
	}
}

func TestMercureSubscriptions(t *testing.T) {
	ts := newMercureServer(t, nil)
	watcher := mercureToken(t, mercureSubKey, false, jwt.MapClaims{"mercure": map[string]any{"subscribe": []any{
		"/.well-known/mercure/subscriptions{/topic}{/subscriber}",
		map[string]any{"match": "/.well-known/mercure/subscriptions/*", "match_type": "urlpattern"},
	}}})
	events, _ := mercureSubscribe(t, ts.URL, "topic="+url.QueryEscape("/.well-known/mercure/subscriptions{/topic}{/subscriber}")+
		"&match_urlpattern="+url.QueryEscape("/.well-known/mercure/subscriptions/*"), bearer(watcher))
	payloadTok := mercureToken(t, mercureSubKey, false, jwt.MapClaims{"mercure": map[string]any{"subscribe": []string{}, "payload": map[string]any{"k": "v"}}})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+MercurePath+"?topic=https%3A%2F%2Fexample.com%2Fa&match=b", nil)
	req.Header.Set("Authorization", "Bearer "+payloadTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sub0, sub1 subscriptionDoc
	for sub0.ID == "" || sub1.ID == "" {
		ev := nextEvent(t, events)
		var d subscriptionDoc
		if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
			t.Fatalf("subscription event %q: %v", ev.Data, err)
		}
		switch {
		case d.Topic != nil && *d.Topic == "https://example.com/a":
			sub0 = d
		case d.Match != nil && *d.Match == "b":
			sub1 = d
		}
	}
	if sub0.Topic == nil || *sub0.Topic != "https://example.com/a" || !sub0.Active || string(sub0.Payload) != `{"k":"v"}` ||
		!strings.HasPrefix(sub0.ID, "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2Fa/urn%3Auuid%3A") {
		t.Errorf("0.x subscription event = %+v", sub0)
	}
	if sub1.MatchType != "Exact" || sub1.Match == nil || *sub1.Match != "b" || !strings.HasPrefix(sub1.ID, "/.well-known/mercure/subscriptions/Exact/b/urn%3Auuid%3A") {
		t.Errorf("1.0 subscription event = %+v", sub1)
	}

	apiGet := func(path, token string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 200 && resp.Header.Get("Content-Type") != "application/ld+json" {
			t.Errorf("GET %s: Content-Type %q", path, resp.Header.Get("Content-Type"))
		}
		return resp.StatusCode, b
	}
	all := mercureToken(t, mercureSubKey, false, subClaim("/.well-known/mercure/subscriptions{/topic}{/subscriber}"))
	status, body := apiGet(subscriptionsPath, all)
	var list subscriptionList
	if status != 200 || json.Unmarshal(body, &list) != nil || list.Type != "Subscriptions" || len(list.Subscriptions) != 4 {
		// the watcher's own two subscriptions, and the two above
		t.Errorf("GET subscriptions = %d %s", status, body)
	}
	if status, body := apiGet(sub0.ID, all); status != 200 || !strings.Contains(string(body), `"lastEventID"`) {
		t.Errorf("GET %s = %d %s", sub0.ID, status, body)
	}
	narrow := mercureToken(t, mercureSubKey, false, subClaim("/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2Fa{/subscriber}"))
	if status, body := apiGet(subscriptionsPath+"/https%3A%2F%2Fexample.com%2Fa", narrow); status != 200 || json.Unmarshal(body, &list) != nil || len(list.Subscriptions) != 1 {
		t.Errorf("GET the collection of one topic = %d %s, want 1 subscription", status, body)
	}
	if status, _ := apiGet(subscriptionsPath+"/Exact/b", narrow); status != 403 {
		t.Errorf("GET Exact/b with a grant on another topic = %d, want 403", status)
	}
	if status, _ := apiGet(subscriptionsPath, ""); status != 401 {
		t.Errorf("GET subscriptions without a token = %d, want 401", status)
	}
	if status, _ := apiGet(subscriptionsPath, mercureToken(t, mercureSubKey, false, subClaim("other"))); status != 403 {
		t.Errorf("GET subscriptions without the grant = %d, want 403", status)
	}
	cancel()
	for {
		ev := nextEvent(t, events)
		var d subscriptionDoc
		_ = json.Unmarshal([]byte(ev.Data), &d)
		if d.ID == sub0.ID && !d.Active {
			break
		}
	}
}

func TestMercureCORSAndCookies(t *testing.T) {
	ts := newMercureServer(t, func(o *MercureOptions) {
		o.Anonymous = false
		o.CORSOrigins = []string{"https://app.example.com"}
		o.PublishOrigins = []string{"https://admin.example.com"}
	})
	do := func(method, path string, h http.Header, body string) *http.Response {
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// Preflights: the Mercure origins, not rumor's (none here).
	for origin, want := range map[string]string{"https://app.example.com": "https://app.example.com", "https://admin.example.com": "https://admin.example.com", "https://evil.example": ""} {
		resp := do(http.MethodOptions, MercurePath, http.Header{"Origin": {origin}, "Access-Control-Request-Method": {"GET"}, "Access-Control-Request-Headers": {"authorization"}}, "")
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want {
			t.Errorf("preflight from %s: Allow-Origin %q, want %q", origin, got, want)
		}
		if want != "" && resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("preflight from %s: no credentials", origin)
		}
	}
	pub := mercureToken(t, mercurePubKey, false, pubClaim("*"))
	form := "topic=t&data=x"
	formType := []string{"application/x-www-form-urlencoded"}
	for _, tt := range []struct {
		name   string
		header http.Header
		status int
	}{
		{"cookie, no origin", http.Header{"Cookie": {"mercureAuthorization=" + pub}, "Content-Type": formType}, 403},
		{"cookie, foreign origin", http.Header{"Cookie": {"mercureAuthorization=" + pub}, "Content-Type": formType, "Origin": {"https://evil.example"}}, 403},
		{"cookie, subscribe-only origin", http.Header{"Cookie": {"mercureAuthorization=" + pub}, "Content-Type": formType, "Origin": {"https://app.example.com"}}, 403},
		{"cookie, publish origin", http.Header{"Cookie": {"mercureAuthorization=" + pub}, "Content-Type": formType, "Origin": {"https://admin.example.com"}}, 200},
		{"cookie, publish origin by Referer", http.Header{"Cookie": {"mercureAuthorization=" + pub}, "Content-Type": formType, "Referer": {"https://admin.example.com/page"}}, 200},
		{"1.0 cookie name, own origin", http.Header{"Cookie": {"__Secure-mercure_access_token=" + pub}, "Content-Type": formType, "Origin": {ts.URL}}, 200},
		{"header beats a bad cookie", http.Header{"Cookie": {"mercureAuthorization=garbage"}, "Authorization": {"Bearer " + pub}, "Content-Type": formType}, 200},
	} {
		if resp := do(http.MethodPost, MercurePath, tt.header, form); resp.StatusCode != tt.status {
			t.Errorf("%s: publish = %d, want %d", tt.name, resp.StatusCode, tt.status)
		}
	}
	// Subscribers: the cookie and the query parameters carry a token.
	sub := mercureToken(t, mercureSubKey, false, subClaim("*"))
	mercureSubscribe(t, ts.URL, "topic=t&access_token="+sub, nil)
	mercureSubscribe(t, ts.URL, "topic=t&authorization="+sub, nil)
	mercureSubscribe(t, ts.URL, "topic=t", http.Header{"Cookie": {"mercureAccessToken=" + sub}})
	if resp := do(http.MethodGet, MercurePath+"?topic=t&access_token=bad", nil, ""); resp.StatusCode != 401 {
		t.Errorf("a bad access_token = %d, want 401", resp.StatusCode)
	}
}

func TestMercureTokenExpiry(t *testing.T) {
	ts := newMercureServer(t, func(o *MercureOptions) { o.RequireExp = true })
	noExp := mercureToken(t, mercureSubKey, false, subClaim("*"))
	req, _ := http.NewRequest(http.MethodGet, ts.URL+MercurePath+"?topic=t", nil)
	req.Header.Set("Authorization", "Bearer "+noExp)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("a 0.x token without exp under RequireExp = %d, want 401", resp.StatusCode)
	}
	short := mercureToken(t, mercureSubKey, false, jwt.MapClaims{"exp": time.Now().Add(1500 * time.Millisecond).Unix(), "mercure": map[string]any{"subscribe": []string{"*"}}})
	p, _ := mercureSubscribe(t, ts.URL, "topic=t", bearer(short))
	if ev := nextEvent(t, p); ev.Type != EndType || !strings.Contains(ev.Data, `"expired"`) {
		t.Errorf("at exp the stream sent %+v, want %s", ev, EndType)
	}
}

func TestMercureResourceMetadata(t *testing.T) {
	ts := newMercureServer(t, func(o *MercureOptions) { o.Anonymous = false; o.Issuer = "https://auth.example.com" })
	resp, err := http.Get(ts.URL + MercurePath + "?match=t")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	challenge := resp.Header.Get("WWW-Authenticate")
	want := `resource_metadata="` + ts.URL + resourceMetadataPath + `"`
	if resp.StatusCode != 401 || !strings.Contains(challenge, want) || strings.Contains(challenge, "error=") {
		t.Errorf("GET without a token = %d, WWW-Authenticate %q, want 401 with %s and no error code", resp.StatusCode, challenge, want)
	}
	resp, err = http.Get(ts.URL + resourceMetadataPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md struct {
		Resource       string   `json:"resource"`
		Servers        []string `json:"authorization_servers"`
		Methods        []string `json:"bearer_methods_supported"`
		Cookie         bool     `json:"mercure_cookie"`
		MercureVersion int      `json:"mercure_version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil || md.Resource != mercureAud || len(md.Servers) != 1 || !md.Cookie || md.MercureVersion != 8 || len(md.Methods) != 2 {
		t.Errorf("metadata = %+v, %v", md, err)
	}
}

func TestMercureDataKeptWhole(t *testing.T) {
	ts := newMercureServer(t, nil)
	p, _ := mercureSubscribe(t, ts.URL, "topic=t", nil)
	waitFor(t, "stream", func() bool { return ts.h.openStreams() == 1 })
	pub := mercureToken(t, mercurePubKey, false, pubClaim("*"))
	data := "<a href=\"x\">&amp; é ✓</a>\r\nid: forged\rlast"
	if s, b, _ := mercurePublish(t, ts.URL, pub, url.Values{"topic": {"t"}, "data": {data}, "id": {"real"}}); s != 200 {
		t.Fatalf("publish = %d %s", s, b)
	}
	ev := nextEvent(t, p)
	if want := "<a href=\"x\">&amp; é ✓</a>\nid: forged\nlast"; ev.Data != want || ev.LastEventID != "real" {
		t.Errorf("got %+v, want data %q with id real", ev, want)
	}
	retained := ts.hub.Retained(mercureChannel)
	if n := len(retained[len(retained)-1].Data); n > len(data)+64 {
		t.Errorf("the envelope of %d bytes of data is %d bytes", len(data), n)
	}
}

// fakeDirectory is a MercureDirectory holding this node's records and
// those of a "remote" node.
type fakeDirectory struct {
	mu      sync.Mutex
	records map[string]presence.Record
}

func (d *fakeDirectory) Join(s presence.Stream) func() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records[s.ID] = presence.Record{Stream: s, Node: "self"}
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		delete(d.records, s.ID)
	}
}

func (d *fakeDirectory) Records() []presence.Record {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []presence.Record
	for _, r := range d.records {
		out = append(out, r)
	}
	return out
}

func TestMercureSubscriptionsFromDirectory(t *testing.T) {
	remote := subscriptionDoc{ID: subscriptionsPath + "/Exact/r/urn%3Auuid%3Aremote", Type: "Subscription", MatchType: "Exact", Match: new(string), Subscriber: "urn:uuid:remote", Active: true}
	*remote.Match = "r"
	dir := &fakeDirectory{records: map[string]presence.Record{
		mercureRecord + remote.ID: {Stream: presence.Stream{ID: mercureRecord + remote.ID, Payload: recordOf(remote)}, Node: "other"},
		"a-channel-stream":        {Stream: presence.Stream{ID: "a-channel-stream", Patterns: []string{"news"}}, Node: "other"},
	}}
	ts := newMercureServer(t, func(o *MercureOptions) { o.Directory = dir })
	mercureSubscribe(t, ts.URL, "match=local", nil)
	waitFor(t, "the local subscription in the directory", func() bool { return len(dir.Records()) == 3 })
	tok := mercureToken(t, mercureSubKey, false, subClaim("*"))
	req, _ := http.NewRequest(http.MethodGet, ts.URL+subscriptionsPath+"/Exact", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list subscriptionList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Subscriptions) != 2 {
		t.Fatalf("GET %s/Exact = %d %+v %v, want the local and the remote subscription", subscriptionsPath, resp.StatusCode, list, err)
	}
}
