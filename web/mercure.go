package web

// The Mercure face: GET and POST /.well-known/mercure, a second face over
// the same broker beside /channels, speaking both generations of the
// protocol (0.x and the 1.0 draft) on one endpoint. Topic matching and
// grants are package mercure's; this file and mercure_*.go answer HTTP.
//
// Every Mercure update is one broker event on the system channel
// "$mercure" (broker.SystemPrefix): no /channels client can name it or
// match it with a wildcard, so private updates never reach a rumor
// stream. The event's data is a small JSON envelope (topics, private, id,
// type, retry, data); each node decodes it once per event
// (broker.Event.Decoded). The channel is indexed by topic (broker
// Hub.Index): a subscription of exact topics (or of templates with a long
// literal start) is offered only the updates its keys name; and each
// Mercure subscriber's broker subscription filters what it is offered by
// its selectors and its token's grants before it is queued
// (broker.SubscribeRequest.Filter), so a subscriber is woken only for what
// it will send. docs/DESIGN.md, "The
// Mercure face", gives the argument; docs/API.md the contract.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/broker"
	"github.com/rumorhq/rumor/mercure"
	"github.com/rumorhq/rumor/presence"
)

// MercurePath is the hub's URL path, fixed by the specification.
const MercurePath = "/.well-known/mercure"

// mercureChannel is the system channel Mercure updates travel in.
const mercureChannel = broker.SystemPrefix + "mercure"

// DefaultMercureCookie is the cookie a 0.x browser's token travels in.
const DefaultMercureCookie = "mercureAuthorization"

// mercureCookies are the other cookies read for a token, after the
// configured one: 1.0's recommended name and the name the reference hub
// 1.0 sets.
var mercureCookies = []string{"mercureAccessToken", "__Secure-mercure_access_token"}

// MercureOptions turn on and configure the Mercure face (Options.Mercure).
type MercureOptions struct {
	Publisher      *auth.Authenticator // verifies publishers' tokens; nil refuses every publish (401)
	Subscriber     *auth.Authenticator // verifies subscribers' tokens; nil refuses every subscriber token (401)
	Anonymous      bool                // subscribers without a token are served (public updates only)
	CORSOrigins    []string            // origins whose pages may subscribe (and read answers), "*" for any (without credentials)
	PublishOrigins []string            // origins whose pages may publish with the cookie's token (CSRF), "*" for any
	Subscriptions  bool                // subscription events and the subscriptions API
	Claims         bool                // accept 0.x tokens: a `mercure` claim
	AccessTokens   bool                // accept 1.0 access tokens: typ at+jwt, aud, authorization_details
	RequireExp     bool                // refuse 0.x tokens without exp (1.0 access tokens always need one)
	Audience       string              // 1.0: the hub's resource identifier, which aud must hold; "" refuses 1.0 access tokens
	Issuer         string              // 1.0: when set, iss must equal it
	Cookie         string              // the 0.x cookie; "" means DefaultMercureCookie
	PublicURL      string              // the hub's URL, for relative URL patterns and topics; "" means the request's scheme and host + MercurePath
	MaxSelectors   int                 // topic selectors per subscription, and topics per update; 0 means 128
	Directory      MercureDirectory    // the cluster-wide directory the subscriptions API lists; nil means this node's own plus every peer's, asked over HTTP
}

// MercureDirectory carries the Mercure face's active subscriptions to
// every node: *presence.Directory built with Records is one.
type MercureDirectory interface {
	// Join records an open subscription until leave is called.
	Join(s presence.Stream) (leave func())
	// Records returns the open streams of every live node.
	Records() []presence.Record
}

var _ MercureDirectory = (*presence.Directory)(nil)

// mercureFace serves the Mercure routes of one Handler.
type mercureFace struct {
	h        *Handler
	o        MercureOptions
	cache    *mercure.Cache
	system   broker.Pattern
	cors     corsPolicy
	publish  corsPolicy
	registry *mercureRegistry // active subscriptions on this node (mercure_subscriptions.go)
	peers    *http.Client     // asks peers for theirs
}

