package web_test

// These tests play attacker against the Mercure face of a real HTTP
// server, through rumor's exported API only (web.NewHandler with
// web.MercureOptions, auth.New, broker.NewHub). Each hostile request must
// get a clear refusal (or, where the protocol says so, silence), and a
// guard subscriber allowed to see everything proves afterwards that
// nothing was published that should not have been: the next event it gets
// is the sentinel published after the attack.

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/broker"
	"github.com/rumorhq/rumor/web"
)

const (
	attackPubKey = "attack-publisher-key-0123456789abcdef01"
	attackSubKey = "attack-subscriber-key-0123456789abcdef0"
	attackAud    = "https://hub.example.com/.well-known/mercure"
	attackApp    = "https://app.example.com"
	attackWait   = 10 * time.Second
)

// hostileHub is one node with the Mercure face, as an attacker meets it.
type hostileHub struct {
	url    string
	client *http.Client
	pub    string // a 0.x publisher token that may publish every topic
	guard  *mstream
	seq    int
}

func newHostileHub(tb testing.TB, tune func(*web.MercureOptions)) *hostileHub {
	tb.Helper()
	hub := broker.NewHub(broker.Options{})
	hub.Settle() // one node
	pubAuth, err := auth.New(auth.Config{HMACSecret: []byte(attackPubKey)})
	if err != nil {
		tb.Fatal(err)
	}
	subAuth, err := auth.New(auth.Config{HMACSecret: []byte(attackSubKey)})
	if err != nil {
		tb.Fatal(err)
	}
	mo := &web.MercureOptions{
		Publisher: pubAuth, Subscriber: subAuth, Anonymous: true,
		CORSOrigins: []string{attackApp}, PublishOrigins: []string{attackApp},
		Claims: true, AccessTokens: true, Audience: attackAud,
	}
	if tune != nil {
		tune(mo)
	}
	h, err := web.NewHandler(web.Options{Hub: hub, NodeName: "attacked", Registry: prometheus.NewRegistry(), Mercure: mo})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(h)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), attackWait)
		defer cancel()
		if err := h.CloseStreams(ctx); err != nil {
			tb.Errorf("CloseStreams: %v", err)
		}
		srv.Close()
		hub.Close()
		pubAuth.Close()
		subAuth.Close()
	})
	a := &hostileHub{url: srv.URL, client: srv.Client(), pub: jwt0x(tb, attackPubKey, map[string]any{"mercure": map[string]any{"publish": []string{"*"}}})}
	a.guard = a.subscribe(tb, "topic=*", bearerHeader(jwt0x(tb, attackSubKey, map[string]any{"mercure": map[string]any{"subscribe": []string{"*"}}})))
	return a
}

// ---- tokens, made by hand ------------------------------------------------

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// rawJWT signs header and claims with secret (HMAC-SHA256), whatever the
// header says the algorithm is.
func rawJWT(tb testing.TB, secret string, header, claims map[string]any) string {
	tb.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	signing := b64(h) + "." + b64(c)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(signing))
	return signing + "." + b64(m.Sum(nil))
}

func jwt0x(tb testing.TB, secret string, claims map[string]any) string {
	tb.Helper()
	return rawJWT(tb, secret, map[string]any{"alg": "HS256", "typ": "JWT"}, claims)
}

// at10 is a 1.0 access token for the hub with the given details.
func at10(tb testing.TB, secret string, details ...any) string {
	tb.Helper()
	return rawJWT(tb, secret, map[string]any{"alg": "HS256", "typ": "at+jwt"}, map[string]any{
		"aud": attackAud, "sub": "attacker", "exp": time.Now().Add(time.Hour).Unix(), "authorization_details": details,
	})
}

