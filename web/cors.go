package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// CORS answers: what browsers on an allowed origin may send and read.
const (
	corsMethods = "GET, POST"
	corsHeaders = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID"
	corsExpose  = "Retry-After, Idempotent-Replayed, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"
	corsMaxAge  = "600" // seconds a browser may reuse a preflight answer
)

// corsPolicy is the allowlist of Options.CORSOrigins. Its zero value allows
// no origin: no CORS header is ever sent.
type corsPolicy struct {
	origins map[string]bool // exact origins, canonical: credentials allowed
	any     bool            // "*": every other origin, without credentials
}

// newCORS parses the allowlist. Each entry is an origin as browsers send
// it ("https://app.example.com", "http://localhost:5173") or "*".
func newCORS(list []string) (corsPolicy, error) {
	p := corsPolicy{origins: make(map[string]bool)}
	var errs []error
	for _, o := range list {
		if o == "*" {
			p.any = true
			continue
		}
		c, err := CanonicalOrigin(o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.origins[c] = true
	}
	return p, errors.Join(errs...)
}

// CanonicalOrigin checks an allowlist entry and returns it as browsers
// send it in the Origin header: scheme://host[:port], lower case, without
// a path or the default port.
func CanonicalOrigin(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil ||
		u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("CORS origin %q: want scheme://host[:port] with http or https, or *", clip(s))
	}
	host := strings.ToLower(u.Host)
	if port := u.Port(); u.Scheme == "http" && port == "80" || u.Scheme == "https" && port == "443" {
		host = strings.ToLower(u.Hostname())
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	return u.Scheme + "://" + host, nil
}

// allow returns whether origin may read answers, and whether with
// credentials (cookies).
func (p corsPolicy) allow(origin string) (ok, credentials bool) {
	if origin == "" || origin == "null" {
		return false, false
	}
	if p.origins[strings.ToLower(origin)] {
		return true, true
	}
	return p.any, false
}

func (p corsPolicy) enabled() bool { return p.any || len(p.origins) > 0 }

// withCredentials reports whether origin is listed by name: only those may
// send cookies, and so a cookie's token.
func (p corsPolicy) withCredentials(origin string) bool {
	_, creds := p.allow(origin)
	return creds
}

// corsMiddleware answers preflights and adds CORS headers for allowed
// origins. A listed origin gets itself echoed with credentials allowed; "*"
// lets any other origin read without credentials; an unlisted origin gets
// no CORS header at all, so its browser refuses to expose the answer.
func (h *Handler) corsMiddleware(next http.Handler) http.Handler {
	if !h.cors.enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.mercure != nil && strings.HasPrefix(r.URL.Path, MercurePath) {
			next.ServeHTTP(w, r) // the Mercure face has its own origins (mercure.go)
			return
		}
		hd := w.Header()
		// The answer depends on Origin: caches must keep one per origin.
		hd.Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		ok, creds := h.cors.allow(origin)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		if creds {
			hd.Set("Access-Control-Allow-Origin", origin)
			hd.Set("Access-Control-Allow-Credentials", "true")
		} else {
			hd.Set("Access-Control-Allow-Origin", "*")
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			hd.Add("Vary", "Access-Control-Request-Method")
			hd.Add("Vary", "Access-Control-Request-Headers")
			hd.Set("Access-Control-Allow-Methods", corsMethods)
			hd.Set("Access-Control-Allow-Headers", corsHeaders)
			hd.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		hd.Set("Access-Control-Expose-Headers", corsExpose)
		next.ServeHTTP(w, r)
	})
}
