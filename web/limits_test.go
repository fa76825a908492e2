package web

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/broker"
)

func TestClientAddr(t *testing.T) {
	h := &Handler{}
	var err error
	if h.proxies, err = parsePrefixes([]string{"10.0.0.0/8", "192.168.1.1"}); err != nil {
		t.Fatal(err)
	}
	direct := &Handler{}
	for _, tt := range []struct {
		name   string
		h      *Handler
		remote string
		xff    []string
		want   string
	}{
		{"direct", direct, "203.0.113.7:5000", nil, "203.0.113.7"},
		{"direct ignores X-Forwarded-For", direct, "203.0.113.7:5000", []string{"1.2.3.4"}, "203.0.113.7"},
		{"untrusted peer cannot spoof", h, "203.0.113.7:5000", []string{"1.2.3.4"}, "203.0.113.7"},
		{"trusted proxy", h, "10.1.2.3:5000", []string{"198.51.100.9"}, "198.51.100.9"},
		{"two trusted hops", h, "10.1.2.3:5000", []string{"198.51.100.9, 192.168.1.1"}, "198.51.100.9"},
		{"spoofed left part is skipped", h, "10.1.2.3:5000", []string{"6.6.6.6, 198.51.100.9"}, "198.51.100.9"},
		{"several headers merged", h, "10.1.2.3:5000", []string{"6.6.6.6", "198.51.100.9"}, "198.51.100.9"},
		{"garbage fails closed to the last known", h, "10.1.2.3:5000", []string{"198.51.100.9, garbage"}, "10.1.2.3"},
		{"only trusted hops", h, "10.1.2.3:5000", []string{"10.9.9.9"}, "10.9.9.9"},
		{"no header", h, "10.1.2.3:5000", nil, "10.1.2.3"},
		{"IPv6 by /64", direct, "[2001:db8:1:2:3:4:5:6]:5000", nil, "2001:db8:1:2::"},
		{"v4-mapped peer", h, "[::ffff:10.1.2.3]:5000", []string{"198.51.100.9"}, "198.51.100.9"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tt.remote
		for _, v := range tt.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := tt.h.clientAddr(r); got != tt.want {
			t.Errorf("%s: clientAddr = %q, want %q", tt.name, got, tt.want)
		}
	}
	if _, err := parsePrefixes([]string{"10.0.0.0/8", "nope"}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("parsePrefixes with a bad entry = %v, want an error naming it", err)
	}
}

// readShed reads a stream answered with a retry: and a comment and ended.
func readShed(tb testing.TB, ts *testServer, path string, header http.Header) (retry int, comment string) {
	tb.Helper()
	a := ts.do(tb, http.MethodGet, path, header, "")
	if a.status != http.StatusOK || a.header.Get("Content-Type") != "text/event-stream" {
		tb.Fatalf("GET %s = %d %q, want 200 text/event-stream", path, a.status, a.header.Get("Content-Type"))
	}
	for line := range strings.Lines(a.body) {
		line = strings.TrimRight(line, "\n")
		if v, ok := strings.CutPrefix(line, "retry: "); ok {
			retry, _ = strconv.Atoi(v)
		}
		if v, ok := strings.CutPrefix(line, ": "); ok {
			comment = v
		}
	}
	if retry <= 0 || comment == "" {
		tb.Fatalf("GET %s = %q, want a retry: and a comment", path, a.body)
	}
	return retry, comment
}

func TestMaxStreamsPerClient(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{MaxStreamsPerClient: 2})
	a := ts.openStream(t, "/channels/a", nil)
	ts.openStream(t, "/events?channel=b", nil)
	retry, comment := readShed(t, ts, "/channels/c", nil)
	if retry < 5000 || retry >= 15000 || !strings.Contains(comment, "too many streams from your address") {
		t.Errorf("third stream: retry %d, comment %q; want 5000-15000 and the per-client reason", retry, comment)
	}
	if got := ts.metric(t, "rumor_streams_rejected_total", map[string]string{"reason": rejectClientLimit}); got != 1 {
		t.Errorf("rumor_streams_rejected_total{reason=client_limit} = %v, want 1", got)
	}
	// A stream that ends gives its slot back.
	a.resp.Body.Close()
	waitFor(t, "the closed stream to be released", func() bool {
		ts.h.sec.mu.Lock()
		defer ts.h.sec.mu.Unlock()
		return ts.h.sec.clients["127.0.0.1"] == 1
	})
	ts.openStream(t, "/channels/d", nil)
}

func TestPublishRate(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{PublishRate: 3, PublishWindow: time.Minute})
	for i := range 3 {
		if a := ts.do(t, http.MethodPost, "/channels/a", nil, "x"); a.status != 200 {
			t.Fatalf("publish %d = %d %s, want 200", i, a.status, a.body)
		}
	}
	a := ts.do(t, http.MethodPost, "/publish", nil, `[{"channel":"a","data":"x"}]`)
	wantError(t, "fourth publish", a, http.StatusTooManyRequests)
	if ra, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After = %q, want 1 to 60 seconds", a.header.Get("Retry-After"))
	}
	if got := ts.metric(t, "rumor_publish_errors_total", map[string]string{"reason": "rate_limited"}); got != 1 {
		t.Errorf("rumor_publish_errors_total{reason=rate_limited} = %v, want 1", got)
	}
	if got := ts.hub.Stats().Published; got != 3 {
		t.Errorf("published %d events, want 3", got)
	}
	// Streams are not publishes.
	ts.openStream(t, "/channels/a", nil)
}

// Each token has its own budget: one publisher at its limit does not stop
// another.
func TestPublishRatePerToken(t *testing.T) {
	auth := newAuth(t, auth.Config{HMACSecret: []byte(testSecret)})
	ts := newServer(t, broker.Options{}, Options{Auth: auth, PublishRate: 1, PublishWindow: time.Minute})
	bearer := func(sub string) http.Header {
		c := claims([]string{">"}, nil, time.Hour)
		c["sub"] = sub
		return http.Header{"Authorization": {"Bearer " + hs256(t, c)}}
	}
	alice, bob := bearer("alice"), bearer("bob")
	if a := ts.do(t, http.MethodPost, "/channels/a", alice, "x"); a.status != 200 {
		t.Fatalf("alice's first publish = %d %s", a.status, a.body)
	}
	wantError(t, "alice's second publish", ts.do(t, http.MethodPost, "/channels/a", alice, "x"), http.StatusTooManyRequests)
	// A fresh token for the same subject shares the budget.
	wantError(t, "alice's second token", ts.do(t, http.MethodPost, "/channels/a", bearer("alice"), "x"), http.StatusTooManyRequests)
	if a := ts.do(t, http.MethodPost, "/channels/a", bob, "x"); a.status != 200 {
		t.Errorf("bob's publish = %d %s, want 200", a.status, a.body)
	}
	// A forged token is refused before it can spend anyone's budget.
	forged := sign(t, jwt.SigningMethodHS256, []byte("not the secret, but long enough!!"), claims([]string{">"}, nil, time.Hour), nil)
	wantError(t, "forged", ts.do(t, http.MethodPost, "/channels/a", http.Header{"Authorization": {"Bearer " + forged}}, "x"), http.StatusUnauthorized)
}

// rawRequest sends raw bytes on a new connection and returns the status
// line of the answer.
func rawRequest(tb testing.TB, addr, req string) string {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := io.WriteString(c, req); err != nil {
		tb.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		tb.Fatalf("reading the answer to %q: %v", req, err)
	}
	return strings.TrimSpace(line)
}