func bearerHeader(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// ---- requests -------------------------------------------------------------

type reply struct {
	status int
	header http.Header
	body   string
}

func (a *hostileHub) do(tb testing.TB, method, target string, h http.Header, body string) reply {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), attackWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.url+target, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := a.client.Do(req)
	if err != nil {
		tb.Fatalf("%s %.80s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return reply{resp.StatusCode, resp.Header, string(b)}
}

// post publishes form with h's headers (the form's content type added).
func (a *hostileHub) post(tb testing.TB, h http.Header, form string) reply {
	tb.Helper()
	hh := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for k, v := range h {
		hh[k] = v
	}
	return a.do(tb, http.MethodPost, web.MercurePath, hh, form)
}

// sentinel publishes a public update no attack made, and checks that it is
// the guard's next event: nothing the attacks sent got through.
func (a *hostileHub) sentinel(tb testing.TB, after string) string {
	tb.Helper()
	a.seq++
	topic := "https://example.com/sentinel/" + strconv.Itoa(a.seq)
	r := a.post(tb, bearerHeader(a.pub), url.Values{"topic": {topic}, "data": {"sentinel"}}.Encode())
	if r.status != http.StatusOK {
		tb.Fatalf("publish the sentinel = %d %s", r.status, r.body)
	}
	for {
		ev := a.guard.next(tb)
		if ev.id == r.body {
			return r.body
		}
		if !subscriptionEvent(ev) {
			tb.Fatalf("after %s the guard got %+v before the sentinel %s: it got through", after, ev, r.body)
		}
	}
}

// subscriptionEvent reports whether ev is one of the hub's subscription
// events, which the guard (granted everything) gets when they are on.
func subscriptionEvent(ev mevent) bool {
	var doc struct{ Type string }
	return json.Unmarshal([]byte(ev.data), &doc) == nil && (doc.Type == "Subscription" || doc.Type == "subscription")
}

// wantRefused checks a refusal: the status, a body that says something
// and echoes no secret, and for 401 a Bearer challenge.
func wantRefused(tb testing.TB, what string, r reply, status int, secrets ...string) {
	tb.Helper()
	if r.status != status {
		tb.Errorf("%s = %d %q, want %d", what, r.status, clipText(r.body), status)
		return
	}
	if strings.TrimSpace(r.body) == "" && r.header.Get("WWW-Authenticate") == "" {
		tb.Errorf("%s: %d with an empty body and no challenge: say why", what, r.status)
	}
	if status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		tb.Errorf("%s: WWW-Authenticate = %q, want a Bearer challenge", what, r.header.Get("WWW-Authenticate"))
	}
	for _, s := range append(secrets, attackPubKey, attackSubKey) {
		if s != "" && (strings.Contains(r.body, s) || strings.Contains(r.header.Get("WWW-Authenticate"), s)) {
			tb.Errorf("%s: the answer echoes a secret or a token: %q", what, clipText(r.body))
		}
	}
}

func clipText(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// ---- streams --------------------------------------------------------------

// mstream is an open Mercure stream whose events a goroutine parses.
type mstream struct {
	name   string // the query
	resp   *http.Response
	events chan mevent
}

type mevent struct{ id, typ, data string }

// subscribe opens GET /.well-known/mercure?query and fails unless it
// answers 200.
func (a *hostileHub) subscribe(tb testing.TB, query string, h http.Header) *mstream {
	tb.Helper()
	s, r := a.trySubscribe(tb, query, h)
	if s == nil {
		tb.Fatalf("GET ?%.100s = %d %s, want 200", query, r.status, r.body)
	}
	return s
}

// trySubscribe opens the stream; when it is refused, it returns the answer.
func (a *hostileHub) trySubscribe(tb testing.TB, query string, h http.Header) (*mstream, reply) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url+web.MercurePath+"?"+query, nil)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	deadline := time.AfterFunc(attackWait, cancel)
	resp, err := a.client.Do(req)
	deadline.Stop()
	if err != nil {
		cancel()
		tb.Fatalf("GET ?%.100s: %v", query, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, reply{resp.StatusCode, resp.Header, string(b)}
	}
	s := &mstream{name: clipText(query), resp: resp, events: make(chan mevent, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		var ev mevent
		var data []string
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				if data != nil {
					ev.data = strings.Join(data, "\n")
					s.events <- ev
				}
				ev, data = mevent{id: ev.id}, nil
				continue
			}
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "id":
				ev.id = value
			case "event":
				ev.typ = value
			case "data":
				data = append(data, value)
			}
		}
	}()
	tb.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return s, reply{resp.StatusCode, resp.Header, ""}
}

// next returns the stream's next event, failing after attackWait.
func (s *mstream) next(tb testing.TB) mevent {
	tb.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			tb.Fatalf("the stream ?%s ended", s.name)
		}
		return ev
	case <-time.After(attackWait):
		tb.Fatalf("no event on ?%s within %v", s.name, attackWait)
	}
	return mevent{}
}

