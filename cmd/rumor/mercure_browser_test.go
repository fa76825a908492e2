package main

// Applications written for Mercure against a three-node rumor cluster, in
// a real browser: the application's page subscribes with its own
// EventSource, on node 2, with the token in the cookie the application set
// (or in the query, or none); the application publishes a form on node 1.
// Once per protocol generation: 0.x (topic= selectors, URI templates, the
// mercure claim, the mercureAuthorization cookie) and 1.0 (match= and
// matchURLPattern= selectors, OAuth access tokens with
// authorization_details, the __Secure-mercure_access_token cookie).
//
// Each generation checks, in order: a form published on node 1 reaches
// node 2; private updates reach only subscribers whose token grants one
// of their topics; template and URL-pattern selectors match what they
// should and nothing else; an update with several topics (0.x) comes once;
// a publisher-chosen id is the SSE id; the browser's own reconnection
// resumes with its Last-Event-ID header; lastEventID= resumes from a
// custom id on another node; earliest replays history without a private
// update the subscriber may not see.
//
// The tests skip with -short, and when no browser is installed (see
// browser_test.go; RUMOR_REQUIRE_BROWSER=1 turns that into a failure).

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Keys of the Mercure face in these tests: separate publisher and
// subscriber keys, as the Mercure specifications recommend.
const (
	mercurePublisherKey  = "mercure-publisher-key-0123456789abcdef"
	mercureSubscriberKey = "mercure-subscriber-key-0123456789abcdef"
	mercureAudience      = "https://hub.example.com/.well-known/mercure"
)

// Topics of the scenario.
const (
	bookOne    = "https://example.com/books/1"
	bookTwo    = "https://example.com/books/2"
	authorOne  = "https://example.com/authors/1"
	bookReview = "https://example.com/books/1/reviews" // matched by neither books/{id} nor books/:id
	otherTopic = "https://example.com/other"
)

// startMercureCluster is startClusterWith for nodes configured by `rumor
// serve` flags: args are parsed as the command line would be, so that the
// tests see the flags a user types, not Config's fields.
func startMercureCluster(tb testing.TB, ctx context.Context, count int, args ...string) *testCluster {
	tb.Helper()
	m, err := parseServe(args, env(nil))
	if err != nil {
		tb.Fatalf("rumor serve %s: %v", strings.Join(args, " "), err)
	}
	return startClusterWith(tb, ctx, count, func(c *Config) {
		keep := *c
		*c = m
		c.NodeName, c.HTTPAddr, c.GossipAddr, c.Join = keep.NodeName, keep.HTTPAddr, keep.GossipAddr, keep.Join
		c.ClusterLabel, c.DrainTimeout, c.AdvertiseAddr = keep.ClusterLabel, keep.DrainTimeout, keep.AdvertiseAddr
	})
}

// ---- tokens ---------------------------------------------------------------

// signJWT returns an HS256 JWS over claims with header's fields, made by
// hand so that the tests check rumor against the format.
func signJWT(tb testing.TB, secret string, header, claims map[string]any) string {
	tb.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	signing := enc(h) + "." + enc(c)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(signing))
	return signing + "." + enc(m.Sum(nil))
}

// mercureToken is a 0.x token: a mercure claim with publish and subscribe
// selectors, and no exp unless ttl is positive (0.x tokens often have
// none).
func mercureToken(tb testing.TB, secret string, publish, subscribe []string, ttl time.Duration) string {
	tb.Helper()
	m := map[string]any{}
	if publish != nil {
		m["publish"] = publish
	}
	if subscribe != nil {
		m["subscribe"] = subscribe
	}
	claims := map[string]any{"mercure": m}
	if ttl > 0 {
		claims["exp"] = time.Now().Add(ttl).Unix()
	}
	return signJWT(tb, secret, map[string]any{"alg": "HS256", "typ": "JWT"}, claims)
}

// accessToken is a 1.0 token: a JWT access token (typ at+jwt) for the
// audience aud, with mercure authorization details.
func accessToken(tb testing.TB, secret, aud, sub string, details ...map[string]any) string {
	tb.Helper()
	now := time.Now()
	return signJWT(tb, secret, map[string]any{"alg": "HS256", "typ": "at+jwt"}, map[string]any{
		"iss": "https://app.example.com", "aud": aud, "sub": sub, "client_id": "rumor-test",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": fmt.Sprintf("%s-%d", sub, now.UnixNano()),
		"authorization_details": details,
	})
}

