package web

// Authentication and authorization of publishers and subscribers with JSON
// Web Tokens. A token's "rumor" claim grants channel patterns:
//
//	{"sub": "checkout", "exp": 1767225600,
//	 "rumor": {"publish": ["orders.>"], "subscribe": ["orders.*", "news"]}}
//
// Publishing to a channel needs a publish grant that matches it; a stream
// may subscribe to a pattern only if one subscribe grant (or one public
// pattern) covers every channel the pattern can match. docs/AUTH.md is the
// user's guide.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rumorhq/rumor/broker"
)

// DefaultAuthCookie is the cookie a browser's token travels in unless
// AuthConfig.Cookie names another.
const DefaultAuthCookie = "rumor_token"

// Bounds on what a token may cost before its signature is checked.
const (
	maxTokenLen  = 8 << 10 // bytes in a token
	maxGrants    = 256     // patterns per grant list
	minHMACBytes = 32      // HS256 secrets shorter than the hash are guessable
	minRSABits   = 2048
)

// AuthConfig configures token authentication. Exactly one key source is
// set: HMACSecret, PublicKeyPEM or JWKS, which never change, or one of the
// files or the URL, which are watched for rotation (keys.go).
type AuthConfig struct {
	HMACSecret   []byte // HS256 shared secret, at least 32 bytes
	PublicKeyPEM []byte // one PEM public key: RSA (RS256, 2048 bits or more), ECDSA P-256 (ES256) or Ed25519 (EdDSA)
	JWKS         []byte // a JSON Web Key Set of RSA, EC P-256 and Ed25519 keys, chosen by the token's kid

	HMACSecretFile string // a file holding the HS256 secret (its text, a trailing newline removed); read again when it changes
	PublicKeyFile  string // a file holding PublicKeyPEM; read again when it changes
	JWKSFile       string // a file holding a JWKS; read again when it changes
	JWKSURL        string // https URL (http only on loopback) of a JWKS: fetched by Reload or the first token, every JWKSRefresh, and at once for a token with an unknown kid

	FileCheck      time.Duration // how often a key file is checked for a change, on the path of a token's verification; 0 means 5s
	JWKSRefresh    time.Duration // how often JWKSURL is fetched again; 0 means 5m
	JWKSMinRefetch time.Duration // least time between fetches caused by unknown kids, so that made-up tokens cannot make rumor hammer the identity provider; 0 means 30s
	HTTPClient     *http.Client  // fetches JWKSURL; nil means one with a 10s timeout
	Logger         *slog.Logger  // key reloads and failed ones; nil means discard

	Audience string        // when set, the token's aud must contain it
	Issuer   string        // when set, the token's iss must equal it
	Leeway   time.Duration // clock skew tolerated on exp and nbf; 0 means none

	Cookie     string   // cookie that may carry the token; "" means DefaultAuthCookie
	QueryToken bool     // also accept ?token=; off by default because URLs end up in logs
	Public     []string // channel patterns anyone may subscribe to without a token

	Now func() time.Time // nil means time.Now; tests move the clock with it (it also schedules key checks)
}

// Authenticator verifies tokens and checks their grants. Build it with
// NewAuthenticator and hand it to Options.Auth; it is safe for concurrent
// use. Its only state is its keys, which it renews from a key file or a
// JWKS URL on the path of the requests that verify tokens (keys.go): it
// starts no goroutine, so there is nothing to stop.
type Authenticator struct {
	keys       *keyring
	parserOpts []jwt.ParserOption // every check but the algorithms, which come with the keys
	cookie     string
	query      bool
	leeway     time.Duration
	public     []broker.Pattern
	now        func() time.Time
}

// Close stops a JWKS fetch running in the background and waits for it.
// The Authenticator still verifies tokens with the keys it has. Safe to
// call more than once.
func (a *Authenticator) Close() {
	if a != nil && a.keys != nil {
		a.keys.close()
	}
}

