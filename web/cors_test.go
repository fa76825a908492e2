package web

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/rumorhq/rumor/broker"
)

func TestCanonicalOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://App.Example.com":     "https://app.example.com",
		"https://app.example.com/":    "https://app.example.com",
		"https://app.example.com:443": "https://app.example.com",
		"http://localhost:80":         "http://localhost",
		"http://localhost:5173":       "http://localhost:5173",
		"http://[::1]:80":             "http://[::1]",
	} {
		if got, err := CanonicalOrigin(in); err != nil || got != want {
			t.Errorf("CanonicalOrigin(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "null", "app.example.com", "ftp://x", "https://x/path", "https://x?q", "https://u:p@x", "https://"} {
		if got, err := CanonicalOrigin(bad); err == nil {
			t.Errorf("CanonicalOrigin(%q) = %q, want an error", bad, got)
		}
	}
}

// accessControl returns the Access-Control-* headers of an answer.
func accessControl(a answer) map[string]string {
	out := map[string]string{}
	for k, v := range a.header {
		if strings.HasPrefix(k, "Access-Control-") {
			out[k] = strings.Join(v, ",")
		}
	}
	return out
}

func TestCORS(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{CORSOrigins: []string{"https://app.example.com", "http://localhost:5173"}})
	preflight := func(origin, method, headers string) answer {
		h := http.Header{"Access-Control-Request-Method": {method}}
		if origin != "" {
			h.Set("Origin", origin)
		}
		if headers != "" {
			h.Set("Access-Control-Request-Headers", headers)
		}
		return ts.do(t, http.MethodOptions, "/channels/orders", h, "")
	}

	t.Run("preflight from a listed origin", func(t *testing.T) {
		a := preflight("https://app.example.com", "POST", "authorization,content-type,idempotency-key")
		if a.status != http.StatusNoContent {
			t.Fatalf("preflight = %d %s, want 204", a.status, a.body)
		}
		h := accessControl(a)
		want := map[string]string{
			"Access-Control-Allow-Origin":      "https://app.example.com",
			"Access-Control-Allow-Credentials": "true",
			"Access-Control-Allow-Methods":     corsMethods,
			"Access-Control-Max-Age":           corsMaxAge,
		}
		for k, v := range want {
			if h[k] != v {
				t.Errorf("%s = %q, want %q", k, h[k], v)
			}
		}
		allowed := strings.Split(strings.ReplaceAll(h["Access-Control-Allow-Headers"], " ", ""), ",")
		for _, need := range []string{"Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"} {
			if !slices.Contains(allowed, need) {
				t.Errorf("Access-Control-Allow-Headers %q lacks %s", h["Access-Control-Allow-Headers"], need)
			}
		}
		if v := a.header.Values("Vary"); !slices.Contains(v, "Origin") {
			t.Errorf("Vary = %q, want Origin", v)
		}
	})

	t.Run("preflight from an unlisted origin", func(t *testing.T) {
		a := preflight("https://evil.example", "POST", "authorization")
		if h := accessControl(a); len(h) != 0 {
			t.Errorf("unlisted origin got CORS headers %v", h)
		}
		if a.status == http.StatusNoContent || a.status == http.StatusOK {
			t.Errorf("unlisted origin's preflight = %d, want a refusal", a.status)
		}
	})

	t.Run("an OPTIONS that is not a preflight", func(t *testing.T) {
		a := ts.do(t, http.MethodOptions, "/channels/orders", http.Header{"Origin": {"https://app.example.com"}}, "")
		if a.status != http.StatusMethodNotAllowed {
			t.Errorf("OPTIONS without Access-Control-Request-Method = %d, want 405", a.status)
		}
	})

	t.Run("actual requests", func(t *testing.T) {
		a := ts.do(t, http.MethodPost, "/channels/orders", http.Header{"Origin": {"http://localhost:5173"}}, "x")
		if a.status != 200 || a.header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" ||
			a.header.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(a.header.Get("Access-Control-Expose-Headers"), "Retry-After") {
			t.Errorf("POST from a listed origin = %d %v", a.status, accessControl(a))
		}
		a = ts.do(t, http.MethodPost, "/channels/orders", http.Header{"Origin": {"https://evil.example"}}, "x")
		if h := accessControl(a); len(h) != 0 {
			t.Errorf("POST from an unlisted origin got CORS headers %v", h)
		}
		if v := a.header.Values("Vary"); !slices.Contains(v, "Origin") {
			t.Errorf("answer to an unlisted origin: Vary = %q, want Origin (caches must not share it)", v)
		}
		a = ts.do(t, http.MethodGet, "/healthz", http.Header{"Origin": {"null"}}, "")
		if h := accessControl(a); len(h) != 0 {
			t.Errorf("Origin: null got CORS headers %v", h)
		}
		a = ts.do(t, http.MethodGet, "/healthz", nil, "")
		if h := accessControl(a); len(h) != 0 {
			t.Errorf("a request without Origin got CORS headers %v", h)
		}
	})
}

// "*" lets every origin read, never with credentials; listed origins keep
// theirs.
func TestCORSWildcard(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{CORSOrigins: []string{"*", "https://app.example.com"}})
	a := ts.do(t, http.MethodGet, "/healthz", http.Header{"Origin": {"https://anyone.example"}}, "")
	if got := accessControl(a); got["Access-Control-Allow-Origin"] != "*" || got["Access-Control-Allow-Credentials"] != "" {
		t.Errorf("any origin with *: %v, want Allow-Origin * without credentials", got)
	}
	a = ts.do(t, http.MethodGet, "/healthz", http.Header{"Origin": {"https://app.example.com"}}, "")
	if got := accessControl(a); got["Access-Control-Allow-Origin"] != "https://app.example.com" || got["Access-Control-Allow-Credentials"] != "true" {
		t.Errorf("listed origin with *: %v, want itself with credentials", got)
	}
}

// Without CORSOrigins, no request gets a CORS header, and a preflight is
// what any OPTIONS is: 405.
func TestCORSOff(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	a := ts.do(t, http.MethodOptions, "/channels/orders", http.Header{"Origin": {"https://app.example.com"}, "Access-Control-Request-Method": {"POST"}}, "")
	if h := accessControl(a); len(h) != 0 || a.status != http.StatusMethodNotAllowed {
		t.Errorf("preflight with CORS off = %d %v, want 405 without CORS headers", a.status, h)
	}
}