// mercureDetail is a mercure authorization detail.
func mercureDetail(actions []string, topics ...map[string]any) map[string]any {
	return map[string]any{"type": "mercure", "actions": actions, "topics": topics}
}

func exactTopic(t string) map[string]any { return map[string]any{"match": t} }
func urlPattern(p string) map[string]any {
	return map[string]any{"match": p, "matchType": "URLPattern"}
}

// ---- publishing -----------------------------------------------------------

// mercurePost posts form to base's hub with token as a Bearer token.
func mercurePost(tb testing.TB, client *http.Client, base, token string, form url.Values) (*http.Response, string) {
	tb.Helper()
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return do(tb, client, http.MethodPost, base+"/.well-known/mercure", h, form.Encode())
}

// mercurePublish publishes form on base and returns the update's id, the
// body of a 200 text/plain answer.
func mercurePublish(tb testing.TB, client *http.Client, base, token string, form url.Values) string {
	tb.Helper()
	resp, body := mercurePost(tb, client, base, token, form)
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK || ct != "text/plain" || body == "" {
		tb.Fatalf("publish %v on %s = %d %q %q, want 200 text/plain and an id", form, base, resp.StatusCode, ct, body)
	}
	return body
}

// ---- the application ------------------------------------------------------

// mercureApp is the application whose page subscribes: its own origin,
// a page with EventSource helpers, and /login/NAME, which sets the
// subscriber cookie registered under NAME, as a Symfony controller does.
type mercureApp struct {
	srv     *httptest.Server
	mu      sync.Mutex
	cookies map[string]string // name → Set-Cookie value
}

const mercurePageHTML = `<!doctype html><meta charset="utf-8"><title>a Mercure application</title>
<form id="pub"><input name="topic" aria-label="topic"><textarea name="data" aria-label="data"></textarea>
<input name="id" aria-label="id"><input name="type" aria-label="type"><input type="checkbox" name="private" aria-label="private"></form>
<script>
// S[name] is one subscription: the events its EventSource dispatched, in order.
window.S = {};
window.sub = (name, url, credentials) => {
	if (S[name]) S[name].es.close();
	const s = S[name] = {url, events: [], opens: 0, errors: 0, states: []};
	const es = s.es = new EventSource(url, {withCredentials: !!credentials});
	const on = (ev) => s.events.push({id: ev.lastEventId, type: ev.type, data: ev.data});
	es.onmessage = on;
	es.addEventListener("book.updated", on);
	es.onopen = () => { s.opens++; };
	es.onerror = () => { s.errors++; s.states.push(es.readyState); };
	return true;
};
window.ids = (name) => S[name].events.map(e => e.id);
window.dump = () => JSON.stringify(Object.fromEntries(Object.entries(S).map(([k, s]) =>
	[k, {url: s.url, opens: s.opens, errors: s.errors, states: s.states, readyState: s.es.readyState, events: s.events}])), null, 1);
// publishForm fills the form and posts it as application/x-www-form-urlencoded.
window.publishForm = async (hub, token, fields) => {
	const f = document.getElementById("pub");
	f.reset();
	for (const [k, v] of Object.entries(fields)) {
		if (k === "private") f.elements.private.checked = v; else f.elements[k].value = v;
	}
	const body = new URLSearchParams();
	for (const [k, v] of new FormData(f)) if (v !== "") body.append(k, v);
	const r = await fetch(hub, {method: "POST", headers: {Authorization: "Bearer " + token}, body});
	return {status: r.status, type: r.headers.get("Content-Type"), body: await r.text()};
};
</script>`

func startMercureApp(tb testing.TB) *mercureApp {
	tb.Helper()
	a := &mercureApp{cookies: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, mercurePageHTML)
	})
	mux.HandleFunc("POST /login/{name}", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		c, ok := a.cookies[r.PathValue("name")]
		a.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Add("Set-Cookie", c)
		w.WriteHeader(http.StatusNoContent)
	})
	a.srv = httptest.NewServer(mux)
	tb.Cleanup(a.srv.Close)
	return a
}

// setCookie registers the Set-Cookie value /login/name answers with.
func (a *mercureApp) setCookie(name, value string) {
	a.mu.Lock()
	a.cookies[name] = value
	a.mu.Unlock()
}

// login makes the page's browser take the cookie registered under name.
func (a *mercureApp) login(tb testing.TB, p *page, name string) {
	tb.Helper()
	got := p.evalAwait(tb, fmt.Sprintf(`fetch("/login/%s", {method: "POST"}).then(r => r.status)`, name))
	if got != float64(http.StatusNoContent) {
		tb.Fatalf("login %s: %v", name, got)
	}
}

