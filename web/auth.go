package web

// The HTTP side of authentication: the auth package checks tokens and
// grants; this file asks it at the publish and stream routes, and answers
// its refusals. docs/AUTH.md is the user's guide.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/broker"
)

// authenticate is the middleware of the publish routes: a request with a
// bad token gets 401 here; one with a good token carries its principal in
// its context. A request without a token goes on, and the handler refuses
// it. A token from a cookie does not authenticate a POST from a foreign
// origin (cross-site request forgery).
func (h *Handler) authenticate(next http.Handler) http.Handler {
	if h.opts.Auth == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, aerr := h.opts.Auth.Authenticate(r)
		if aerr == nil && p != nil && p.Via == "cookie" && !h.trustedOrigin(r) {
			aerr = &auth.Error{Status: http.StatusForbidden, Reason: auth.ReasonForbidden,
				Msg: "a token from a cookie may publish only from this origin or an allowed CORS origin: send Authorization: Bearer TOKEN"}
		}
		if aerr != nil {
			h.refusePublish(w, r, aerr)
			return
		}
		if p != nil {
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		}
		next.ServeHTTP(w, r)
	})
}

type principalKey struct{}

// principalOf returns the request's checked token, nil if it has none.
func principalOf(r *http.Request) *auth.Principal {
	p, _ := r.Context().Value(principalKey{}).(*auth.Principal)
	return p
}

// authorizePublish checks that the request may publish to every channel.
// With auth off everyone may. A name that is not a channel is left to the
// validation that follows, so that it gets 400 whatever the token grants.
func (h *Handler) authorizePublish(r *http.Request, channels ...string) *auth.Error {
	if h.opts.Auth == nil {
		return nil
	}
	p := principalOf(r)
	for _, c := range channels {
		if p != nil && broker.ValidateChannel(c) != nil {
			continue
		}
		if err := h.opts.Auth.CanPublish(p, c); err != nil {
			return err
		}
	}
	return nil
}

// requireToken refuses a publish without a token when auth is on, before
// anything names a channel: POST /publish learns its channels only from
// its body, which a request without a token must not get to send.
func (h *Handler) requireToken(r *http.Request) *auth.Error {
	if h.opts.Auth == nil || principalOf(r) != nil {
		return nil
	}
	return h.opts.Auth.CanPublish(nil, "")
}

// scopedKey confines an idempotency key to the token that publishes: with
// auth on, a publisher who guesses another's keys can neither make their
// publishes look like replays (and vanish) nor learn their event ids. The
// scope is the token's subject, so a publisher keeps its keys across token
// refreshes; tokens without a subject are each their own scope.
func (h *Handler) scopedKey(r *http.Request, key string) string {
	p := principalOf(r)
	if key == "" || p == nil {
		return key
	}
	sum := sha256.Sum256([]byte(p.LimitKey))
	return hex.EncodeToString(sum[:8]) + "/" + key
}

// authorizeStream checks the request's token, if any, and that it may
// subscribe to every pattern; it returns the token (nil without one or
// without auth), whose Expires ends the stream. A cross-site GET can only
// open a stream whose answer its page cannot read unless CORS allows it, so
// cookies count here whatever the origin.
func (h *Handler) authorizeStream(r *http.Request, patterns []broker.Pattern) (*auth.Principal, *auth.Error) {
	if h.opts.Auth == nil {
		return nil, nil
	}
	p, err := h.opts.Auth.Authenticate(r)
	if err != nil {
		return nil, err
	}
	if err := h.opts.Auth.CanSubscribe(p, patterns); err != nil {
		return nil, err
	}
	return p, nil
}

// refuse answers 401 or 403 with a JSON error and the WWW-Authenticate
// header of RFC 6750, and counts it.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, e *auth.Error) {
	h.sec.authFailures.WithLabelValues(e.Reason).Inc()
	code := "invalid_token"
	switch {
	case e.Status == http.StatusForbidden:
		code = "insufficient_scope"
	case e.Reason == auth.ReasonMissing:
		code = "invalid_request"
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="rumor", error="`+code+`", error_description="`+quotable(e.Msg)+`"`)
	writeJSON(w, e.Status, errorBody{Error: e.Msg, Reason: e.Reason})
}

// quotable makes s fit in an RFC 6750 error_description: printable ASCII
// without '"' and '\'.
func quotable(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b[i] = '\''
		}
	}
	return string(b)
}

// refusePublish is refuse for a publish, which rumor_publish_errors_total
// counts too.
func (h *Handler) refusePublish(w http.ResponseWriter, r *http.Request, e *auth.Error) {
	reason := publishUnauthorized
	if e.Status == http.StatusForbidden {
		reason = publishForbidden
	}
	h.metrics.publishErrors.WithLabelValues(reason).Inc()
	skipBody(w, r) // a refused publisher's body is never read
	h.refuse(w, r, e)
}

// trustedOrigin reports whether a request's Origin is this server itself
// (scheme, host and port) or a CORS origin allowed with credentials. A
// request without Origin is not trusted: every current browser sends one on
// a POST.
func (h *Handler) trustedOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	if o, err := CanonicalOrigin(origin); err == nil && o == origin && o == h.selfOrigin(r) {
		return true
	}
	return h.cors.withCredentials(origin)
}

// selfOrigin is the origin of this node's own pages as the client reached
// it: https when the connection is TLS or a trusted proxy says it served
// https (X-Forwarded-Proto), the Host header's host and port. Empty if the
// Host header is not one.
func (h *Handler) selfOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || h.viaTrustedProxy(r) && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	o, err := CanonicalOrigin(scheme + "://" + r.Host)
	if err != nil {
		return ""
	}
	return o
}
