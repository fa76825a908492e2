package auth

// Verification of tokens: where a request carries one, what makes it good,
// and what a refusal says.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rumorhq/rumor/broker"
)

// DefaultCookie is the cookie a browser's token travels in unless
// Config.Cookie names another.
const DefaultCookie = "rumor_token"

// Bounds on what a token may cost before its signature is checked.
const (
	maxTokenLen  = 8 << 10 // bytes in a token
	maxGrants    = 256     // patterns per grant list
	minHMACBytes = 32      // HS256 secrets shorter than the hash are guessable
	minRSABits   = 2048
)

// Config configures token authentication. Exactly one key source is
// set: HMACSecret, PublicKeyPEM or JWKS, which never change, or one of the
// files or the URL, which are watched for rotation (keys.go).
type Config struct {
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

	Cookie     string   // cookie that may carry the token; "" means DefaultCookie
	QueryToken bool     // also accept ?token=; off by default because URLs end up in logs
	Public     []string // channel patterns anyone may subscribe to without a token

	Revocations *Revocations // tokens refused before their exp; nil means none

	Now func() time.Time // nil means time.Now; tests move the clock with it (it also schedules key checks)
}

// Authenticator verifies tokens and checks their grants. Build it with
// New and hand it to the HTTP face (web.Options.Auth); it is safe for
// concurrent use. Its only state is its keys, which it renews from a key file or a
// JWKS URL on the path of the requests that verify tokens (keys.go): it
// starts no goroutine, so there is nothing to stop.
type Authenticator struct {
	keys       *keyring
	parserOpts []jwt.ParserOption // every check but the algorithms, which come with the keys
	laxOpts    []jwt.ParserOption // the checks of VerifyToken: no required exp, aud or iss
	cookie     string
	query      bool
	leeway     time.Duration
	public     []broker.Pattern
	revoked    *Revocations
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

// New checks c and returns its Authenticator. The error names
// every problem at once. Key files are read here; a JWKS URL is not
// fetched (call Reload to fetch it at start).
func New(c Config) (*Authenticator, error) {
	var errs []error
	a := &Authenticator{cookie: c.Cookie, query: c.QueryToken, leeway: c.Leeway, revoked: c.Revocations, now: c.Now}
	if a.cookie == "" {
		a.cookie = DefaultCookie
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
	a.laxOpts = []jwt.ParserOption{
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
	lax := append([]jwt.ParserOption{jwt.WithValidMethods(allowed)}, a.laxOpts...)
	return &keyState{parser: jwt.NewParser(opts...), lax: jwt.NewParser(lax...), keyfunc: keyfunc, methods: allowed, jwks: set}
}

// Leeway returns the clock skew tolerated on exp and nbf.
func (a *Authenticator) Leeway() time.Duration { return a.leeway }

// Methods returns the signing algorithms tokens may use: HS256, RS256,
// ES256 or EdDSA, as the configured keys allow.
// They change when the keys are rotated.
func (a *Authenticator) Methods() []string {
	return append([]string(nil), a.keys.current().methods...)
}

// Claims are the claims rumor reads from a token.
type Claims struct {
	jwt.RegisteredClaims
	Rumor Grants `json:"rumor"`
}

// UnmarshalJSON reads the claims, refusing exp, nbf and iat that are not
// RFC 7519 NumericDates (JSON numbers): the jwt library would take a
// number in a string too, which no conforming issuer writes.
func (c *Claims) UnmarshalJSON(b []byte) error {
	var dates struct {
		Exp json.RawMessage `json:"exp"`
		Nbf json.RawMessage `json:"nbf"`
		Iat json.RawMessage `json:"iat"`
	}
	if err := json.Unmarshal(b, &dates); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		v    json.RawMessage
	}{{"exp", dates.Exp}, {"nbf", dates.Nbf}, {"iat", dates.Iat}} {
		if len(d.v) > 0 && !isJSONNumber(d.v) {
			return claimTypeError(d.name)
		}
	}
	type plain Claims // without this method
	return json.Unmarshal(b, (*plain)(c))
}

// isJSONNumber reports whether v, a valid JSON value, is a number (null
// counts as absent).
func isJSONNumber(v json.RawMessage) bool {
	c := v[0]
	return c == '-' || c >= '0' && c <= '9' || string(v) == "null"
}

// claimTypeError is a registered claim of the wrong JSON type.
type claimTypeError string

func (e claimTypeError) Error() string {
	return "token " + string(e) + " must be a NumericDate (a JSON number of seconds)"
}

// Principal is who a request proved to be: the checked claims of its token.
type Principal struct {
	Subject   string           // the token's sub; "" when it has none
	ID        string           // the token's jti; "" when it has none
	IssuedAt  time.Time        // the token's iat; zero when it has none
	Admin     bool             // the token may use the admin API (grant "admin": true)
	Expires   time.Time        // the token's exp plus the leeway: it is good until then, not after
	Publish   []broker.Pattern // channels it may publish to
	Subscribe []broker.Pattern // channels it may subscribe to
	Presence  []broker.Pattern // channels whose subscribers' subjects it may see
	Via       string           // where the token came from: header, cookie or query
	LimitKey  string           // the publish rate limit's key: its subject, or a hash of the token without one
}

// Error is a refused request: 401 (no or a bad token) or 403 (a good
// token without the grant). Msg says why in words a client may read: it
// never echoes the token. Functions return *Error, not error, so that a
// nil one is a nil interface only where the caller converts it.
type Error struct {
	Status int    // http.StatusUnauthorized or http.StatusForbidden
	Reason string // one of the Reason constants; labels rumor_auth_failures_total
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// Why requests are refused, for rumor_auth_failures_total.
const (
	ReasonMissing   = "missing"   // no token where one is needed
	ReasonInvalid   = "invalid"   // malformed, bad signature, wrong algorithm, audience or issuer, bad grants
	ReasonExpired   = "expired"   // expired or not yet valid
	ReasonForbidden = "forbidden" // a good token without the grant, or a cookie from a foreign origin
	ReasonRevoked   = "revoked"   // a good token revoked by an admin (Revocations)
)

func unauthorized(reason, format string, args ...any) *Error {
	return &Error{Status: http.StatusUnauthorized, Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) *Error {
	return &Error{Status: http.StatusForbidden, Reason: ReasonForbidden, Msg: fmt.Sprintf(format, args...)}
}

// Authenticate finds the request's token (Authorization header, then the
// cookie, then ?token= when enabled) and checks it. It returns nil and no
// error for a request without a token: whether it needs one depends on
// what it asks for.
func (a *Authenticator) Authenticate(r *http.Request) (*Principal, *Error) {
	raw, via, aerr := a.token(r)
	if aerr != nil || raw == "" {
		return nil, aerr
	}
	p, err := a.Verify(raw)
	if err != nil {
		return nil, err
	}
	p.Via = via
	return p, nil
}

// token extracts the raw token and where it came from.
func (a *Authenticator) token(r *http.Request) (raw, via string, err *Error) {
	if hv := r.Header.Values("Authorization"); len(hv) > 0 {
		if len(hv) > 1 {
			return "", "", unauthorized(ReasonInvalid, "more than one Authorization header")
		}
		scheme, tok, ok := strings.Cut(strings.TrimSpace(hv[0]), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", "", unauthorized(ReasonInvalid, "Authorization: want Bearer TOKEN")
		}
		return strings.TrimSpace(tok), "header", nil
	}
	if c, err := r.Cookie(a.cookie); err == nil && c.Value != "" {
		return c.Value, "cookie", nil
	}
	if q := r.URL.Query(); q.Has("token") {
		if !a.query {
			return "", "", unauthorized(ReasonInvalid, "tokens in the URL are disabled (they end up in logs): send Authorization: Bearer TOKEN or the %s cookie", a.cookie)
		}
		return q.Get("token"), "query", nil
	}
	return "", "", nil
}

// Verify checks a raw token: algorithm, signature, exp, nbf, aud, iss and
// the grants' syntax.
func (a *Authenticator) Verify(raw string) (*Principal, *Error) {
	if len(raw) > maxTokenLen {
		return nil, unauthorized(ReasonInvalid, "token longer than %d bytes", maxTokenLen)
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
	p := &Principal{Subject: c.Subject, ID: c.ID, Expires: c.ExpiresAt.Add(a.leeway), Admin: c.Rumor.Admin}
	if c.IssuedAt != nil {
		p.IssuedAt = c.IssuedAt.Time
	}
	var err error
	if p.Publish, err = parseGrants("publish", c.Rumor.Publish); err != nil {
		return nil, unauthorized(ReasonInvalid, "token: %v", err)
	}
	if p.Subscribe, err = parseGrants("subscribe", c.Rumor.Subscribe); err != nil {
		return nil, unauthorized(ReasonInvalid, "token: %v", err)
	}
	if p.Presence, err = parseGrants("presence", c.Rumor.Presence); err != nil {
		return nil, unauthorized(ReasonInvalid, "token: %v", err)
	}
	if err := a.revoked.Check(p); err != nil {
		return nil, err
	}
	if p.Subject != "" {
		p.LimitKey = "sub:" + p.Subject
	} else {
		sum := sha256.Sum256([]byte(raw))
		p.LimitKey = "tok:" + hex.EncodeToString(sum[:12])
	}
	return p, nil
}

// tokenError says what is wrong with a token without echoing it; methods
// are the algorithms the keys allow.
func tokenError(t *jwt.Token, err error, methods []string) *Error {
	var kerr keyError
	var cerr claimTypeError
	switch {
	case errors.As(err, &cerr):
		return unauthorized(ReasonInvalid, "%s", cerr.Error())
	case errors.Is(err, jwt.ErrTokenMalformed):
		return unauthorized(ReasonInvalid, "malformed token")
	case t != nil && len(methods) == 0:
		return unauthorized(ReasonInvalid, "no keys to verify tokens with yet: the JWKS could not be fetched")
	case t != nil && !slices.Contains(methods, fmt.Sprint(t.Header["alg"])):
		// "none", an algorithm of another key kind (HS256 against a public
		// key), or one rumor does not know.
		return unauthorized(ReasonInvalid, "token algorithm %q not accepted: want %s", clip(fmt.Sprint(t.Header["alg"])), strings.Join(methods, " or "))
	case errors.As(err, &kerr):
		return unauthorized(ReasonInvalid, "token: %s", kerr.msg)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return unauthorized(ReasonInvalid, "token signature invalid")
	case errors.Is(err, jwt.ErrTokenExpired):
		return unauthorized(ReasonExpired, "token expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return unauthorized(ReasonExpired, "token not valid yet")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		for _, claim := range []string{"exp", "aud", "iss"} {
			if strings.Contains(err.Error(), claim+" claim is required") {
				return unauthorized(ReasonInvalid, "token has no %s claim", claim)
			}
		}
		return unauthorized(ReasonInvalid, "token lacks a required claim")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return unauthorized(ReasonInvalid, "token audience not accepted")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return unauthorized(ReasonInvalid, "token issuer not accepted")
	default:
		return unauthorized(ReasonInvalid, "invalid token")
	}
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

// clip keeps echoes of hostile input short.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