// evalAwait evaluates a JavaScript expression that yields a promise and
// returns its JSON value.
func (p *page) evalAwait(tb testing.TB, expr string) any {
	tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, domWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitSubs polls a condition on the page's subscriptions until it holds,
// for at most domWait; a failure shows every subscription.
func waitSubs(tb testing.TB, p *page, what, cond string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, domWait+time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+cond+")",
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(domWait)))
	if err != nil {
		sctx, scancel := context.WithTimeout(p.ctx, 2*time.Second)
		defer scancel()
		state, serr := chromedp.Run(sctx, chromedp.Evaluate[string](`window.dump ? dump() : "(no page)"`))
		if serr != nil {
			state = serr.Error()
		}
		tb.Fatalf("waiting for %s: %v\nsubscriptions: %s", what, err, state)
	}
}

// shownEvents returns what subscription name dispatched.
type dispatched struct{ ID, Type, Data string }

func subEvents(tb testing.TB, p *page, name string) []dispatched {
	tb.Helper()
	raw, _ := p.eval(tb, fmt.Sprintf(`JSON.stringify(S[%q].events)`, name)).(string)
	var evs []dispatched
	if err := json.Unmarshal([]byte(raw), &evs); err != nil {
		tb.Fatalf("events of %s: %v (%s)", name, err, raw)
	}
	return evs
}

func eventIDs(evs []dispatched) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

// ---- the scenario, once per generation ------------------------------------

// mercureGeneration is what an application of one protocol generation
// sends: its selectors, tokens and cookie.
type mercureGeneration struct {
	name       string
	args       []string // rumor serve flags beyond the keys and origins
	exact      string   // the query parameter of an exact selector
	pattern    string   // the query parameter of a pattern selector
	booksSel   string   // a pattern matching every book, not its reviews
	tokenParam string   // the query parameter a token may travel in
	cookie     string   // the cookie's name
	secure     bool     // the cookie is Secure
	multiTopic bool     // an update may have several topics (0.x)

	publisherToken func(tb testing.TB) string // may publish anything
	booksToken     func(tb testing.TB) string // may read private books
	otherToken     func(tb testing.TB) string // may read private updates of otherTopic only
}

func generation0x() mercureGeneration {
	return mercureGeneration{
		name: "0.x", exact: "topic", pattern: "topic", booksSel: "https://example.com/books/{id}",
		tokenParam: "authorization", cookie: "mercureAuthorization", multiTopic: true,
		// A publisher token without exp, as 0.x applications make them.
		publisherToken: func(tb testing.TB) string {
			return mercureToken(tb, mercurePublisherKey, []string{"*"}, nil, 0)
		},
		booksToken: func(tb testing.TB) string {
			return mercureToken(tb, mercureSubscriberKey, nil, []string{"https://example.com/books/{id}"}, time.Hour)
		},
		otherToken: func(tb testing.TB) string {
			return mercureToken(tb, mercureSubscriberKey, nil, []string{otherTopic}, time.Hour)
		},
	}
}

func generation10() mercureGeneration {
	return mercureGeneration{
		name: "1.0", args: []string{"--mercure-audience", mercureAudience},
		exact: "match", pattern: "matchURLPattern", booksSel: "https://example.com/books/:id",
		tokenParam: "access_token", cookie: "__Secure-mercure_access_token", secure: true,
		publisherToken: func(tb testing.TB) string {
			return accessToken(tb, mercurePublisherKey, mercureAudience, "backend", mercureDetail([]string{"publish"}, exactTopic("*")))
		},
		booksToken: func(tb testing.TB) string {
			return accessToken(tb, mercureSubscriberKey, mercureAudience, "reader",
				mercureDetail([]string{"subscribe"}, urlPattern("https://example.com/books/:id")))
		},
		otherToken: func(tb testing.TB) string {
			return accessToken(tb, mercureSubscriberKey, mercureAudience, "other", mercureDetail([]string{"subscribe"}, exactTopic(otherTopic)))
		},
	}
}

func TestBrowserMercure0x(t *testing.T) { runMercureBrowser(t, generation0x()) }
func TestBrowserMercure10(t *testing.T) { runMercureBrowser(t, generation10()) }

// hubURL is base's hub with the query params (name, value, name, value…).
func hubURL(base string, params ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		q.Add(params[i], params[i+1])
	}
	u := base + "/.well-known/mercure"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

