package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rumorhq/rumor/broker"
)

// testTimeout bounds every wait of a test.
const testTimeout = 10 * time.Second

// testSecret is the HS256 secret of the tests' authenticators.
const testSecret = "rumor-test-secret-0123456789abcdef"

func testdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func rsaKey(tb testing.TB, name string) *rsa.PrivateKey {
	tb.Helper()
	k, err := jwt.ParseRSAPrivateKeyFromPEM(testdata(tb, name))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func ecKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := jwt.ParseECPrivateKeyFromPEM(testdata(tb, "ec.key"))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// claims returns the claims of a token valid for ttl that grants publish
// and subscribe.
func claims(publish, subscribe []string, ttl time.Duration) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"sub":   "tester",
		"iat":   now.Unix(),
		"exp":   now.Add(ttl).Unix(),
		"rumor": map[string]any{"publish": publish, "subscribe": subscribe},
	}
	return c
}

// sign signs c with method and key; header entries are added (kid).
func sign(tb testing.TB, method jwt.SigningMethod, key any, c jwt.Claims, header map[string]any) string {
	tb.Helper()
	t := jwt.NewWithClaims(method, c)
	for k, v := range header {
		t.Header[k] = v
	}
	s, err := t.SignedString(key)
	if err != nil {
		tb.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

// hs256 is a token signed with testSecret.
func hs256(tb testing.TB, c jwt.Claims) string {
	tb.Helper()
	return sign(tb, jwt.SigningMethodHS256, []byte(testSecret), c, nil)
}

func newAuth(tb testing.TB, c Config) *Authenticator {
	tb.Helper()
	a, err := New(c)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(a.Close)
	return a
}

func pattern(tb testing.TB, s string) broker.Pattern {
	tb.Helper()
	p, err := broker.ParsePattern(s)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestCovers(t *testing.T) {
	tests := []struct {
		grant, want string
		ok          bool
	}{
		{"orders.>", "orders.*", true},
		{"orders.>", "orders.eu.>", true},
		{"orders.>", "orders.eu", true},
		{"orders.>", "orders.*.paid", true},
		{"orders.>", "orders.>", true},
		{"orders.>", "orders", false},
		{"orders.>", ">", false},
		{"orders.>", "*.eu", false},
		{"orders.*", "orders.eu", true},
		{"orders.*", "orders.*", true},
		{"orders.*", "orders.>", false},
		{"orders.*", "orders.eu.paid", false},
		{"orders.*", "orders", false},
		{"orders.*", "*.eu", false},
		{"orders.*", "*.*", false},
		{"news", "news", true},
		{"news", "news.>", false},
		{"news", "*", false},
		{"news", "newsroom", false},
		{">", ">", true},
		{">", "a.b.c", true},
		{">", "*", true},
		{"*", ">", false},
		{"*", "x", true},
		{"*.secret", "orders.secret", true},
		{"*.secret", "*.secret", true},
		{"*.secret", "*.*", false},
		{"*.*.>", "a.>", false},
		{"*.*.>", "a.b.>", true},
		{"a.*.c", "a.*.c", true},
		{"a.*.c", "a.b.*", false},
		{"a.*.>", "a.b.c", true},
		{"a.*.>", "a.b", false},
	}
	for _, tt := range tests {
		if got := covers(pattern(t, tt.grant), pattern(t, tt.want)); got != tt.ok {
			t.Errorf("covers(%q, %q) = %v, want %v", tt.grant, tt.want, got, tt.ok)
		}
	}
}

// coversOracle decides containment by brute force: every channel of up to
// one token longer than either pattern, made of the patterns' literal
// tokens and one token neither has, that requested matches must match
// grant too. Those channels include a witness whenever containment fails:
// a fresh token where requested has a wildcard and grant a literal, and
// every length that one side allows and the other does not.
func coversOracle(grant, requested broker.Pattern) bool {
	alphabet := []string{"zz9"}
	for _, s := range []string{grant.String(), requested.String()} {
		for tok := range strings.SplitSeq(s, ".") {
			if tok != "*" && tok != ">" && !slices.Contains(alphabet, tok) {
				alphabet = append(alphabet, tok)
			}
		}
	}
	maxLen := max(strings.Count(grant.String(), "."), strings.Count(requested.String(), ".")) + 2
	var walk func(prefix []string) bool
	walk = func(prefix []string) bool {
		if len(prefix) > 0 {
			ch := strings.Join(prefix, ".")
			if requested.Match(ch) && !grant.Match(ch) {
				return false
			}
		}
		if len(prefix) == maxLen {
			return true
		}
		for _, tok := range alphabet {
			if !walk(append(prefix, tok)) {
				return false
			}
		}
		return true
	}
	return walk(nil)
}

func TestCoversOracle(t *testing.T) {
	pats := []string{">", "*", "a", "b", "a.*", "a.>", "*.b", "a.b", "*.*", "*.>", "a.*.c", "a.b.>", "*.*.>", "a.*.>"}
	for _, g := range pats {
		for _, r := range pats {
			gp, rp := pattern(t, g), pattern(t, r)
			if got, want := covers(gp, rp), coversOracle(gp, rp); got != want {
				t.Errorf("covers(%q, %q) = %v, brute force says %v", g, r, got, want)
			}
		}
	}
}

// FuzzCovers checks covers against brute force on short patterns: it must
// never let a subscription see a channel its grant does not match (sound),
// and never refuse one the grant contains (complete).
func FuzzCovers(f *testing.F) {
	for _, s := range [][2]string{
		{"orders.>", "orders.*"}, {"orders.*", "orders.>"}, {">", "*.secret"}, {"*.secret", ">"},
		{"a.*.c", "a.b.c"}, {"a.b", "a.b"}, {"*.*.>", "a.>"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, g, r string) {
		gp, err1 := broker.ParsePattern(g)
		rp, err2 := broker.ParsePattern(r)
		if err1 != nil || err2 != nil || strings.Count(g, ".") > 3 || strings.Count(r, ".") > 3 {
			return // the oracle's cost grows as alphabet^length
		}
		if got, want := covers(gp, rp), coversOracle(gp, rp); got != want {
			t.Errorf("covers(%q, %q) = %v, brute force says %v", g, r, got, want)
		}
	})
}

func TestNewAuthenticatorErrors(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallPub, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384Pub, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	pemOf := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }
	tests := []struct {
		name string
		c    Config
		want []string
	}{
		{"no key", Config{}, []string{"no key"}},
		{"two keys", Config{HMACSecret: []byte(testSecret), PublicKeyPEM: testdata(t, "rsa.pub")}, []string{"more than one key source"}},
		{"short secret", Config{HMACSecret: []byte("short")}, []string{"5 bytes, want at least 32"}},
		{"private key", Config{PublicKeyPEM: testdata(t, "rsa.key")}, []string{`"PRIVATE KEY"`}},
		{"not PEM", Config{PublicKeyPEM: []byte("hello")}, []string{"no PEM block"}},
		{"small RSA", Config{PublicKeyPEM: pemOf("PUBLIC KEY", smallPub)}, []string{"1024 bits"}},
		{"P-384", Config{PublicKeyPEM: pemOf("PUBLIC KEY", p384Pub)}, []string{"P-384"}},
		{"every problem at once", Config{HMACSecret: []byte("short"), Public: []string{"ok", "bad..name"}, Cookie: "a;b", Leeway: -time.Second},
			[]string{"want at least 32", "bad..name", "cookie", "leeway"}},
	}
	for _, tt := range tests {
		_, err := New(tt.c)
		if err == nil {
			t.Errorf("%s: New = nil error, want one", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: New error %q does not mention %q", tt.name, err, w)
			}
		}
	}
}

func TestAuthenticatorMethods(t *testing.T) {
	for _, tt := range []struct {
		c    Config
		want []string
	}{
		{Config{HMACSecret: []byte(testSecret)}, []string{"HS256"}},
		{Config{PublicKeyPEM: testdata(t, "rsa.pub")}, []string{"RS256"}},
		{Config{PublicKeyPEM: testdata(t, "ec.pub")}, []string{"ES256"}},
		{Config{JWKS: testdata(t, "jwks.json")}, []string{"RS256", "ES256"}},
	} {
		if got := newAuth(t, tt.c).Methods(); !slices.Equal(got, tt.want) {
			t.Errorf("Methods() = %v, want %v", got, tt.want)
		}
	}
}

// verifyCase is a token and what verify must say about it.
type verifyCase struct {
	name   string
	token  string
	status int    // 0: accepted
	reason string // rumor_auth_failures_total's label
	msg    string // part of the error message
}

func checkVerify(t *testing.T, a *Authenticator, tests []verifyCase) {
	t.Helper()
	for _, tt := range tests {
		p, err := a.Verify(tt.token)
		switch {
		case tt.status == 0 && err != nil:
			t.Errorf("%s: verify = %v, want accepted", tt.name, err)
		case tt.status == 0 && p == nil:
			t.Errorf("%s: verify = nil principal", tt.name)
		case tt.status != 0 && err == nil:
			t.Errorf("%s: verify accepted the token, want %d %s", tt.name, tt.status, tt.reason)
		case tt.status != 0 && (err.Status != tt.status || err.Reason != tt.reason || !strings.Contains(err.Msg, tt.msg)):
			t.Errorf("%s: verify = %d %s %q, want %d %s containing %q", tt.name, err.Status, err.Reason, err.Msg, tt.status, tt.reason, tt.msg)
		}
	}
}

func TestVerifyHS256(t *testing.T) {
	a := newAuth(t, Config{HMACSecret: []byte(testSecret), Audience: "rumor", Issuer: "https://issuer.test", Leeway: 5 * time.Second})
	good := func() jwt.MapClaims {
		c := claims([]string{"orders.>"}, []string{"orders.*"}, time.Hour)
		c["aud"] = []string{"other", "rumor"}
		c["iss"] = "https://issuer.test"
		return c
	}
	with := func(k string, v any) jwt.MapClaims {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	now := time.Now()
	rsaPub := testdata(t, "rsa.pub")
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good(), nil)
	checkVerify(t, a, []verifyCase{
		{"good", hs256(t, good()), 0, "", ""},
		{"expired within the leeway", hs256(t, with("exp", now.Add(-2*time.Second).Unix())), 0, "", ""},
		{"expired", hs256(t, with("exp", now.Add(-time.Minute).Unix())), 401, ReasonExpired, "token expired"},
		{"not yet valid", hs256(t, with("nbf", now.Add(time.Minute).Unix())), 401, ReasonExpired, "not valid yet"},
		{"no exp", hs256(t, with("exp", nil)), 401, ReasonInvalid, "no exp"},
		{"wrong audience", hs256(t, with("aud", "someone-else")), 401, ReasonInvalid, "audience"},
		{"no audience", hs256(t, with("aud", nil)), 401, ReasonInvalid, "no aud claim"},
		{"no issuer", hs256(t, with("iss", nil)), 401, ReasonInvalid, "no iss claim"},
		{"wrong issuer", hs256(t, with("iss", "https://evil.test")), 401, ReasonInvalid, "issuer"},
		{"bad grant", hs256(t, with("rumor", map[string]any{"subscribe": []string{"orders.>.x"}})), 401, ReasonInvalid, "rumor.subscribe[0]"},
		{"grant not a list", hs256(t, with("rumor", map[string]any{"publish": "orders"})), 401, ReasonInvalid, "malformed"},
		{"other secret", sign(t, jwt.SigningMethodHS256, []byte(testSecret+"!"), good(), nil), 401, ReasonInvalid, "signature invalid"},
		{"alg none", none, 401, ReasonInvalid, `"none" not accepted`},
		{"RS256 against an HMAC key", sign(t, jwt.SigningMethodRS256, rsaKey(t, "rsa.key"), good(), nil), 401, ReasonInvalid, `"RS256" not accepted`},
		{"HS384", sign(t, jwt.SigningMethodHS384, []byte(testSecret), good(), nil), 401, ReasonInvalid, `"HS384" not accepted`},
		{"HS256 with the RSA public key as secret", sign(t, jwt.SigningMethodHS256, rsaPub, good(), nil), 401, ReasonInvalid, "signature invalid"},
		{"garbage", "not.a.token", 401, ReasonInvalid, "malformed"},
		{"two parts", "abc.def", 401, ReasonInvalid, "malformed"},
		{"too long", strings.Repeat("a", maxTokenLen+1), 401, ReasonInvalid, "longer than"},
		{"signature stripped", strings.Join(strings.Split(hs256(t, good()), ".")[:2], ".") + ".", 401, ReasonInvalid, "signature"},
	})
}

// The algorithm-confusion attack: a token signed with HS256 using the
// server's RSA public key (which is public) as the secret. A server that
// lets the token pick the algorithm would check it with the same bytes.
func TestVerifyPublicKeyRefusesConfusion(t *testing.T) {
	pub := testdata(t, "rsa.pub")
	a := newAuth(t, Config{PublicKeyPEM: pub})
	good := claims([]string{">"}, []string{">"}, time.Hour)
	checkVerify(t, a, []verifyCase{
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey(t, "rsa.key"), good, nil), 0, "", ""},
		{"HS256 with the public PEM as secret", sign(t, jwt.SigningMethodHS256, pub, good, nil), 401, ReasonInvalid, `"HS256" not accepted`},
		{"RS256 by another key", sign(t, jwt.SigningMethodRS256, rsaKey(t, "rsa-other.key"), good, nil), 401, ReasonInvalid, "signature invalid"},
		{"PS256 by the right key", sign(t, jwt.SigningMethodPS256, rsaKey(t, "rsa.key"), good, nil), 401, ReasonInvalid, `"PS256" not accepted`},
		{"ES256 against an RSA key", sign(t, jwt.SigningMethodES256, ecKey(t), good, nil), 401, ReasonInvalid, `"ES256" not accepted`},
		{"none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good, nil), 401, ReasonInvalid, `"none" not accepted`},
	})
	ec := newAuth(t, Config{PublicKeyPEM: testdata(t, "ec.pub")})
	checkVerify(t, ec, []verifyCase{
		{"ES256", sign(t, jwt.SigningMethodES256, ecKey(t), good, nil), 0, "", ""},
		{"HS256 with the EC public PEM as secret", sign(t, jwt.SigningMethodHS256, testdata(t, "ec.pub"), good, nil), 401, ReasonInvalid, `"HS256" not accepted`},
	})
}

func TestVerifyJWKS(t *testing.T) {
	a := newAuth(t, Config{JWKS: testdata(t, "jwks.json")})
	good := claims([]string{">"}, []string{">"}, time.Hour)
	var set struct {
		Keys []struct{ Kid, K string }
	}
	if err := json.Unmarshal(testdata(t, "jwks.json"), &set); err != nil {
		t.Fatal(err)
	}
	var octKey []byte
	for _, k := range set.Keys {
		if k.Kid == "hmac-1" {
			octKey, _ = base64.RawURLEncoding.DecodeString(k.K)
		}
	}
	kid := func(k string) map[string]any { return map[string]any{"kid": k} }
	checkVerify(t, a, []verifyCase{
		{"RS256 rsa-1", sign(t, jwt.SigningMethodRS256, rsaKey(t, "rsa.key"), good, kid("rsa-1")), 0, "", ""},
		{"ES256 ec-1", sign(t, jwt.SigningMethodES256, ecKey(t), good, kid("ec-1")), 0, "", ""},
		{"ES256 naming the RSA key", sign(t, jwt.SigningMethodES256, ecKey(t), good, kid("rsa-1")), 401, ReasonInvalid, "does not fit key"},
		{"RS256 naming the EC key", sign(t, jwt.SigningMethodRS256, rsaKey(t, "rsa.key"), good, kid("ec-1")), 401, ReasonInvalid, "does not fit key"},
		{"HS256 with the oct key of the set", sign(t, jwt.SigningMethodHS256, octKey, good, kid("hmac-1")), 401, ReasonInvalid, `"HS256" not accepted`},
		{"the encryption key", sign(t, jwt.SigningMethodRS256, rsaKey(t, "rsa-other.key"), good, kid("enc-1")), 401, ReasonInvalid, "no key with kid"},
		{"no kid", sign(t, jwt.SigningMethodRS256, rsaKey(t, "rsa.key"), good, nil), 401, ReasonInvalid, "no kid"},
		{"unknown kid", sign(t, jwt.SigningMethodRS256, rsaKey(t, "rsa.key"), good, kid("nope")), 401, ReasonInvalid, "no key with kid"},
		{"right kid, other key", sign(t, jwt.SigningMethodRS256, rsaKey(t, "rsa-other.key"), good, kid("rsa-1")), 401, ReasonInvalid, "signature invalid"},
	})
}

// Ed25519 keys, as a PEM key and in a JWKS (kty OKP), verify EdDSA and
// nothing else.
func TestVerifyEdDSA(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	good := claims([]string{">"}, []string{">"}, time.Hour)
	jwks := `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed-1","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}]}`
	for _, c := range []Config{{PublicKeyPEM: pemKey}, {JWKS: []byte(jwks)}} {
		a := newAuth(t, c)
		if got := a.Methods(); !slices.Equal(got, []string{"EdDSA"}) {
			t.Errorf("Methods() = %v, want [EdDSA]", got)
		}
		checkVerify(t, a, []verifyCase{
			{"EdDSA", sign(t, jwt.SigningMethodEdDSA, priv, good, map[string]any{"kid": "ed-1"}), 0, "", ""},
			{"HS256 with the key bytes", sign(t, jwt.SigningMethodHS256, []byte(pub), good, map[string]any{"kid": "ed-1"}), 401, ReasonInvalid, `"HS256" not accepted`},
			{"HS256 with the PEM", sign(t, jwt.SigningMethodHS256, pemKey, good, map[string]any{"kid": "ed-1"}), 401, ReasonInvalid, `"HS256" not accepted`},
		})
	}
}

func TestParseJWKSErrors(t *testing.T) {
	rsaJWK := func(kid string) string {
		var set struct{ Keys []map[string]any }
		_ = json.Unmarshal(testdata(t, "jwks.json"), &set)
		k := set.Keys[0]
		k["kid"] = kid
		b, _ := json.Marshal(k)
		return string(b)
	}
	for _, tt := range []struct{ name, doc, want string }{
		{"not JSON", "{", "not a JWKS"},
		{"empty", `{"keys": []}`, "no RSA, EC P-256 or Ed25519 signature key"},
		{"only oct", `{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}`, "no RSA, EC"},
		{"only Ed448", `{"keys": [{"kty": "OKP", "crv": "Ed448", "x": "AAAA"}]}`, "no RSA, EC"},
		{"short Ed25519", `{"keys": [{"kty": "OKP", "kid": "x", "crv": "Ed25519", "x": "AAAA"}]}`, "32 bytes"},
		{"duplicate kid", `{"keys": [` + rsaJWK("a") + `,` + rsaJWK("a") + `]}`, "appears twice"},
		{"missing kid among several", `{"keys": [` + rsaJWK("") + `,` + rsaJWK("b") + `]}`, "every key needs a kid"},
		{"bad exponent", `{"keys": [{"kty": "RSA", "kid": "x", "n": "AQAB", "e": "AA"}]}`, "exponent"},
		{"short RSA", `{"keys": [{"kty": "RSA", "kid": "x", "n": "AQAB", "e": "AQAB"}]}`, "bits"},
		{"point not on the curve", `{"keys": [{"kty": "EC", "kid": "x", "crv": "P-256", "x": "` + strings.Repeat("A", 43) + `", "y": "` + strings.Repeat("A", 43) + `"}]}`, "kid \"x\""},
		{"short coordinate", `{"keys": [{"kty": "EC", "kid": "x", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]}`, "32 bytes"},
	} {
		if _, err := ParseJWKS([]byte(tt.doc)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: ParseJWKS = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

// FuzzJWKS: no JWKS document panics, and what it accepts holds only RS256
// and ES256 keys.
func FuzzJWKS(f *testing.F) {
	f.Add(testdata(f, "jwks.json"))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, err := ParseJWKS(doc)
		if err != nil {
			return
		}
		if s.Len() == 0 {
			t.Fatal("ParseJWKS accepted a set without keys")
		}
		for kid, k := range s.keys {
			if _, alg, err := checkKey(k.key); err != nil || alg != k.alg {
				t.Errorf("key %q: %s %v, checkKey says %s %v", kid, k.alg, k.key, alg, err)
			}
		}
	})
}

// FuzzClaims signs arbitrary claims and checks that whatever verify
// accepts carries a future exp, the configured audience and issuer, and
// grants that parse.
func FuzzClaims(f *testing.F) {
	exp := time.Now().Add(time.Hour).Unix()
	for _, s := range []string{
		`{"exp": %d, "aud": "rumor", "iss": "iss", "rumor": {"publish": ["orders.>"], "subscribe": ["orders.*", "news"]}}`,
		`{"exp": %d, "aud": ["rumor"], "iss": "iss", "rumor": {"subscribe": [">"]}}`,
		`{"exp": %d, "aud": "rumor", "iss": "iss", "nbf": 1, "rumor": null}`,
		`{"exp": "%d", "aud": "rumor", "iss": "iss"}`,
		`{"exp": %d.5, "aud": "rumor", "iss": "iss", "rumor": {"publish": [1]}}`,
	} {
		f.Add([]byte(strings.Replace(s, "%d", strconv.FormatInt(exp, 10), 1)))
	}
	a := newAuth(f, Config{HMACSecret: []byte(testSecret), Audience: "rumor", Issuer: "iss"})
	f.Fuzz(func(t *testing.T, payload []byte) {
		header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
		body := base64.RawURLEncoding.EncodeToString(payload)
		sig, err := jwt.SigningMethodHS256.Sign(header+"."+body, []byte(testSecret))
		if err != nil {
			t.Fatal(err)
		}
		tok := header + "." + body + "." + base64.RawURLEncoding.EncodeToString(sig)
		p, aerr := a.Verify(tok)
		if aerr != nil {
			if aerr.Status != http.StatusUnauthorized {
				t.Fatalf("verify refused with %d, want 401", aerr.Status)
			}
			return
		}
		var c struct {
			Exp   json.Number `json:"exp"`
			Iss   string      `json:"iss"`
			Aud   any         `json:"aud"`
			Rumor Grants      `json:"rumor"`
		}
		if err := json.Unmarshal(payload, &c); err != nil {
			t.Fatalf("verify accepted claims encoding/json cannot read: %v", err)
		}
		if !p.Expires.After(time.Now()) {
			t.Errorf("accepted a token that expires at %v", p.Expires)
		}
		if c.Iss != "iss" {
			t.Errorf("accepted iss %q", c.Iss)
		}
		if aud, _ := json.Marshal(c.Aud); !strings.Contains(string(aud), `"rumor"`) {
			t.Errorf("accepted aud %s", aud)
		}
		if len(p.Publish) != len(c.Rumor.Publish) || len(p.Subscribe) != len(c.Rumor.Subscribe) {
			t.Errorf("grants %v %v from %+v", p.Publish, p.Subscribe, c.Rumor)
		}
	})
}

// FuzzToken: no string panics verify, and only the one good token passes.
func FuzzToken(f *testing.F) {
	a := newAuth(f, Config{HMACSecret: []byte(testSecret)})
	good := hs256(f, claims([]string{"a"}, []string{"a"}, time.Hour))
	f.Add(good)
	f.Add(good + "=")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, tok string) {
		if _, err := a.Verify(tok); err == nil && tok != good {
			t.Errorf("verify accepted %q, a variant of the signed token", tok)
		}
	})
}