// ---- the attacks ----------------------------------------------------------

// sentinels adds to a subscription's query a selector of the sentinels'
// topics, in the query's generation, so that the stream gets every
// sentinel whatever else it asks for.
func sentinels(query string) string {
	if strings.Contains(query, "match") {
		return query + "&matchURLPattern=" + url.QueryEscape("https://example.com/sentinel/:n")
	}
	return query + "&topic=" + url.QueryEscape("https://example.com/sentinel/{n}")
}

// TestMercureAttackPrivateProbe: a private update is probed by every kind
// of subscriber that may not read it, live and through every resume form;
// none gets it, none learns its id, and the granted guard does.
func TestMercureAttackPrivateProbe(t *testing.T) {
	a := newHostileHub(t, nil)
	const secretTopic = "https://example.com/secret/1"
	other := jwt0x(t, attackSubKey, map[string]any{"mercure": map[string]any{"subscribe": []string{"https://example.com/other"}}})
	nearMiss := jwt0x(t, attackSubKey, map[string]any{"mercure": map[string]any{"subscribe": []string{"https://example.com/secret/{id}/x", "https://example.com/secret", "https://example.com/secret/1/"}}})
	other10 := at10(t, attackSubKey, map[string]any{"type": "mercure", "actions": []string{"subscribe"}, "topics": []any{map[string]any{"match": "https://example.com/other/:id", "matchType": "URLPattern"}}})
	publishOnly := at10(t, attackSubKey, map[string]any{"type": "mercure", "actions": []string{"publish"}, "topics": []any{map[string]any{"match": "*"}}})
	otherType := at10(t, attackSubKey, map[string]any{"type": "not-mercure", "actions": []string{"subscribe"}, "topics": []any{map[string]any{"match": "*"}}})
	probes := map[string]*mstream{
		"anonymous *":                         a.subscribe(t, "topic=*", nil),
		"anonymous, the exact topic":          a.subscribe(t, sentinels("topic="+url.QueryEscape(secretTopic)), nil),
		"anonymous template":                  a.subscribe(t, sentinels("topic="+url.QueryEscape("https://example.com/{kind}/{id}")), nil),
		"anonymous URL pattern":               a.subscribe(t, sentinels("matchURLPattern="+url.QueryEscape("https://example.com/:kind/:id")), nil),
		"0.x token for another topic":         a.subscribe(t, "topic=*", bearerHeader(other)),
		"0.x token of near misses":            a.subscribe(t, "topic=*", bearerHeader(nearMiss)),
		"1.0 token for another pattern":       a.subscribe(t, "match=*", bearerHeader(other10)),
		"1.0 token that may only publish":     a.subscribe(t, "match=*", bearerHeader(publishOnly)),
		"1.0 token whose detail is not ours":  a.subscribe(t, "match=*", bearerHeader(otherType)),
		"0.x token in the query, other topic": a.subscribe(t, "topic=*&authorization="+other, nil),
	}
	before := a.sentinel(t, "opening the probes")
	for name, p := range probes {
		if ev := p.next(t); ev.id != before {
			t.Fatalf("%s: first event %+v, want the sentinel %s", name, ev, before)
		}
	}
	r := a.post(t, bearerHeader(a.pub), url.Values{"topic": {secretTopic}, "data": {"the secret"}, "private": {"on"}}.Encode())
	if r.status != http.StatusOK {
		t.Fatalf("publish the private update = %d %s", r.status, r.body)
	}
	secretID := r.body
	if ev := a.guard.next(t); ev.id != secretID || ev.data != "the secret" {
		t.Fatalf("the guard got %+v, want the private update %s: the probes below would prove nothing", ev, secretID)
	}
	after := a.sentinel(t, "the private update")
	for name, p := range probes {
		if ev := p.next(t); ev.id != after {
			t.Errorf("%s got %+v before the sentinel: the private update leaked", name, ev)
		}
	}

	// Resuming: no replay of the private update, and no Last-Event-ID
	// answer that names it.
	for _, tt := range []struct {
		name, query string
		h           http.Header
	}{
		{"anonymous from earliest", "topic=*&lastEventID=earliest", nil},
		{"anonymous from the sentinel before", "topic=*&lastEventID=" + url.QueryEscape(before), nil},
		{"anonymous from the secret's own id", "topic=*&lastEventID=" + url.QueryEscape(secretID), nil},
		{"other token from earliest", "topic=*", http.Header{"Authorization": {"Bearer " + other}, "Last-Event-ID": {"earliest"}}},
		{"other token from the sentinel before", sentinels("topic=" + url.QueryEscape(secretTopic)), http.Header{"Authorization": {"Bearer " + other}, "Last-Event-ID": {before}}},
		{"1.0 token from earliest", "match=*&lastEventID=earliest", bearerHeader(other10)},
	} {
		s, r := a.trySubscribe(t, tt.query, tt.h)
		if s == nil {
			t.Errorf("%s: %d %s, want 200", tt.name, r.status, r.body)
			continue
		}
		if got := r.header.Get("Last-Event-ID"); got == secretID {
			t.Errorf("%s: the answer's Last-Event-ID names the private update %s", tt.name, secretID)
		}
		mark := a.sentinel(t, tt.name)
		for {
			ev := s.next(t)
			if ev.id == secretID || strings.Contains(ev.data, "the secret") {
				t.Errorf("%s replayed the private update", tt.name)
			}
			if ev.id == mark {
				break
			}
		}
	}
}

