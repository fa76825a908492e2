package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"testing"
)

// TestBrowserUIRefusesFraming: a page of another site that frames the UI
// gets nothing rendered in a real browser. The node sits behind a proxy
// that records what the frame asked for: a rendered UI would fetch its
// script and stylesheet before the frame's load event, a refused one
// fetches the page alone.
func TestBrowserUIRefusesFraming(t *testing.T) {
	exe := browserPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), browserBudget)
	defer cancel()
	c := startCluster(t, ctx, 1)
	target, err := url.Parse(c.nodes[0].URL())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var asked []string
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Path)
		mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<!doctype html><title>evil</title>
<iframe id="f" src="` + proxy.URL + `/" onload="window.frameLoaded = true"></iframe>`))
	}))
	defer evil.Close()

	b := startBrowser(t, ctx, exe)
	page := b.open(t, evil.URL+"/")
	page.wait(t, "the frame's load event", `window.frameLoaded === true`)
	mu.Lock()
	got := slices.Clone(asked)
	mu.Unlock()
	if !slices.Contains(got, "/") {
		t.Fatalf("the frame asked for %q: it never asked for the UI", got)
	}
	for _, p := range []string{"/app.js", "/app.css"} {
		if slices.Contains(got, p) {
			t.Errorf("the framed UI was rendered: it fetched %q (all: %q)", p, got)
		}
	}
}