func TestTokenSources(t *testing.T) {
	c := claims(nil, []string{"a"}, time.Hour)
	tok := hs256(t, c)
	other := hs256(t, claims(nil, []string{"b"}, time.Hour))
	req := func(mod func(r *http.Request)) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/events?channel=a", nil)
		mod(r)
		return r
	}
	for _, tt := range []struct {
		name  string
		query bool
		r     *http.Request
		via   string // "" means no token
		grant string // the subscribe grant of the token found
		err   string
	}{
		{"none", false, req(func(*http.Request) {}), "", "", ""},
		{"header", false, req(func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }), "header", "a", ""},
		{"lower-case scheme", false, req(func(r *http.Request) { r.Header.Set("Authorization", "bearer "+tok) }), "header", "a", ""},
		{"cookie", false, req(func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "rumor_token", Value: tok}) }), "cookie", "a", ""},
		{"header wins over cookie", false, req(func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+tok)
			r.AddCookie(&http.Cookie{Name: "rumor_token", Value: other})
		}), "header", "a", ""},
		{"query off", false, req(func(r *http.Request) { r.URL.RawQuery += "&token=" + tok }), "", "", "disabled"},
		{"query on", true, req(func(r *http.Request) { r.URL.RawQuery += "&token=" + tok }), "query", "a", ""},
		{"cookie wins over query", true, req(func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: "rumor_token", Value: tok})
			r.URL.RawQuery += "&token=" + other
		}), "cookie", "a", ""},
		{"basic", false, req(func(r *http.Request) { r.Header.Set("Authorization", "Basic dXNlcjpwdw==") }), "", "", "want Bearer"},
		{"two headers", false, req(func(r *http.Request) {
			r.Header.Add("Authorization", "Bearer "+tok)
			r.Header.Add("Authorization", "Bearer "+other)
		}), "", "", "more than one"},
		{"another cookie name", false, req(func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "session", Value: tok}) }), "", "", ""},
	} {
		a := newAuth(t, Config{HMACSecret: []byte(testSecret), QueryToken: tt.query})
		p, err := a.Authenticate(tt.r)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Msg, tt.err) || err.Status != 401 {
				t.Errorf("%s: authenticate = %v, want 401 containing %q", tt.name, err, tt.err)
			}
		case err != nil:
			t.Errorf("%s: authenticate = %v", tt.name, err)
		case tt.via == "" && p != nil:
			t.Errorf("%s: found a token via %s, want none", tt.name, p.Via)
		case tt.via != "" && (p == nil || p.Via != tt.via || len(p.Subscribe) != 1 || p.Subscribe[0].String() != tt.grant):
			t.Errorf("%s: principal %+v, want the token via %s granting %s", tt.name, p, tt.via, tt.grant)
		}
	}
}