// NewAuthenticator checks c and returns its Authenticator. The error names
// every problem at once. Key files are read here; a JWKS URL is not
// fetched (call Reload to fetch it at start).
func NewAuthenticator(c AuthConfig) (*Authenticator, error) {
	var errs []error
	a := &Authenticator{cookie: c.Cookie, query: c.QueryToken, leeway: c.Leeway, now: c.Now}
	if a.cookie == "" {
		a.cookie = DefaultAuthCookie
	}
	if a.now == nil {
		a.now = time.Now
	}
	if !validCookieName(a.cookie) {
		errs = append(errs, fmt.Errorf("auth cookie %q: not a valid cookie name", a.cookie))
	}
	a.parserOpts = []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithStrictDecoding(),
		jwt.WithLeeway(c.Leeway),
		jwt.WithTimeFunc(func() time.Time { return a.now() }),
	}
	if c.Audience != "" {
		a.parserOpts = append(a.parserOpts, jwt.WithAudience(c.Audience))
	}
	if c.Issuer != "" {
		a.parserOpts = append(a.parserOpts, jwt.WithIssuer(c.Issuer))
	}
	keys, err := a.newKeyring(c)
	if err != nil {
		errs = append(errs, err)
	}
	a.keys = keys
	for _, s := range c.Public {
		p, err := broker.ParsePattern(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("public channels: %w", err))
			continue
		}
		a.public = append(a.public, p)
	}
	if c.Leeway < 0 {
		errs = append(errs, errors.New("auth leeway must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return a, nil
}

// hmacKeys, publicKeys and jwksKeys turn key material into a generation of
// keys. The parser of each allows exactly the algorithms of its keys:
// "none", and a token signed with HS256 using an RSA public key as the
// secret, are refused before any key is used.
func (a *Authenticator) hmacKeys(secret []byte) (*keyState, error) {
	if len(secret) < minHMACBytes {
		return nil, fmt.Errorf("auth HMAC secret: %d bytes, want at least %d", len(secret), minHMACBytes)
	}
	secret = append([]byte(nil), secret...)
	return a.keyState([]string{jwt.SigningMethodHS256.Alg()}, func(*jwt.Token) (any, error) { return secret, nil }, nil), nil
}

func (a *Authenticator) publicKeys(pemBytes []byte) (*keyState, error) {
	key, alg, err := ParsePublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("auth public key: %w", err)
	}
	return a.keyState([]string{alg}, func(*jwt.Token) (any, error) { return key, nil }, nil), nil
}

// jwksKeys parses a JWKS. With rotating (a URL), the parser lets every
// asymmetric algorithm through to the key lookup, so that a token signed
// by a new key of another kind reaches the fetch of its kid; the lookup
// still insists that the token's algorithm is its key's.
func (a *Authenticator) jwksKeys(b []byte, rotating bool) (*keyState, error) {
	set, err := ParseJWKS(b)
	if err != nil {
		return nil, fmt.Errorf("auth JWKS: %w", err)
	}
	return a.jwksState(set, rotating), nil
}

func (a *Authenticator) jwksState(set *JWKS, rotating bool) *keyState {
	allowed := set.algorithms()
	if rotating {
		allowed = asymmetric
	}
	st := a.keyState(allowed, a.jwksKeyfunc, set)
	st.methods = set.algorithms()
	return st
}

// asymmetric are the algorithms a JWKS key may have.
var asymmetric = []string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg(), jwt.SigningMethodEdDSA.Alg()}

func (a *Authenticator) keyState(allowed []string, keyfunc jwt.Keyfunc, set *JWKS) *keyState {
	opts := append([]jwt.ParserOption{jwt.WithValidMethods(allowed)}, a.parserOpts...)
	return &keyState{parser: jwt.NewParser(opts...), keyfunc: keyfunc, methods: allowed, jwks: set}
}

// Methods returns the signing algorithms tokens may use: HS256, RS256,
// ES256 or EdDSA, as the configured keys allow.
// They change when the keys are rotated.
func (a *Authenticator) Methods() []string {
	return append([]string(nil), a.keys.current().methods...)
}

// Grants is the "rumor" claim of a token: channel patterns it may publish
// to and subscribe to.
type Grants struct {
	Publish   []string `json:"publish,omitempty"`
	Subscribe []string `json:"subscribe,omitempty"`
}

// Claims are the claims rumor reads from a token.
type Claims struct {
	jwt.RegisteredClaims
	Rumor Grants `json:"rumor"`
}

// principal is who a request proved to be: the checked claims of its token.
type principal struct {
	subject   string
	expires   time.Time
	publish   []broker.Pattern
	subscribe []broker.Pattern
	via       string // where the token came from: header, cookie or query
	limitKey  string // the publish rate limit's key for this token
}

// authError is a refused request: 401 (no or a bad token) or 403 (a good
// token without the grant). reason labels rumor_auth_failures_total.
type authError struct {
	status int
	reason string
	msg    string
}

func (e *authError) Error() string { return e.msg }