func newMercureFace(h *Handler, o MercureOptions) (*mercureFace, error) {
	var errs []error
	cors, err := newCORS(o.CORSOrigins)
	if err != nil {
		errs = append(errs, fmt.Errorf("mercure CORS origins: %w", err))
	}
	pub, err := newCORS(o.PublishOrigins)
	if err != nil {
		errs = append(errs, fmt.Errorf("mercure publish origins: %w", err))
	}
	if o.Cookie == "" {
		o.Cookie = DefaultMercureCookie
	}
	if o.MaxSelectors <= 0 {
		o.MaxSelectors = 128
	}
	if o.PublicURL != "" {
		u, err := url.Parse(o.PublicURL)
		if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("mercure public URL %q: want http(s)://host%s", clip(o.PublicURL), MercurePath))
		}
	}
	if !o.Claims && !o.AccessTokens {
		errs = append(errs, errors.New("mercure: no token form accepted: allow 0.x, 1.0 or both"))
	}
	system, err := broker.SystemPattern(strings.TrimPrefix(mercureChannel, broker.SystemPrefix))
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Subscribers of exact topics, and of URI templates with a long
	// enough literal start, are offered only the updates their keys name
	// (mercure.Selector.Key); the others (URL patterns, *) every update.
	if ix, ok := h.hub.(interface {
		Index(channel string, keys func(*broker.Event) []string)
	}); ok {
		ix.Index(mercureChannel, func(e *broker.Event) []string {
			if u := updateOf(e); u != nil {
				return u.keys
			}
			return nil
		})
	}
	return &mercureFace{
		h: h, o: o, cache: mercure.NewCache(0), system: system, cors: cors, publish: pub,
		registry: newMercureRegistry(),
		peers:    newPeerClient(h.opts.PeerTLS),
	}, nil
}

// base returns the hub's URL for r: relative topics and URL patterns are
// resolved against it.
func (m *mercureFace) base(r *http.Request) string {
	if m.o.PublicURL != "" {
		return m.o.PublicURL
	}
	if o := m.h.selfOrigin(r); o != "" {
		return o + MercurePath
	}
	return "https://localhost" + MercurePath
}

// update is a Mercure update as the envelope in its event's data carries
// it: what the Mercure face decodes once per event.
type update struct {
	Topics  []string `json:"t"`
	Private bool     `json:"p,omitempty"`
	ID      string   `json:"i"`
	Type    string   `json:"y,omitempty"`
	Retry   string   `json:"r,omitempty"`
	Data    string   `json:"d"`

	frame []byte   // the SSE encoding every Mercure subscriber shares
	keys  []string // the index keys of its topics (mercure.TopicKeys)
}

// decodeUpdate is the broker.Event.Decoded function of Mercure events: a
// *update, or nil for an event that is not one.
func decodeUpdate(e *broker.Event) any {
	if e.Channel != mercureChannel {
		return (*update)(nil)
	}
	u := new(update)
	if err := json.Unmarshal(e.Data, u); err != nil || len(u.Topics) == 0 || u.ID == "" {
		return (*update)(nil)
	}
	u.frame = u.appendFrame(make([]byte, 0, len(u.Data)+len(u.ID)+len(u.Type)+32))
	u.Data = "" // the frame holds it: one copy per node, not two
	for _, t := range u.Topics {
		u.keys = mercure.TopicKeys(u.keys, t)
	}
	return u
}

// encode returns the envelope: compact JSON, without the HTML escapes
// json.Marshal adds (they would grow data full of <, > and &).
func (u *update) encode() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(u); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// updateOf returns e's update, nil if e is not one.
func updateOf(e *broker.Event) *update {
	u, _ := e.Decoded(decodeUpdate).(*update)
	return u
}

// appendFrame appends the update's SSE event: id, event, retry and one
// data line per line of data. The publish path has refused line breaks
// in the id, type and retry.
func (u *update) appendFrame(b []byte) []byte {
	b = append(b, "id: "...)
	b = append(b, u.ID...)
	b = append(b, '\n')
	if u.Type != "" {
		b = append(b, "event: "...)
		b = append(b, u.Type...)
		b = append(b, '\n')
	}
	if u.Retry != "" {
		b = append(b, "retry: "...)
		b = append(b, u.Retry...)
		b = append(b, '\n')
	}
	data := u.Data
	for {
		i := strings.IndexAny(data, "\r\n")
		if i < 0 {
			break
		}
		b = append(b, "data: "...)
		b = append(b, data[:i]...)
		b = append(b, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	b = append(b, "data: "...)
	b = append(b, data...)
	return append(b, '\n', '\n')
}

// newUUID returns a random (version 4) UUID as an urn:uuid: IRI: the ids
// the hub makes, as the reference hub makes them.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 45)
	out = append(out, "urn:uuid:"...)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[c>>4], hex[c&0xf])
	}
	return string(out)
}

// mercureError is a refused Mercure request. Code is the RFC 6750 error
// code ("" for a request without a token that needs one: the challenge
// then carries none, as 1.0 demands).
type mercureError struct {
	status int
	code   string // invalid_request, invalid_token, insufficient_scope or ""
	reason string // for rumor_auth_failures_total; "" for a request error
	msg    string
}

func (e *mercureError) Error() string { return e.msg }