func TestCanSubscribeAndPublish(t *testing.T) {
	a := newAuth(t, Config{HMACSecret: []byte(testSecret), Public: []string{"news", "status.>"}})
	p, err := a.Verify(hs256(t, claims([]string{"orders.>"}, []string{"orders.*", "chat.room1"}, time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	pats := func(ss ...string) []broker.Pattern {
		var out []broker.Pattern
		for _, s := range ss {
			out = append(out, pattern(t, s))
		}
		return out
	}
	for _, tt := range []struct {
		who    *Principal
		want   []string
		status int
	}{
		{nil, []string{"news"}, 0},
		{nil, []string{"status.eu.db", "status.>"}, 0},
		{nil, []string{"news", "orders.eu"}, 401},
		{nil, []string{"status"}, 401},
		{p, []string{"orders.eu", "orders.*", "news", "chat.room1"}, 0},
		{p, []string{"orders.>"}, 403},
		{p, []string{">"}, 403},
		{p, []string{"*.secret"}, 403},
		{p, []string{"chat.*"}, 403},
		{p, []string{"orders.eu", "secret"}, 403},
	} {
		err := a.CanSubscribe(tt.who, pats(tt.want...))
		if got := statusOfAuth(err); got != tt.status {
			t.Errorf("CanSubscribe(token=%v, %v) = %d (%v), want %d", tt.who != nil, tt.want, got, err, tt.status)
		}
	}
	for _, tt := range []struct {
		who     *Principal
		channel string
		status  int
	}{
		{p, "orders.eu", 0},
		{p, "orders.eu.paid", 0},
		{p, "orders", 403},
		{p, "news", 403},
		{nil, "news", 401},
	} {
		if got := statusOfAuth(a.CanPublish(tt.who, tt.channel)); got != tt.status {
			t.Errorf("CanPublish(token=%v, %q) = %d, want %d", tt.who != nil, tt.channel, got, tt.status)
		}
	}
}

func statusOfAuth(err *Error) int {
	if err == nil {
		return 0
	}
	return err.Status
}

func TestValidCookieName(t *testing.T) {
	for s, want := range map[string]bool{"rumor_token": true, "__Host-rumor": true, "": false, "a b": false, "a;b": false, "a=b": false, "é": false} {
		if got := validCookieName(s); got != want {
			t.Errorf("validCookieName(%q) = %v, want %v", s, got, want)
		}
	}
}