// Why requests are refused, for rumor_auth_failures_total.
const (
	authMissing   = "missing"   // no token where one is needed
	authInvalid   = "invalid"   // malformed, bad signature, wrong algorithm, audience or issuer, bad grants
	authExpired   = "expired"   // expired or not yet valid
	authForbidden = "forbidden" // a good token without the grant, or a cookie from a foreign origin
)

func unauthorized(reason, format string, args ...any) *authError {
	return &authError{status: http.StatusUnauthorized, reason: reason, msg: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) *authError {
	return &authError{status: http.StatusForbidden, reason: authForbidden, msg: fmt.Sprintf(format, args...)}
}

// authenticate finds the request's token (Authorization header, then the
// cookie, then ?token= when enabled) and checks it. It returns nil and no
// error for a request without a token: whether it needs one depends on
// what it asks for.
func (a *Authenticator) authenticate(r *http.Request) (*principal, *authError) {
	raw, via, aerr := a.token(r)
	if aerr != nil || raw == "" {
		return nil, aerr
	}
	p, err := a.verify(raw)
	if err != nil {
		return nil, err
	}
	p.via = via
	return p, nil
}

// token extracts the raw token and where it came from.
func (a *Authenticator) token(r *http.Request) (raw, via string, err *authError) {
	if hv := r.Header.Values("Authorization"); len(hv) > 0 {
		if len(hv) > 1 {
			return "", "", unauthorized(authInvalid, "more than one Authorization header")
		}
		scheme, tok, ok := strings.Cut(strings.TrimSpace(hv[0]), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", "", unauthorized(authInvalid, "Authorization: want Bearer TOKEN")
		}
		return strings.TrimSpace(tok), "header", nil
	}
	if c, err := r.Cookie(a.cookie); err == nil && c.Value != "" {
		return c.Value, "cookie", nil
	}
	if q := r.URL.Query(); q.Has("token") {
		if !a.query {
			return "", "", unauthorized(authInvalid, "tokens in the URL are disabled (they end up in logs): send Authorization: Bearer TOKEN or the %s cookie", a.cookie)
		}
		return q.Get("token"), "query", nil
	}
	return "", "", nil
}

// verify checks a raw token: algorithm, signature, exp, nbf, aud, iss and
// the grants' syntax.
func (a *Authenticator) verify(raw string) (*principal, *authError) {
	if len(raw) > maxTokenLen {
		return nil, unauthorized(authInvalid, "token longer than %d bytes", maxTokenLen)
	}
	a.keys.renew()
	keys := a.keys.current()
	var c Claims
	if t, err := keys.parser.ParseWithClaims(raw, &c, keys.keyfunc); err != nil {
		// The keys of now: an unknown kid may have fetched new ones.
		return nil, tokenError(t, err, a.keys.current().methods)
	}
	// The token is good until exp plus the leeway: a stream ends then, not
	// earlier, or its client would come back with the same token and be let in.
	p := &principal{subject: c.Subject, expires: c.ExpiresAt.Add(a.leeway)}
	var err error
	if p.publish, err = parseGrants("publish", c.Rumor.Publish); err != nil {
		return nil, unauthorized(authInvalid, "token: %v", err)
	}
	if p.subscribe, err = parseGrants("subscribe", c.Rumor.Subscribe); err != nil {
		return nil, unauthorized(authInvalid, "token: %v", err)
	}
	if p.subject != "" {
		p.limitKey = "sub:" + p.subject
	} else {
		sum := sha256.Sum256([]byte(raw))
		p.limitKey = "tok:" + hex.EncodeToString(sum[:12])
	}
	return p, nil
}

// tokenError says what is wrong with a token without echoing it; methods
// are the algorithms the keys allow.
func tokenError(t *jwt.Token, err error, methods []string) *authError {
	var kerr keyError
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return unauthorized(authInvalid, "malformed token")
	case t != nil && len(methods) == 0:
		return unauthorized(authInvalid, "no keys to verify tokens with yet: the JWKS could not be fetched")
	case t != nil && !slices.Contains(methods, fmt.Sprint(t.Header["alg"])):
		// "none", an algorithm of another key kind (HS256 against a public
		// key), or one rumor does not know.
		return unauthorized(authInvalid, "token algorithm %q not accepted: want %s", clip(fmt.Sprint(t.Header["alg"])), strings.Join(methods, " or "))
	case errors.As(err, &kerr):
		return unauthorized(authInvalid, "token: %s", kerr.msg)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return unauthorized(authInvalid, "token signature invalid")
	case errors.Is(err, jwt.ErrTokenExpired):
		return unauthorized(authExpired, "token expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return unauthorized(authExpired, "token not valid yet")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		for _, claim := range []string{"exp", "aud", "iss"} {
			if strings.Contains(err.Error(), claim+" claim is required") {
				return unauthorized(authInvalid, "token has no %s claim", claim)
			}
		}
		return unauthorized(authInvalid, "token lacks a required claim")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return unauthorized(authInvalid, "token audience not accepted")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return unauthorized(authInvalid, "token issuer not accepted")
	default:
		return unauthorized(authInvalid, "invalid token")
	}
}

