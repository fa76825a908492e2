package main

// rumor.js and tokens that expire, in a real browser: the stream ends at
// the token's exp with rumor.end, rumor.js asks the page's refreshToken for
// a fresh token and resumes with the last event id, and the page misses
// nothing while events keep coming through another node; an admin's kick
// on another node is survived the same way.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBrowserTokenRefresh(t *testing.T) {
	exe := browserPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), browserBudget)
	defer cancel()
	// The application: its page, which loads rumor.js from a node, and its
	// token endpoint, which hands out short-lived subscribe tokens.
	var rumorURL atomic.Value // n1's, once it runs
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			fmt.Fprintf(w, `<!doctype html><title>app</title><script src="%s/rumor.js"></script>`, rumorURL.Load())
			return
		}
		io.WriteString(w, token(t, testSecret, map[string]any{
			"sub":   "page",
			"exp":   time.Now().Add(2 * time.Second).Unix(), // whole seconds: 1 to 2 s from now
			"rumor": map[string]any{"subscribe": []string{"orders"}},
		}))
	}))
	t.Cleanup(app.Close)
	c := startClusterWith(t, ctx, 2, func(cfg *Config) {
		cfg.AuthHMACSecret = testSecret
		cfg.AuthQueryToken = true // rumor.js hands the fresh token over as ?token=
		cfg.AuthLeeway = 0
		cfg.CORSOrigins = []string{app.URL}
	})
	n1, n2 := c.nodes[0], c.nodes[1]
	rumorURL.Store(n1.URL())
	expired := token(t, testSecret, map[string]any{
		"sub": "page", "exp": time.Now().Add(-time.Minute).Unix(),
		"rumor": map[string]any{"subscribe": []string{"orders"}},
	})
	publisher := http.Header{"Authorization": {"Bearer " + token(t, testSecret, grant([]string{"orders"}, nil))}}

	b := startBrowser(t, ctx, exe)
	page := b.open(t, app.URL+"/")
	page.wait(t, "rumor.js", `typeof rumor === "object" && rumor.END === "rumor.end"`)

	step := func(name string, f func(t *testing.T)) {
		if !t.Failed() {
			t.Run(name, f)
		}
	}

	step("a reconnect with an expired token and no refreshToken is a final refusal", func(t *testing.T) {
		page.eval(t, fmt.Sprintf(`window.bare = {errors: []};
			window.bareSub = rumor.subscribe("orders", {url: %q, token: %q,
				onError: (i) => bare.errors.push({state: i.state, status: i.status, reason: i.reason, message: i.message, retryIn: i.retryIn})}); true`,
			n1.URL(), expired))
		page.wait(t, "the refusal", `bare.errors.some(e => e.state === "closed")`)
		got := page.eval(t, `JSON.stringify(bare.errors.find(e => e.state === "closed"))`)
		var e struct {
			Status  int
			Reason  string
			Message string
			RetryIn *int
		}
		if err := json.Unmarshal([]byte(got.(string)), &e); err != nil || e.Status != 401 || e.Reason != "expired" || e.Message != "token expired" || e.RetryIn != nil {
			t.Errorf("onError = %s, want status 401, reason expired, message \"token expired\", retryIn null", got)
		}
		page.eval(t, `bareSub.close(); true`)
	})

	// The page subscribes with an expired token: rumor.js learns why
	// EventSource gave up, fetches a token and opens the stream. Then the
	// stream's token expires twice while events keep coming from node 2.
	var (
		mu        sync.Mutex
		published []string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	step("a page resumes without a gap across two token expiries", func(t *testing.T) {
		page.eval(t, fmt.Sprintf(`window.s = {ids: [], opens: [], errors: [], reasons: []};
			window.sub = rumor.subscribe("orders", {url: %q, token: %q,
				refreshToken: (info) => { s.reasons.push(info.reason); return fetch("/token").then(r => r.text()); },
				onEvent: (ev) => s.ids.push(ev.id),
				onOpen: (i) => s.opens.push(i),
				onError: (i) => s.errors.push({state: i.state, status: i.status, reason: i.reason, message: i.message})}); true`,
			n1.URL(), expired))
		page.wait(t, "the stream open after a refresh", `s.opens.length === 1 && s.reasons[0] === "expired"`)

		wg.Add(1)
		go func() { // the application publishing through node 2
			defer wg.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				resp, err := c.client.Do(mustRequest(t, http.MethodPost, n2.URL()+"/channels/orders", publisher, "order"))
				if err != nil {
					t.Errorf("publish: %v", err)
					return
				}
				var out struct{ ID string }
				err = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if err != nil || out.ID == "" {
					t.Errorf("publish: %d %v", resp.StatusCode, err)
					return
				}
				mu.Lock()
				published = append(published, out.ID)
				mu.Unlock()
			}
		}()
		page.wait(t, "two more refreshes after the stream's token expired", `s.reasons.length >= 3 && s.opens.length >= 3`)
		close(stop)
		wg.Wait()
		mu.Lock()
		want := slices.Clone(published)
		mu.Unlock()
		page.wait(t, fmt.Sprintf("the %d published events", len(want)), fmt.Sprintf(`s.ids.length >= %d`, len(want)))

		var got []string
		raw := page.eval(t, `JSON.stringify(s.ids)`)
		if err := json.Unmarshal([]byte(raw.(string)), &got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("the page got %d events, want the %d published, in order, once each\n got %v\nwant %v", len(got), len(want), got, want)
		}
		reasons := page.eval(t, `s.reasons.join(" ")`).(string)
		if !strings.HasPrefix(reasons, "expired expired expired") {
			t.Errorf("refreshToken reasons %q, want expired each time", reasons)
		}
		if errs := page.eval(t, `JSON.stringify(s.errors)`).(string); errs != "[]" {
			t.Errorf("onError calls %s, want none: every end was a refresh", errs)
		}
		if resumed := page.eval(t, `s.opens.slice(1).every(i => i.reconnected && i.lastEventId)`); resumed != true {
			t.Errorf("opens %v, want every one after the first to resume after an id", page.eval(t, `JSON.stringify(s.opens)`))
		}
		page.eval(t, `sub.close(); true`)
	})
	if t.Failed() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	step("an admin's kick on another node: rumor.js refreshes and resumes", func(t *testing.T) {
		page.eval(t, fmt.Sprintf(`window.k = {ids: [], opens: [], reasons: []};
			window.ksub = rumor.subscribe("orders", {url: %q, token: %q,
				refreshToken: (info) => { k.reasons.push(info.reason); return fetch("/token").then(r => r.text()); },
				onEvent: (ev) => k.ids.push(ev.id),
				onOpen: (i) => k.opens.push(i)}); true`, n1.URL(), token(t, testSecret, map[string]any{
			"sub": "page", "exp": time.Now().Add(time.Hour).Unix(), "rumor": map[string]any{"subscribe": []string{"orders"}}})))
		page.wait(t, "the stream open", `k.opens.length === 1`)
		before := c.publishWith(t, n2, "orders", publisher)
		page.wait(t, "the first event", fmt.Sprintf(`k.ids.includes(%q)`, before))
		admin := http.Header{"Authorization": {"Bearer " + token(t, testSecret, map[string]any{
			"sub": "ops", "exp": time.Now().Add(time.Hour).Unix(), "rumor": map[string]any{"admin": true}})}}
		if resp, body := do(t, c.client, http.MethodPost, n2.URL()+"/revocations", admin, `{"kind":"kick-subject","subject":"page"}`); resp.StatusCode != http.StatusOK {
			t.Fatalf("kick: %d %s", resp.StatusCode, body)
		}
		page.wait(t, "the kicked stream back", `k.reasons[0] === "kicked" && k.opens.length >= 2`)
		after := c.publishWith(t, n2, "orders", publisher)
		page.wait(t, "the event after the kick", fmt.Sprintf(`k.ids.includes(%q)`, after))
		if ids := page.eval(t, `k.ids.join(" ")`); ids != before+" "+after {
			t.Errorf("the page got %v, want %s %s", ids, before, after)
		}
		page.eval(t, `ksub.close(); true`)
	})
	step("the node counted the expiries", func(t *testing.T) {
		if n := metricValue(t, c.client, n1.URL()+"/metrics", `rumor_streams_ended_total{reason="expired"}`); n < 2 {
			t.Errorf(`rumor_streams_ended_total{reason="expired"} = %v, want 2 or more`, n)
		}
	})
	b.checkExceptions(t)
}

func mustRequest(tb testing.TB, method, url string, h http.Header, body string) *http.Request {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header = h.Clone()
	return req
}

// metricValue scrapes url and returns the sample named exactly series
// (name{labels} as Prometheus writes it), or -1 when it is absent.
func metricValue(tb testing.TB, client *http.Client, url, series string) float64 {
	tb.Helper()
	resp, err := client.Get(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}

// publishWith posts an event to channel on n with header and returns its id.
func (c *testCluster) publishWith(tb testing.TB, n *testNode, channel string, header http.Header) string {
	tb.Helper()
	resp, err := c.client.Do(mustRequest(tb, http.MethodPost, n.URL()+"/channels/"+channel, header, "order"))
	if err != nil {
		tb.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.ID == "" {
		tb.Fatalf("publish: %d %v", resp.StatusCode, err)
	}
	return out.ID
}
