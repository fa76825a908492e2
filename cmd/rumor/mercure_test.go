package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testMercurePubKey = "mercure-publisher-key-for-tests-0123456789"
	testMercureSubKey = "mercure-subscriber-key-for-tests-012345678"
	testMercureAud    = "https://hub.example.com/.well-known/mercure"
)

func signHS256(tb testing.TB, key string, typ string, claims jwt.MapClaims) string {
	tb.Helper()
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	if typ != "" {
		t.Header["typ"] = typ
	}
	s, err := t.SignedString([]byte(key))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// mercureStream is an open Mercure subscription.
type mercureStream struct {
	resp *http.Response
	er   *eventReader
}

func (s *mercureStream) next(tb testing.TB) streamEvent {
	tb.Helper()
	ev, err := s.er.Next()
	if err != nil {
		tb.Fatalf("read Mercure event: %v", err)
	}
	return ev
}

func (c *testCluster) mercureSubscribe(tb testing.TB, n *testNode, query string, header http.Header) *mercureStream {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL()+"/.well-known/mercure?"+query, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.client.Do(req)
	if err != nil {
		cancel()
		tb.Fatalf("GET /.well-known/mercure?%s: %v", query, err)
	}
	tb.Cleanup(func() {
		cancel()
		resp.Body.Close()
	})
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("GET /.well-known/mercure?%s = %d %s", query, resp.StatusCode, b)
	}
	return &mercureStream{resp: resp, er: newEventReader(resp.Body, 1<<20)}
}

func (c *testCluster) mercurePublish(tb testing.TB, n *testNode, token string, form url.Values) (int, string) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.URL()+"/.well-known/mercure", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMercureCluster: an application of each generation, against three
// nodes configured by flags: publish on one node, receive on the others
// (private updates only where granted), resume on a third node by a
// custom id and from earliest, and list subscriptions of every node.
func TestMercureCluster(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "pub.key")
	if err := os.WriteFile(keyFile, []byte(testMercurePubKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := startClusterWith(t, ctx, 3, func(cfg *Config) {
		args := []string{"--mercure", "--mercure-publisher-key-file", keyFile, "--mercure-subscriber-key", testMercureSubKey,
			"--mercure-anonymous", "--mercure-subscriptions", "--mercure-audience", testMercureAud}
		mc, err := parseServe(args, env(nil))
		if err != nil {
			t.Fatal(err)
		}
		cfg.MercureConfig = mc.MercureConfig
	})
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	pub0 := signHS256(t, testMercurePubKey, "", jwt.MapClaims{"mercure": map[string]any{"publish": []string{"*"}}})
	pub1 := signHS256(t, testMercurePubKey, "at+jwt", jwt.MapClaims{"aud": testMercureAud, "exp": time.Now().Add(time.Hour).Unix(),
		"authorization_details": []any{map[string]any{"type": "mercure", "actions": []string{"publish"}, "topics": []any{map[string]any{"match": "*"}}}}})
	granted := signHS256(t, testMercureSubKey, "", jwt.MapClaims{"mercure": map[string]any{"subscribe": []string{"https://example.com/books/{id}"}}})
	watcher := signHS256(t, testMercureSubKey, "", jwt.MapClaims{"mercure": map[string]any{"subscribe": []any{
		"/.well-known/mercure/subscriptions{/topic}{/subscriber}",
		map[string]any{"match": "/.well-known/mercure/subscriptions/*", "match_type": "urlpattern"},
	}}})

	old := c.mercureSubscribe(t, n2, "topic="+url.QueryEscape("https://example.com/books/{id}"), http.Header{"Cookie": {"mercureAuthorization=" + granted}})
	anon := c.mercureSubscribe(t, n3, "match_urlpattern="+url.QueryEscape("https://example.com/books/:id"), nil)
	listed := func(n *testNode) int {
		req, _ := http.NewRequest(http.MethodGet, n.URL()+"/.well-known/mercure/subscriptions", nil)
		req.Header.Set("Authorization", "Bearer "+watcher)
		resp, err := c.client.Do(req)
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		var list struct {
			Subscriptions []json.RawMessage `json:"subscriptions"`
		}
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&list) != nil {
			return -1
		}
		return len(list.Subscriptions)
	}
	waitFor(t, "both subscriptions (on n2 and n3) listed on n1", func() bool { return listed(n1) == 2 })

	if s, b := c.mercurePublish(t, n1, pub0, url.Values{"topic": {"https://example.com/books/1", "https://example.com/alt/1"}, "data": {"private one"}, "id": {"id-1"}, "private": {"on"}}); s != 200 || b != "id-1" {
		t.Fatalf("0.x publish = %d %q", s, b)
	}
	if s, b := c.mercurePublish(t, n1, pub1, url.Values{"topic": {"https://example.com/books/2"}, "data": {"public two"}, "id": {"id-2"}}); s != 200 || b != "id-2" {
		t.Fatalf("1.0 publish = %d %q", s, b)
	}
	if ev := old.next(t); ev.ID != "id-1" || ev.Data != "private one" {
		t.Errorf("granted subscriber on n2 got %+v first, want id-1", ev)
	}
	if ev := old.next(t); ev.ID != "id-2" {
		t.Errorf("granted subscriber on n2 got %+v second, want id-2", ev)
	}
	if ev := anon.next(t); ev.ID != "id-2" || ev.Data != "public two" {
		t.Errorf("anonymous subscriber on n3 got %+v first, want only the public id-2", ev)
	}

	// Resume on the third node: after id-1 by its custom id, and from earliest.
	res := c.mercureSubscribe(t, n3, "topic=*", http.Header{"Last-Event-Id": {"id-1"}, "Authorization": {"Bearer " + granted}})
	if got := res.resp.Header.Get("Last-Event-ID"); got != "id-1" {
		t.Errorf("resume on n3: Last-Event-ID header %q, want id-1", got)
	}
	if ev := res.next(t); ev.ID != "id-2" {
		t.Errorf("resume after id-1 on n3 got %+v, want id-2", ev)
	}
	all := c.mercureSubscribe(t, n3, "match=https://example.com/books/1&match=https://example.com/books/2&lastEventID=earliest", bearerHeader(granted))
	for _, want := range []string{"id-1", "id-2"} {
		if ev := all.next(t); ev.ID != want {
			t.Errorf("earliest on n3 got %+v, want %s", ev, want)
		}
	}
	// 2 + res's one + all's two; a closed one leaves every node's list.
	waitFor(t, "five subscriptions listed on n2", func() bool { return listed(n2) == 5 })
	anon.resp.Body.Close()
	waitFor(t, "the closed subscription gone from n1's list", func() bool { return listed(n1) == 4 })
}