// TestMercureAttackTokens: forged, stale, confused and oversized tokens
// are refused on both routes, and none publishes anything.
func TestMercureAttackTokens(t *testing.T) {
	a := newHostileHub(t, func(o *web.MercureOptions) {
		o.Anonymous = false
		o.Issuer = "https://issuer.example.com"
	})
	now := time.Now()
	pubClaim := func(extra map[string]any) map[string]any {
		c := map[string]any{"mercure": map[string]any{"publish": []string{"*"}, "subscribe": []string{"*"}}}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	signed := func(secret string, header map[string]any, claims map[string]any) string {
		return rawJWT(t, secret, header, claims)
	}
	unsigned := func(alg string) string {
		h, _ := json.Marshal(map[string]any{"alg": alg, "typ": "JWT"})
		c, _ := json.Marshal(pubClaim(nil))
		return b64(h) + "." + b64(c) + "."
	}
	manyDetails := make([]any, 100)
	for i := range manyDetails {
		manyDetails[i] = map[string]any{"type": "mercure", "actions": []string{"publish", "subscribe"}, "topics": []any{map[string]any{"match": "*"}}}
	}
	manyTopics := make([]any, 1000)
	manySelectors := make([]string, 1000)
	for i := range manyTopics {
		manyTopics[i] = map[string]any{"match": fmt.Sprintf("https://example.com/%d", i)}
		manySelectors[i] = fmt.Sprintf("https://example.com/%d", i)
	}
	atClaims := func(details ...any) map[string]any {
		return map[string]any{"aud": attackAud, "iss": "https://issuer.example.com", "sub": "x", "exp": now.Add(time.Hour).Unix(), "authorization_details": details}
	}
	at := map[string]any{"alg": "HS256", "typ": "at+jwt"}
	hs := map[string]any{"alg": "HS256", "typ": "JWT"}
	all := map[string]any{"type": "mercure", "actions": []string{"publish", "subscribe"}, "topics": []any{map[string]any{"match": "*"}}}
	for _, tt := range []struct {
		name  string
		token string
	}{
		{"alg none", unsigned("none")},
		{"alg None", unsigned("None")},
		{"alg NONE", unsigned("NONE")},
		{"alg none with the HMAC signature kept", strings.TrimSuffix(unsigned("none"), ".") + "." + strings.Split(signed(attackPubKey, hs, pubClaim(nil)), ".")[2]},
		{"RS256 header over an HMAC signature (algorithm confusion)", signed(attackPubKey, map[string]any{"alg": "RS256", "typ": "JWT"}, pubClaim(nil))},
		{"ES256 header over an HMAC signature", signed(attackPubKey, map[string]any{"alg": "ES256", "typ": "JWT"}, pubClaim(nil))},
		{"signed with a key nobody configured", signed("not-the-key-not-the-key-not-the-key-00", hs, pubClaim(nil))},
		{"signature stripped", strings.Join(strings.Split(signed(attackPubKey, hs, pubClaim(nil)), ".")[:2], ".") + "."},
		{"payload swapped under a valid signature", func() string {
			p := strings.Split(signed(attackPubKey, hs, map[string]any{"mercure": map[string]any{"publish": []string{"https://example.com/nothing"}}}), ".")
			c, _ := json.Marshal(pubClaim(nil))
			return p[0] + "." + b64(c) + "." + p[2]
		}()},
		{"expired", signed(attackPubKey, hs, pubClaim(map[string]any{"exp": now.Add(-time.Hour).Unix()}))},
		{"not yet valid", signed(attackPubKey, hs, pubClaim(map[string]any{"nbf": now.Add(time.Hour).Unix()}))},
		{"exp as a string", signed(attackPubKey, hs, pubClaim(map[string]any{"exp": "tomorrow"}))},
		{"mercure claim a string", signed(attackPubKey, hs, map[string]any{"mercure": "*"})},
		{"publish a string", signed(attackPubKey, hs, map[string]any{"mercure": map[string]any{"publish": 42}})},
		{"publish of numbers", signed(attackPubKey, hs, map[string]any{"mercure": map[string]any{"publish": []int{1, 2}}})},
		{"1000 selectors", signed(attackPubKey, hs, map[string]any{"mercure": map[string]any{"publish": manySelectors, "subscribe": manySelectors}})},
		{"1.0 wrong issuer", signed(attackPubKey, at, func() map[string]any { c := atClaims(all); c["iss"] = "https://evil.example"; return c }())},
		{"1.0 wrong audience", signed(attackPubKey, at, func() map[string]any { c := atClaims(all); c["aud"] = "https://evil.example"; return c }())},
		{"1.0 audience list without the hub", signed(attackPubKey, at, func() map[string]any {
			c := atClaims(all)
			c["aud"] = []string{"https://a.example", "https://b.example"}
			return c
		}())},
		{"1.0 expired", signed(attackPubKey, at, func() map[string]any { c := atClaims(all); c["exp"] = now.Add(-time.Hour).Unix(); return c }())},
		{"1.0 unknown action", signed(attackPubKey, at, atClaims(map[string]any{"type": "mercure", "actions": []string{"publish", "admin"}, "topics": []any{map[string]any{"match": "*"}}}))},
		{"1.0 no actions", signed(attackPubKey, at, atClaims(map[string]any{"type": "mercure", "actions": []string{}, "topics": []any{map[string]any{"match": "*"}}}))},
		{"1.0 topics not objects", signed(attackPubKey, at, atClaims(map[string]any{"type": "mercure", "actions": []string{"publish"}, "topics": []any{"*"}}))},
		{"1.0 unknown matchType", signed(attackPubKey, at, atClaims(map[string]any{"type": "mercure", "actions": []string{"publish"}, "topics": []any{map[string]any{"match": ".*", "matchType": "Regexp"}}}))},
		{"1.0 lowercase matchType", signed(attackPubKey, at, atClaims(map[string]any{"type": "mercure", "actions": []string{"publish"}, "topics": []any{map[string]any{"match": "*", "matchType": "exact"}}}))},
		{"1.0 bad URL pattern", signed(attackPubKey, at, atClaims(map[string]any{"type": "mercure", "actions": []string{"publish"}, "topics": []any{map[string]any{"match": "https://x/((", "matchType": "URLPattern"}}}))},
		{"1.0 a bad detail beside a good one", signed(attackPubKey, at, atClaims(all, map[string]any{"type": "mercure", "actions": "publish"}))},
		{"1.0 100 details", signed(attackPubKey, at, atClaims(manyDetails...))},
		{"1.0 1000 topics", signed(attackPubKey, at, atClaims(map[string]any{"type": "mercure", "actions": []string{"publish", "subscribe"}, "topics": manyTopics}))},
		{"1.0 details an object", signed(attackPubKey, at, func() map[string]any { c := atClaims(); c["authorization_details"] = all; return c }())},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := a.post(t, bearerHeader(tt.token), url.Values{"topic": {"https://example.com/books/1"}, "data": {"forged"}}.Encode())
			wantRefused(t, "publish", r, http.StatusUnauthorized, tt.token)
			if s, r := a.trySubscribe(t, "topic=*", bearerHeader(strings.Replace(tt.token, attackPubKey, attackSubKey, 1))); s != nil {
				t.Errorf("subscribe with it = 200, want 401")
			} else {
				wantRefused(t, "subscribe", r, http.StatusUnauthorized, tt.token)
			}
			a.sentinel(t, tt.name)
		})
	}

	// Each role's key only: a subscriber token does not publish, a
	// publisher token does not subscribe.
	subTok := jwt0x(t, attackSubKey, pubClaim(nil))
	wantRefused(t, "publish with a subscriber-key token", a.post(t, bearerHeader(subTok), "topic=https://example.com/x&data=y"), http.StatusUnauthorized, subTok)
	if s, r := a.trySubscribe(t, "topic=*", bearerHeader(a.pub)); s != nil {
		t.Errorf("subscribe with the publisher key's token = 200, want 401")
	} else {
		wantRefused(t, "subscribe with the publisher key's token", r, http.StatusUnauthorized, a.pub)
	}
	a.sentinel(t, "the role swap")
}