// parseGrants parses a grant list; a token whose issuer wrote an invalid
// pattern is refused rather than half understood.
func parseGrants(what string, list []string) ([]broker.Pattern, error) {
	if len(list) > maxGrants {
		return nil, fmt.Errorf("rumor.%s: more than %d patterns", what, maxGrants)
	}
	out := make([]broker.Pattern, 0, len(list))
	for i, s := range list {
		p, err := broker.ParsePattern(s)
		if err != nil {
			return nil, fmt.Errorf("rumor.%s[%d]: %w", what, i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// canPublish reports whether p may publish to channel: a publish grant must
// match it. A nil p (no token) may not publish at all.
func (a *Authenticator) canPublish(p *principal, channel string) *authError {
	if p == nil {
		return unauthorized(authMissing, "a token is required to publish: send Authorization: Bearer TOKEN")
	}
	for _, g := range p.publish {
		if g.Match(channel) {
			return nil
		}
	}
	return forbidden("token does not grant publish to %q", clip(channel))
}

// canSubscribe reports whether p may subscribe to every pattern: each must
// be covered by a public pattern or by one of p's subscribe grants. A nil p
// (no token) gets 401 for a pattern no public pattern covers, so that the
// client knows to send one.
func (a *Authenticator) canSubscribe(p *principal, patterns []broker.Pattern) *authError {
	for _, want := range patterns {
		if coveredBy(a.public, want) {
			continue
		}
		if p == nil {
			return unauthorized(authMissing, "a token is required to subscribe to %q: send Authorization: Bearer TOKEN or the %s cookie", clip(want.String()), a.cookie)
		}
		if !coveredBy(p.subscribe, want) {
			return forbidden("token does not grant subscribe to %q", clip(want.String()))
		}
	}
	return nil
}

func coveredBy(grants []broker.Pattern, want broker.Pattern) bool {
	for _, g := range grants {
		if covers(g, want) {
			return true
		}
	}
	return false
}

// covers reports whether every channel that requested matches is also
// matched by grant: "orders.>" covers "orders.*", "orders.eu.>" and
// "orders.eu"; "orders.*" covers "orders.eu" but not "orders.>" (which
// matches "orders.eu.paid") nor "*.eu". Only whole-pattern containment by
// one grant counts: two grants that together cover a pattern do not.
func covers(grant, requested broker.Pattern) bool {
	g := strings.Split(grant.String(), ".")
	r := strings.Split(requested.String(), ".")
	for i, gt := range g {
		if gt == ">" {
			// One or more tokens, whatever they are: r has at least one
			// token left (a literal, '*' or '>', each matching one or more).
			return i < len(r)
		}
		if i >= len(r) {
			return false // r's channels are shorter than any grant matches
		}
		switch rt := r[i]; {
		case rt == ">":
			return false // r matches channels of this length and longer; g (no '>' here) does not match both
		case gt == "*":
			// any token r allows here is fine
		case rt == "*" || rt != gt:
			return false
		}
	}
	return len(r) == len(g)
}

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
		p, aerr := h.opts.Auth.authenticate(r)
		if aerr == nil && p != nil && p.via == "cookie" && !h.trustedOrigin(r) {
			aerr = forbidden("a token from a cookie may publish only from this origin or an allowed CORS origin: send Authorization: Bearer TOKEN")
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
func principalOf(r *http.Request) *principal {
	p, _ := r.Context().Value(principalKey{}).(*principal)
	return p
}

// authorizePublish checks that the request may publish to every channel.
// With auth off everyone may. A name that is not a channel is left to the
// validation that follows, so that it gets 400 whatever the token grants.
func (h *Handler) authorizePublish(r *http.Request, channels ...string) *authError {
	if h.opts.Auth == nil {
		return nil
	}
	p := principalOf(r)
	for _, c := range channels {
		if p != nil && broker.ValidateChannel(c) != nil {
			continue
		}
		if err := h.opts.Auth.canPublish(p, c); err != nil {
			return err
		}
	}
	return nil
}

// requireToken refuses a publish without a token when auth is on, before
// anything names a channel: POST /publish learns its channels only from
// its body, which a request without a token must not get to send.
func (h *Handler) requireToken(r *http.Request) *authError {
	if h.opts.Auth == nil || principalOf(r) != nil {
		return nil
	}
	return h.opts.Auth.canPublish(nil, "")
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
	sum := sha256.Sum256([]byte(p.limitKey))
	return hex.EncodeToString(sum[:8]) + "/" + key
}

// authorizeStream checks the request's token, if any, and that it may
// subscribe to every pattern; it returns when the token expires (zero
// without a token or auth). A cross-site GET can only open a stream whose
// answer its page cannot read unless CORS allows it, so cookies count here
// whatever the origin.
func (h *Handler) authorizeStream(r *http.Request, patterns []broker.Pattern) (expires time.Time, err *authError) {
	if h.opts.Auth == nil {
		return time.Time{}, nil
	}
	p, err := h.opts.Auth.authenticate(r)
	if err != nil {
		return time.Time{}, err
	}
	if err := h.opts.Auth.canSubscribe(p, patterns); err != nil {
		return time.Time{}, err
	}
	if p == nil {
		return time.Time{}, nil
	}
	return p.expires, nil
}

// refuse answers 401 or 403 with a JSON error and the WWW-Authenticate
// header of RFC 6750, and counts it.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, e *authError) {
	h.sec.authFailures.WithLabelValues(e.reason).Inc()
	code := "invalid_token"
	switch {
	case e.status == http.StatusForbidden:
		code = "insufficient_scope"
	case e.reason == authMissing:
		code = "invalid_request"
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="rumor", error="`+code+`"`)
	writeError(w, e.status, e.msg)
}

// refusePublish is refuse for a publish, which rumor_publish_errors_total
// counts too.
func (h *Handler) refusePublish(w http.ResponseWriter, r *http.Request, e *authError) {
	reason := "unauthorized"
	if e.status == http.StatusForbidden {
		reason = "forbidden"
	}
	h.metrics.publishErrors.WithLabelValues(reason).Inc()
	skipBody(w, r) // a refused publisher's body is never read
	h.refuse(w, r, e)
}

// trustedOrigin reports whether a request's Origin is this server itself or
// a CORS origin allowed with credentials. A request without Origin is not
// trusted: every current browser sends one on a POST.
func (h *Handler) trustedOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	if u, err := url.Parse(origin); err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return h.cors.withCredentials(origin)
}

// validCookieName reports whether s is an RFC 6265 cookie name (a token).
func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// ParsePublicKey reads one PEM public key (PKIX "PUBLIC KEY", PKCS #1 "RSA
// PUBLIC KEY", or the public key of a "CERTIFICATE") and returns it with
// the one algorithm it verifies: RS256 for RSA of 2048 bits or more, ES256
// for ECDSA on P-256, EdDSA for Ed25519.
func ParsePublicKey(pemBytes []byte) (crypto.PublicKey, string, error) {
	block, rest := pem.Decode(pemBytes)
	if block == nil {
		return nil, "", errors.New("no PEM block")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, "", errors.New("more than one PEM block: want exactly one public key")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		return nil, "", fmt.Errorf("PEM block %q: want PUBLIC KEY (a private key does not belong here)", block.Type)
	}
	if err != nil {
		return nil, "", err
	}
	return checkKey(key)
}

// checkKey accepts the keys rumor verifies with and names their algorithm.
func checkKey(key any) (crypto.PublicKey, string, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, "", fmt.Errorf("RSA key of %d bits: want at least %d", k.N.BitLen(), minRSABits)
		}
		return k, jwt.SigningMethodRS256.Alg(), nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("ECDSA key on %s: want P-256 (ES256)", k.Curve.Params().Name)
		}
		return k, jwt.SigningMethodES256.Alg(), nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, "", fmt.Errorf("Ed25519 key of %d bytes", len(k))
		}
		return k, jwt.SigningMethodEdDSA.Alg(), nil
	default:
		return nil, "", fmt.Errorf("%T: want an RSA, ECDSA P-256 or Ed25519 public key", key)
	}
}

// JWKS is a parsed JSON Web Key Set: verification keys by kid.
type JWKS struct {
	keys map[string]jwksKey
}

type jwksKey struct {
	key crypto.PublicKey
	alg string // RS256, ES256 or EdDSA
}

// Len returns how many keys the set holds.
func (s *JWKS) Len() int { return len(s.keys) }

// jwk is one key of a JWKS, as RFC 7517 and 7518 write it.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// ParseJWKS parses a JSON Web Key Set. It keeps the signature keys it can
// verify with (RSA as RS256, EC P-256 as ES256, OKP Ed25519 as EdDSA) and
// skips encryption keys and other key types; symmetric ("oct") keys are
// never used, so a JWKS cannot turn an HS256 token into a valid one. Each
// kept key needs a distinct kid, unless it is the only one.
func ParseJWKS(b []byte) (*JWKS, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not a JWKS: %w", err)
	}
	s := &JWKS{keys: make(map[string]jwksKey)}
	for i, raw := range doc.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		key, alg, err := k.publicKey()
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i, clip(k.Kid), err)
		}
		if key == nil {
			continue // a key type rumor does not verify with
		}
		if _, dup := s.keys[k.Kid]; dup {
			return nil, fmt.Errorf("key %d: kid %q appears twice", i, clip(k.Kid))
		}
		s.keys[k.Kid] = jwksKey{key: key, alg: alg}
	}
	switch {
	case len(s.keys) == 0:
		return nil, errors.New("no RSA, EC P-256 or Ed25519 signature key")
	case len(s.keys) > 1:
		if _, ok := s.keys[""]; ok {
			return nil, errors.New("a key without kid among several: every key needs a kid")
		}
	}
	return s, nil
}

// publicKey returns the key and its algorithm, or nil for a key type rumor
// skips.
func (k jwk) publicKey() (crypto.PublicKey, string, error) {
	switch k.Kty {
	case "RSA":
		if k.Alg != "" && k.Alg != "RS256" {
			return nil, "", nil // another RSA algorithm: not ours to accept
		}
		n, err := b64uint(k.N)
		if err != nil {
			return nil, "", fmt.Errorf("n: %w", err)
		}
		e, err := b64uint(k.E)
		if err != nil {
			return nil, "", fmt.Errorf("e: %w", err)
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return nil, "", errors.New("e: not a usable RSA exponent")
		}
		return checkKey(&rsa.PublicKey{N: n, E: int(e.Int64())})
	case "EC":
		if k.Crv != "P-256" || k.Alg != "" && k.Alg != "ES256" {
			return nil, "", nil
		}
		x, err := b64fixed(k.X, 32)
		if err != nil {
			return nil, "", fmt.Errorf("x: %w", err)
		}
		y, err := b64fixed(k.Y, 32)
		if err != nil {
			return nil, "", fmt.Errorf("y: %w", err)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, "", err
		}
		return checkKey(pub)
	case "OKP":
		if k.Crv != "Ed25519" || k.Alg != "" && k.Alg != "EdDSA" && k.Alg != "Ed25519" {
			return nil, "", nil
		}
		x, err := b64fixed(k.X, ed25519.PublicKeySize)
		if err != nil {
			return nil, "", fmt.Errorf("x: %w", err)
		}
		return checkKey(ed25519.PublicKey(x))
	default:
		return nil, "", nil // "oct" (symmetric) and others
	}
}

func b64uint(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(b) == 0 {
		return nil, errors.New("not base64url")
	}
	return new(big.Int).SetBytes(b), nil
}

func b64fixed(s string, n int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(b) != n {
		return nil, fmt.Errorf("want %d bytes of base64url", n)
	}
	return b, nil
}

// algorithms returns the algorithms of the set's keys, each once.
func (s *JWKS) algorithms() []string {
	var out []string
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		for _, k := range s.keys {
			if k.alg == alg {
				out = append(out, alg)
				break
			}
		}
	}
	return out
}

// keyError is a token whose kid or algorithm fits no key.
type keyError struct{ msg string }

func (e keyError) Error() string { return e.msg }

// lookup picks the key by the token's kid and insists that the token's
// algorithm is the key's own: an RSA key never checks an ES256 token.
func (s *JWKS) lookup(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	k, ok := s.keys[kid]
	if !ok {
		if kid == "" {
			return nil, keyError{"token has no kid"}
		}
		return nil, keyError{fmt.Sprintf("no key with kid %q", clip(kid))}
	}
	if t.Method.Alg() != k.alg {
		return nil, keyError{fmt.Sprintf("algorithm %s does not fit key %q (%s)", clip(t.Method.Alg()), clip(kid), k.alg)}
	}
	return k.key, nil
}