func bearerHeader(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

// TestMercureConfig checks the flags' rules: keys as the reference hub
// requires them, token forms, and nothing Mercure without --mercure.
func TestMercureConfig(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // in the error; "" means valid
	}{
		{[]string{"--mercure", "--mercure-publisher-key", testMercurePubKey, "--mercure-subscriber-key", testMercureSubKey}, ""},
		{[]string{"--mercure", "--mercure-publisher-key", testMercurePubKey, "--mercure-anonymous"}, ""},
		{[]string{"--mercure", "--mercure-publisher-key", testMercurePubKey}, "--mercure-subscriber-key"},
		{[]string{"--mercure", "--mercure-subscriber-key", testMercureSubKey}, "--mercure-publisher-key"},
		{[]string{"--mercure", "--mercure-publisher-key", "short", "--mercure-anonymous"}, "want at least 32"},
		{[]string{"--mercure", "--mercure-publisher-key", testMercurePubKey, "--mercure-anonymous", "--mercure-tokens", "2.0"}, "--mercure-tokens"},
		{[]string{"--mercure", "--mercure-publisher-key", testMercurePubKey, "--mercure-anonymous", "--mercure-tokens", "1.0"}, "--mercure-audience"},
		{[]string{"--mercure", "--mercure-publisher-key", testMercurePubKey, "--mercure-anonymous", "--mercure-cors-origins", "ftp://x"}, "--mercure-cors-origins"},
		{[]string{"--mercure-anonymous"}, "add --mercure"},
	} {
		_, err := parseServe(tt.args, env(nil))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q: %v, want valid", tt.args, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q: %v, want an error naming %s", tt.args, err, tt.want)
		}
	}
	cfg, err := parseServe(nil, env(map[string]string{"RUMOR_MERCURE": "true", "RUMOR_MERCURE_PUBLISHER_KEY": testMercurePubKey, "RUMOR_MERCURE_ANONYMOUS": "true"}))
	if err != nil || !cfg.Mercure || !cfg.MercureAnonymous || strings.Join(cfg.MercureTokens, ",") != "0.x,1.0" || cfg.MercureCookie != "mercureAuthorization" {
		t.Errorf("from the environment: %+v, %v", cfg.MercureConfig, err)
	}
}