func mercureBadRequest(format string, args ...any) *mercureError {
	return &mercureError{status: http.StatusBadRequest, code: "invalid_request", msg: fmt.Sprintf(format, args...)}
}

func invalidToken(reason, format string, args ...any) *mercureError {
	return &mercureError{status: http.StatusUnauthorized, code: "invalid_token", reason: reason, msg: fmt.Sprintf(format, args...)}
}

func insufficientScope(format string, args ...any) *mercureError {
	return &mercureError{status: http.StatusForbidden, code: "insufficient_scope", reason: auth.ReasonForbidden, msg: fmt.Sprintf(format, args...)}
}

func noToken(msg string) *mercureError {
	return &mercureError{status: http.StatusUnauthorized, reason: auth.ReasonMissing, msg: msg}
}

// resourceMetadataPath is where the hub's OAuth 2.0 Protected Resource
// Metadata (RFC 9728) is served, derived from MercurePath as 1.0 says.
const resourceMetadataPath = "/.well-known/oauth-protected-resource" + MercurePath

// handleResourceMetadata serves GET
// /.well-known/oauth-protected-resource/.well-known/mercure: what a 1.0
// client needs to get a token for this hub.
func (m *mercureFace) handleResourceMetadata(w http.ResponseWriter, r *http.Request) {
	md := struct {
		Resource       string   `json:"resource"`
		Servers        []string `json:"authorization_servers,omitempty"`
		Methods        []string `json:"bearer_methods_supported"`
		Cookie         bool     `json:"mercure_cookie"`
		MercureVersion int      `json:"mercure_version"`
	}{Resource: m.o.Audience, Methods: []string{"header", "query"}, Cookie: true, MercureVersion: 8}
	if md.Resource == "" {
		md.Resource = m.base(r)
	}
	if m.o.Issuer != "" {
		md.Servers = []string{m.o.Issuer}
	}
	writeJSON(w, http.StatusOK, md)
}