// TestMercureAttackSelectors: malformed, oversized and numerous selectors
// and topics get a 400 (or match only themselves), quickly, and nothing
// reaches a subscription that should not match.
func TestMercureAttackSelectors(t *testing.T) {
	a := newHostileHub(t, nil)
	for _, tt := range []struct {
		name, query string
	}{
		{"unknown matcher type", "matchRegExp=.*"},
		{"matcher namespace, other case", "Match=a"},
		{"matcher namespace, a suffix", "match_regexp=a"},
		{"bad URL pattern", "matchURLPattern=" + url.QueryEscape("https://example.com/:id(")},
		{"URL pattern with a bad group", "matchURLPattern=" + url.QueryEscape("https://example.com/(?<x>a)")},
		{"URL pattern with a bad name", "matchURLPattern=" + url.QueryEscape("https://example.com/:")},
		{"NUL in a topic selector", "topic=a%00b"},
		{"C1 control in a selector", "match=a%C2%85b"},
		{"DEL in a selector", "topic=a%7Fb"},
		{"invalid UTF-8", "topic=%FF%FE"},
		{"a selector of 4 KiB", "topic=" + strings.Repeat("a", 4096)},
		{"an empty selector list", "lastEventID=earliest"},
		{"129 selectors", distinct("topic", 129)},
		{"5000 selectors", distinct("match", 5000)},
	} {
		start := time.Now()
		s, r := a.trySubscribe(t, tt.query, nil)
		if s != nil {
			t.Errorf("%s: 200, want 400", tt.name)
			continue
		}
		wantRefused(t, tt.name, r, http.StatusBadRequest)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: refused after %v", tt.name, d)
		}
	}
	if s, r := a.trySubscribe(t, distinct("topic", 128), nil); s == nil {
		t.Errorf("128 selectors (the limit) = %d %s, want 200", r.status, r.body)
	}

	// Malformed URI templates are no error in 0.x: the reference hub
	// matches such a selector as a plain string. Then it must match only
	// itself.
	odd := []string{"{", "}", "{{id}}", "https://example.com/{id", "https://example.com/{+}", "https://example.com/{id*}{", "https://example.com/{%zz}"}
	var streams []*mstream // odd templates first, then patterns
	for _, sel := range odd {
		s, r := a.trySubscribe(t, sentinels("topic="+url.QueryEscape(sel)), nil)
		if s == nil {
			if r.status != http.StatusBadRequest {
				t.Errorf("template %q: %d %s, want 200 or 400", sel, r.status, r.body)
			}
			continue
		}
		streams = append(streams, s)
	}
	templates := len(streams)
	// Pathological URL patterns: compiled to linear-time matchers, so a
	// long topic costs little.
	for _, p := range []string{
		"https://example.com/" + strings.Repeat(":a*", 1) + strings.Repeat("(.*)*", 30),
		"https://example.com/" + strings.Repeat("*", 60) + "x",
		"https://example.com/:a(a*)*b",
	} {
		s, r := a.trySubscribe(t, sentinels("matchURLPattern="+url.QueryEscape(p)), nil)
		if s == nil {
			if r.status != http.StatusBadRequest {
				t.Errorf("URL pattern %q: %d %s, want 200 or 400", p, r.status, r.body)
			}
			continue
		}
		streams = append(streams, s)
	}
	start := time.Now()
	long := "https://example.com/" + strings.Repeat("a", 2000)
	for _, topic := range []string{long, "https://example.com/books/1", "{id}"} {
		r := a.post(t, bearerHeader(a.pub), url.Values{"topic": {topic}, "data": {"x"}}.Encode())
		if r.status != http.StatusOK {
			t.Fatalf("publish %.40s = %d %s", topic, r.status, r.body)
		}
		a.guard.next(t)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("three updates through pathological selectors took %v", d)
	}
	mark := a.sentinel(t, "the odd selectors")
	for i, s := range streams {
		for {
			ev := s.next(t)
			if ev.id == mark {
				break
			}
			// Only the pathological URL patterns may match the long
			// topic; no odd template matches a real topic.
			if i < templates && ev.data == "x" {
				t.Errorf("odd selector stream %d got %+v", i, ev)
			}
		}
	}

	// Publishing: oversized and numerous topics, forbidden characters,
	// the hub's own namespace.
	tokenAT := at10(t, attackPubKey, map[string]any{"type": "mercure", "actions": []string{"publish"}, "topics": []any{map[string]any{"match": "*"}}})
	var many strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&many, "topic=https%%3A%%2F%%2Fexample.com%%2F%d&", i)
	}
	for _, tt := range []struct {
		name, token, form string
		status            int
	}{
		{"129 topics", a.pub, distinct("topic", 129) + "&data=x", http.StatusBadRequest},
		{"10000 topics", a.pub, many.String() + "data=x", http.StatusBadRequest},
		{"a topic of 4 KiB", a.pub, "topic=" + strings.Repeat("a", 4096), http.StatusRequestEntityTooLarge}, // 1.0: a field over its limit is 413
		{"an empty topic", a.pub, "topic=&data=x", http.StatusBadRequest},
		{"C1 control in a topic", a.pub, "topic=a%C2%85b", http.StatusBadRequest},
		{"invalid UTF-8 topic", a.pub, "topic=%FF", http.StatusBadRequest},
		{"invalid UTF-8 data", a.pub, "topic=a&data=%FF%FE", http.StatusBadRequest},
		{"type mercure-less newline", a.pub, "topic=a&type=a%0Ab", http.StatusBadRequest},
		{"retry with a sign", a.pub, "topic=a&retry=%2B5", http.StatusBadRequest},
		{"id with NUL", a.pub, "topic=a&id=a%00b", http.StatusBadRequest},
		{"a broken form", a.pub, "topic=%zz", http.StatusBadRequest},
		{"subscription events, relative", a.pub, "topic=" + url.QueryEscape("/.well-known/mercure/subscriptions/topic/x/y"), http.StatusForbidden},
		{"subscription events, another authority", a.pub, "topic=" + url.QueryEscape("https://evil.example/.well-known/mercure/subscriptions/x"), http.StatusForbidden},
		{"subscription events, dot segments", a.pub, "topic=" + url.QueryEscape("/a/../.well-known/mercure/subscriptions/x"), http.StatusForbidden},
		{"the hub itself", a.pub, "topic=" + url.QueryEscape("/.well-known/mercure"), http.StatusForbidden},
		{"1.0 subscription events", tokenAT, "topic=" + url.QueryEscape("/.well-known/mercure/subscriptions/Exact/x/y"), http.StatusForbidden},
		{"1.0 two topics", tokenAT, "topic=a&topic=b", http.StatusBadRequest},
	} {
		start := time.Now()
		r := a.post(t, bearerHeader(tt.token), tt.form)
		wantRefused(t, "publish "+tt.name, r, tt.status)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("publish %s: refused after %v", tt.name, d)
		}
	}
	a.sentinel(t, "the hostile publishes")
}