func runMercureBrowser(t *testing.T, g mercureGeneration) {
	exe := browserPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), browserBudget)
	defer cancel()
	app := startMercureApp(t)
	c := startMercureCluster(t, ctx, 3, append([]string{"--mercure",
		"--mercure-publisher-key", mercurePublisherKey, "--mercure-subscriber-key", mercureSubscriberKey,
		"--mercure-anonymous", "--mercure-cors-origins", app.srv.URL, "--mercure-publish-origins", app.srv.URL}, g.args...)...)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	// The "books" subscription reaches node 2 through a proxy the test
	// cuts, so that the browser reconnects on its own.
	proxy := newCutProxy(t, n2.public.ln.Addr().String())
	viaProxy := "http://" + proxy.addr()
	b := startBrowser(t, ctx, exe)
	p := b.open(t, app.srv.URL+"/")
	cookie := fmt.Sprintf("%s=%s; Path=/.well-known/mercure; HttpOnly; SameSite=Strict", g.cookie, g.booksToken(t))
	if g.secure {
		cookie += "; Secure"
	}
	app.setCookie("reader", cookie)
	app.login(t, p, "reader")
	pub := g.publisherToken(t)

	step := func(name string, f func(t *testing.T)) {
		if !t.Failed() {
			t.Run(name, f)
		}
	}
	publish := func(t *testing.T, fields ...string) string {
		t.Helper()
		form := url.Values{}
		for i := 0; i+1 < len(fields); i += 2 {
			form.Add(fields[i], fields[i+1])
		}
		return mercurePublish(t, c.client, n1.URL(), pub, form)
	}
	// want is what each subscription should have dispatched so far.
	want := map[string][]string{}
	check := func(t *testing.T, names ...string) {
		t.Helper()
		for _, name := range names {
			if got := eventIDs(subEvents(t, p, name)); !slices.Equal(got, want[name]) {
				t.Errorf("%s dispatched\n  %q\nwant\n  %q", name, got, want[name])
			}
		}
	}
	subs := []string{"books", "book1", "all", "other"}

	step("subscribe on node 2", func(t *testing.T) {
		p.eval(t, fmt.Sprintf(`sub("books", %q, true)`, hubURL(viaProxy, g.pattern, g.booksSel)))         // the cookie
		p.eval(t, fmt.Sprintf(`sub("book1", %q, true)`, hubURL(n2.URL(), g.exact, bookOne)))              // the cookie
		p.eval(t, fmt.Sprintf(`sub("all", %q, false)`, hubURL(n2.URL(), g.exact, "*")))                   // no token
		p.eval(t, fmt.Sprintf(`sub("other", %q, false)`, hubURL(n2.URL(), g.pattern, g.booksSel, g.exact, // token in the query
			otherTopic, g.tokenParam, g.otherToken(t))))
		waitSubs(t, p, "four open subscriptions", `["books", "book1", "all", "other"].every(n => S[n].opens === 1)`)
	})

	var marker string
	step("a form published on node 1 reaches node 2, private updates only granted subscribers", func(t *testing.T) {
		res := p.evalAwait(t, fmt.Sprintf(`publishForm(%q, %q, {topic: %q, data: "from the form"})`, hubURL(n1.URL()), pub, bookOne))
		r, _ := res.(map[string]any)
		form, _ := r["body"].(string)
		if r["status"] != float64(200) || !strings.HasPrefix(fmt.Sprint(r["type"]), "text/plain") || form == "" {
			t.Fatalf("the page's publish = %v, want 200, text/plain and the id", res)
		}
		secret := publish(t, "topic", bookOne, "data", "secret", "private", "on")
		author := publish(t, "topic", authorOne, "data", "an author")
		review := publish(t, "topic", bookReview, "data", "a review")
		typed := publish(t, "topic", bookTwo, "data", "typed", "type", "book.updated")
		var multi string
		if g.multiTopic {
			multi = publish(t, "topic", bookTwo, "topic", bookOne, "data", "two topics")
		}
		publish(t, "topic", authorOne, "data", "a private author", "private", "on")
		otherSecret := publish(t, "topic", otherTopic, "data", "other's secret", "private", "")
		markerID := "urn:rumor-test:" + g.name + ":marker"
		marker = publish(t, "topic", bookOne, "data", "marker", "id", markerID)
		if marker != markerID {
			t.Errorf("publishing with id %q answered %q, want that id", markerID, marker)
		}
		waitSubs(t, p, "the marker everywhere", fmt.Sprintf(`["books", "book1", "all", "other"].every(n => ids(n).includes(%q))`, marker))
		nonEmpty := func(ids ...string) []string {
			return slices.DeleteFunc(ids, func(s string) bool { return s == "" })
		}
		want["books"] = nonEmpty(form, secret, typed, multi, marker)
		want["book1"] = nonEmpty(form, secret, multi, marker)
		want["all"] = nonEmpty(form, author, review, typed, multi, marker)
		want["other"] = nonEmpty(form, typed, multi, otherSecret, marker)
		check(t, subs...)
		evs := subEvents(t, p, "books")
		for _, e := range evs {
			switch e.ID {
			case typed:
				if e.Type != "book.updated" || e.Data != "typed" {
					t.Errorf("typed update dispatched as %+v, want type book.updated, data typed", e)
				}
			case secret:
				if e.Type != "message" || e.Data != "secret" {
					t.Errorf("private update dispatched as %+v", e)
				}
			}
		}
	})

	var r1, r2 string
	step("the browser reconnects on its own and resumes with Last-Event-ID", func(t *testing.T) {
		proxy.cut(true)
		waitSubs(t, p, "the books stream cut", `S.books.errors >= 1 && S.books.es.readyState === EventSource.CONNECTING`)
		r1 = publish(t, "topic", bookTwo, "data", "while cut")
		r2 = publish(t, "topic", bookOne, "data", "private while cut", "private", "on")
		notBook := publish(t, "topic", authorOne, "data", "not a book")
		proxy.cut(false)
		waitSubs(t, p, "the books stream back", fmt.Sprintf(`S.books.opens === 2 && ids("books").includes(%q)`, r2))
		want["books"] = append(want["books"], r1, r2)
		want["book1"] = append(want["book1"], r2)
		want["all"] = append(want["all"], r1, notBook)
		want["other"] = append(want["other"], r1)
		check(t, "books")
	})

	step("lastEventID= resumes after a custom id on node 3", func(t *testing.T) {
		p.eval(t, fmt.Sprintf(`sub("resumed", %q, true)`, hubURL(n3.URL(), g.pattern, g.booksSel, "lastEventID", marker)))
		waitSubs(t, p, "the replay", fmt.Sprintf(`ids("resumed").includes(%q)`, r2))
		live := publish(t, "topic", bookOne, "data", "live after the replay")
		waitSubs(t, p, "the live update", fmt.Sprintf(`ids("resumed").includes(%q)`, live))
		want["resumed"] = []string{r1, r2, live}
		for _, name := range []string{"books", "book1", "all", "other"} {
			want[name] = append(want[name], live)
		}
		check(t, "resumed")
		// The same resume over plain HTTP: the answer names where it
		// resumed from.
		if h := resumeHeader(t, c, hubURL(n3.URL(), g.pattern, g.booksSel), marker); h != marker {
			t.Errorf("Last-Event-ID answered to Last-Event-ID: %s is %q, want %[1]q", marker, h)
		}
		if h := resumeHeader(t, c, hubURL(n3.URL(), g.pattern, g.booksSel), "earliest"); h != "earliest" {
			t.Errorf("Last-Event-ID answered to Last-Event-ID: earliest is %q, want earliest", h)
		}
	})

	step("earliest replays the history, without private updates an anonymous subscriber may not see", func(t *testing.T) {
		p.eval(t, fmt.Sprintf(`sub("earliest", %q, false)`, hubURL(n3.URL(), g.pattern, g.booksSel, "lastEventID", "earliest")))
		last := want["books"][len(want["books"])-1]
		waitSubs(t, p, "the replay", fmt.Sprintf(`ids("earliest").includes(%q)`, last))
		for _, id := range want["all"] {
			if slices.Contains(want["books"], id) {
				want["earliest"] = append(want["earliest"], id)
			}
		}
		check(t, "earliest")
		check(t, subs...)
	})
	b.checkExceptions(t)
}

// resumeHeader opens a stream on u (anonymous) with the Last-Event-ID
// header and returns the Last-Event-ID header of the answer.
func resumeHeader(tb testing.TB, c *testCluster, u, lastID string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), domWait)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Last-Event-ID", lastID)
	resp, err := c.client.Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s with Last-Event-ID = %d, want 200", u, resp.StatusCode)
	}
	return resp.Header.Get("Last-Event-ID")
}