// refuse answers e: rumor's JSON error body, and for 401 and 403 (and a
// 400 about a token) the WWW-Authenticate challenge of RFC 6750.
func (m *mercureFace) refuse(w http.ResponseWriter, r *http.Request, e *mercureError) {
	if e.reason != "" {
		m.h.sec.authFailures.WithLabelValues(e.reason).Inc()
	}
	if e.status == http.StatusUnauthorized || e.status == http.StatusForbidden || e.reason != "" {
		challenge := `Bearer realm="mercure"`
		if e.code != "" {
			challenge += `, error="` + e.code + `", error_description="` + quotable(e.msg) + `"`
		} else if m.o.AccessTokens && r != nil {
			// No token: say where a 1.0 client learns how to get one.
			challenge += `, resource_metadata="` + quotable(m.metadataURL(r)) + `"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	writeJSON(w, e.status, errorBody{Error: e.msg, Reason: e.reason})
}

// metadataURL is the absolute URL of the resource metadata for r.
func (m *mercureFace) metadataURL(r *http.Request) string {
	base := m.base(r)
	return strings.TrimSuffix(base, MercurePath) + resourceMetadataPath
}

// Where a request's token came from.
const (
	viaHeader = "header"
	viaQuery  = "query"
	viaCookie = "cookie"
)

// token finds a request's token: the Authorization header, else the
// access_token (1.0) or authorization (0.x) query parameter, else the
// configured cookie, then 1.0's cookies. The first found is the one used;
// the others are ignored, as the specification orders.
func (m *mercureFace) token(r *http.Request) (raw, via string, err *mercureError) {
	if hv := r.Header.Values("Authorization"); len(hv) > 0 {
		scheme, tok, ok := strings.Cut(strings.TrimSpace(hv[0]), " ")
		if len(hv) > 1 || !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", "", &mercureError{status: http.StatusBadRequest, code: "invalid_request", reason: auth.ReasonInvalid,
				msg: "Authorization: want one header, Bearer TOKEN"}
		}
		return strings.TrimSpace(tok), viaHeader, nil
	}
	q := r.URL.Query()
	for _, name := range []string{"access_token", "authorization"} {
		if q.Has(name) {
			return q.Get(name), viaQuery, nil
		}
	}
	for _, name := range append([]string{m.o.Cookie}, mercureCookies...) {
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			return c.Value, viaCookie, nil
		}
	}
	return "", "", nil
}

// credential is a verified Mercure token.
type credential struct {
	tok    *auth.Token
	grants *mercure.Grants
	raw    string // forwarded to peers by the subscriptions API
}

// tokenClaims are the claims the Mercure face reads beyond the registered ones.
type tokenClaims struct {
	Mercure json.RawMessage `json:"mercure"`
	Details json.RawMessage `json:"authorization_details"`
}

// verify checks raw with a (the publisher's or the subscriber's keys) and
// reads its grants, by its form: a 1.0 access token (typ at+jwt) or a 0.x
// token with a `mercure` claim, each if accepted.
func (m *mercureFace) verify(a *auth.Authenticator, role, raw, base string) (*credential, *mercureError) {
	if a == nil {
		return nil, invalidToken(auth.ReasonInvalid, "no %s key is configured: %s tokens cannot be verified", role, role)
	}
	tok, aerr := a.VerifyToken(raw, false)
	if aerr != nil {
		return nil, invalidToken(aerr.Reason, "%s", aerr.Msg)
	}
	var c tokenClaims
	if err := json.Unmarshal(tok.Claims, &c); err != nil {
		return nil, invalidToken(auth.ReasonInvalid, "token claims: %v", err)
	}
	cred := &credential{tok: tok, raw: raw}
	typ := strings.ToLower(tok.Type)
	var err error
	switch {
	case typ == "at+jwt" || typ == "application/at+jwt":
		if !m.o.AccessTokens {
			return nil, invalidToken(auth.ReasonInvalid, "1.0 access tokens (typ at+jwt) are not accepted here")
		}
		if tok.Expires.IsZero() {
			return nil, invalidToken(auth.ReasonInvalid, "token has no exp claim")
		}
		if m.o.Audience == "" {
			return nil, invalidToken(auth.ReasonInvalid, "this hub has no resource identifier configured: 1.0 access tokens cannot be checked")
		}
		if !containsString(tok.Audience, m.o.Audience) {
			return nil, invalidToken(auth.ReasonInvalid, "token audience not accepted")
		}
		if m.o.Issuer != "" && tok.Issuer != m.o.Issuer {
			return nil, invalidToken(auth.ReasonInvalid, "token issuer not accepted")
		}
		cred.grants, err = mercure.ParseAuthorizationDetails(c.Details, base, m.cache)
	case len(c.Mercure) == 0 && len(c.Details) > 0:
		return nil, invalidToken(auth.ReasonInvalid, "a token with authorization_details must be a 1.0 access token: typ at+jwt")
	default:
		if !m.o.Claims {
			return nil, invalidToken(auth.ReasonInvalid, "0.x tokens (a mercure claim) are not accepted here: use a 1.0 access token")
		}
		if m.o.RequireExp && tok.Expires.IsZero() {
			return nil, invalidToken(auth.ReasonInvalid, "token has no exp claim")
		}
		cred.grants, err = mercure.ParseClaim(c.Mercure, base, m.cache)
	}
	if err != nil {
		return nil, invalidToken(auth.ReasonInvalid, "token: %v", err)
	}
	return cred, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// preflight answers a CORS preflight for the Mercure routes, or reports
// that r is not one. Subscribers' origins (CORSOrigins) and publishers'
// (PublishOrigins) may both call.
func (m *mercureFace) applyCORS(w http.ResponseWriter, r *http.Request) (answered bool) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	hd := w.Header()
	hd.Add("Vary", "Origin")
	ok, creds := m.cors.allow(origin)
	if pok, pcreds := m.publish.allow(origin); pok {
		ok, creds = true, creds || pcreds
	}
	if !ok {
		return false
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
		hd.Set("Access-Control-Allow-Methods", "GET, POST")
		hd.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID, Cache-Control")
		hd.Set("Access-Control-Max-Age", corsMaxAge)
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	hd.Set("Access-Control-Expose-Headers", "Last-Event-ID, WWW-Authenticate, Retry-After")
	return false
}

// middleware adds the Mercure face's CORS headers and answers its
// preflights; rumor's own CORS (Options.CORSOrigins) does not apply here.
func (m *mercureFace) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.applyCORS(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// publishOrigin reports whether a POST carrying the cookie's token comes
// from a page allowed to publish: its Origin (or, without one, its
// Referer's origin) is this hub's own or one of PublishOrigins. Browsers
// send cookies with cross-site POSTs that SameSite does not stop; this is
// the check the specification asks for against forged requests.
func (m *mercureFace) publishOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		ref, err := url.Parse(r.Header.Get("Referer"))
		if err != nil || ref.Scheme == "" || ref.Host == "" {
			return false
		}
		origin = ref.Scheme + "://" + ref.Host
	}
	if m.publish.any {
		return true
	}
	o, err := CanonicalOrigin(origin)
	if err != nil {
		return false
	}
	return o == m.h.selfOrigin(r) || m.publish.origins[o]
}

// expires is when a stream opened with c must end: its exp; zero when it
// has none (a 0.x token without exp) or there is no token.
func (c *credential) expires() time.Time {
	if c == nil {
		return time.Time{}
	}
	return c.tok.Expires
}