// distinct is n different selectors in param.
func distinct(param string, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte('&')
		}
		fmt.Fprintf(&b, "%s=https%%3A%%2F%%2Fexample.com%%2Fs%%2F%d", param, i)
	}
	return b.String()
}

// TestMercureAttackCookiePublish: the cookie's token publishes only from
// the publish origins (a forged cross-site form does not), and never
// without an Origin or Referer.
func TestMercureAttackCookiePublish(t *testing.T) {
	a := newHostileHub(t, nil)
	cookie := "mercureAuthorization=" + a.pub
	form := url.Values{"topic": {"https://example.com/books/1"}, "data": {"from a page"}}.Encode()
	for _, tt := range []struct {
		name   string
		h      http.Header
		status int
	}{
		{"a foreign origin", http.Header{"Cookie": {cookie}, "Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"an origin that extends an allowed one", http.Header{"Cookie": {cookie}, "Origin": {attackApp + ".evil.example"}}, http.StatusForbidden},
		{"an allowed host on another scheme", http.Header{"Cookie": {cookie}, "Origin": {"http://app.example.com"}}, http.StatusForbidden},
		{"null origin", http.Header{"Cookie": {cookie}, "Origin": {"null"}}, http.StatusForbidden},
		{"a foreign referer", http.Header{"Cookie": {cookie}, "Referer": {"https://evil.example/page"}}, http.StatusForbidden},
		{"neither origin nor referer", http.Header{"Cookie": {cookie}}, http.StatusForbidden},
	} {
		r := a.post(t, tt.h, form)
		if r.status == http.StatusOK {
			t.Errorf("cookie publish from %s = 200, want a refusal", tt.name)
			continue
		}
		if r.status != http.StatusForbidden && r.status != http.StatusUnauthorized {
			t.Errorf("cookie publish from %s = %d %s, want 401 or 403", tt.name, r.status, r.body)
		}
		a.sentinel(t, "a cookie publish from "+tt.name)
	}
	r := a.post(t, http.Header{"Cookie": {cookie}, "Origin": {attackApp}}, form)
	if r.status != http.StatusOK {
		t.Fatalf("cookie publish from the publish origin = %d %s, want 200", r.status, r.body)
	}
	if ev := a.guard.next(t); ev.id != r.body {
		t.Errorf("the guard got %+v, want the update %s", ev, r.body)
	}
}

// TestMercureAttackSubscriptions: the subscriptions API and the
// subscription events are private: an ungranted client sees neither, and
// odd paths are refused without a 500.
func TestMercureAttackSubscriptions(t *testing.T) {
	a := newHostileHub(t, func(o *web.MercureOptions) { o.Subscriptions = true })
	other := jwt0x(t, attackSubKey, map[string]any{"mercure": map[string]any{"subscribe": []string{"https://example.com/other"}}})
	probe := a.subscribe(t, "topic=*", bearerHeader(other))
	anon := a.subscribe(t, "topic=*", nil)
	// A subscriber whose payload must stay private.
	a.subscribe(t, "topic="+url.QueryEscape("https://example.com/books/1"), bearerHeader(jwt0x(t, attackSubKey, map[string]any{
		"mercure": map[string]any{"subscribe": []string{"https://example.com/books/1"}, "payload": map[string]any{"email": "reader@example.com"}},
	})))
	for _, tt := range []struct {
		name, path string
		h          http.Header
		status     int
	}{
		{"anonymous, the collection", "/.well-known/mercure/subscriptions", nil, http.StatusUnauthorized},
		{"ungranted, the collection", "/.well-known/mercure/subscriptions", bearerHeader(other), http.StatusForbidden},
		{"ungranted, one topic", "/.well-known/mercure/subscriptions/" + url.PathEscape("https://example.com/books/1"), bearerHeader(other), http.StatusForbidden},
		{"publisher key", "/.well-known/mercure/subscriptions", bearerHeader(a.pub), http.StatusUnauthorized},
	} {
		r := a.do(t, http.MethodGet, tt.path, tt.h, "")
		wantRefused(t, tt.name, r, tt.status)
		if strings.Contains(r.body, "reader@example.com") {
			t.Errorf("%s: the answer shows a subscriber's payload", tt.name)
		}
	}
	granted := bearerHeader(jwt0x(t, attackSubKey, map[string]any{"mercure": map[string]any{"subscribe": []string{"*"}}}))
	for _, p := range []string{"/%25ZZ", "/" + strings.Repeat("a/", 500), "/Exact", "/Exact/%00/x", "/" + strings.Repeat("x", 5000)} {
		r := a.do(t, http.MethodGet, "/.well-known/mercure/subscriptions"+p, granted, "")
		if r.status >= 500 {
			t.Errorf("GET subscriptions%.40s = %d %s, want a 4xx or an answer", p, r.status, r.body)
		}
	}
	// The subscription events of the streams above went to the guard;
	// the probes saw none of them.
	mark := a.sentinel(t, "the subscription events")
	for name, s := range map[string]*mstream{"ungranted": probe, "anonymous": anon} {
		for {
			ev := s.next(t)
			if ev.id == mark {
				break
			}
			t.Errorf("%s probe got %+v", name, ev)
		}
	}
}
