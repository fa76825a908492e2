package web

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rumorhq/rumor/auth"
)

// Tokens for the tests of the HTTP face. The auth package tests tokens
// themselves; its test keys serve here too.

// testSecret is the HS256 secret of the tests' authenticators.
const testSecret = "rumor-test-secret-0123456789abcdef"

// testdata reads one of auth's test keys (auth/testdata/README.md).
func testdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "auth", "testdata", name))
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
	return jwt.MapClaims{
		"sub":   "tester",
		"iat":   now.Unix(),
		"exp":   now.Add(ttl).Unix(),
		"rumor": map[string]any{"publish": publish, "subscribe": subscribe},
	}
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

func newAuth(tb testing.TB, c auth.Config) *auth.Authenticator {
	tb.Helper()
	a, err := auth.New(c)
	if err != nil {
		tb.Fatalf("auth.New: %v", err)
	}
	tb.Cleanup(a.Close)
	return a
}
