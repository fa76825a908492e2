package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/rumorhq/rumor/watch/watchtest"
)

// testClock is a clock the test moves: key checks are scheduled on it.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Now()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newP256(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// jwkOf is the public JWK of k with kid.
func jwkOf(tb testing.TB, kid string, k *ecdsa.PrivateKey) string {
	tb.Helper()
	b, err := k.PublicKey.Bytes()
	if err != nil {
		tb.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return fmt.Sprintf(`{"kty":"EC","kid":%q,"crv":"P-256","x":%q,"y":%q}`, kid, enc(b[1:33]), enc(b[33:]))
}

func jwksOf(keys ...string) string { return `{"keys":[` + strings.Join(keys, ",") + `]}` }

// es256 is a token for everything signed by k, naming kid.
func es256(tb testing.TB, k *ecdsa.PrivateKey, kid string) string {
	tb.Helper()
	return sign(tb, jwt.SigningMethodES256, k, claims([]string{">"}, []string{">"}, time.Hour), map[string]any{"kid": kid})
}

// idp is an identity provider's JWKS endpoint on 127.0.0.1:0 whose answer
// the test changes, and which counts the fetches.
type idp struct {
	*httptest.Server
	body    atomic.Pointer[string]
	status  atomic.Int32
	fetches atomic.Int64
}

func newIDP(tb testing.TB, jwks string) *idp {
	tb.Helper()
	p := &idp{}
	p.serve(http.StatusOK, jwks)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(int(p.status.Load()))
		w.Write([]byte(*p.body.Load()))
	}))
	tb.Cleanup(p.Close)
	return p
}

func (p *idp) serve(status int, body string) {
	p.body.Store(&body)
	p.status.Store(int32(status))
}

// wantFetches checks how often the endpoint was asked.
func (p *idp) wantFetches(tb testing.TB, when string, n int64) {
	tb.Helper()
	if got := p.fetches.Load(); got != n {
		tb.Errorf("%s: %d JWKS fetches, want %d", when, got, n)
	}
}

func accepted(tb testing.TB, a *Authenticator, what, token string) {
	tb.Helper()
	if _, err := a.Verify(token); err != nil {
		tb.Errorf("%s: refused: %v", what, err)
	}
}

func refused(tb testing.TB, a *Authenticator, what, token, msg string) {
	tb.Helper()
	_, err := a.Verify(token)
	switch {
	case err == nil:
		tb.Errorf("%s: accepted, want refused", what)
	case err.Status != http.StatusUnauthorized || !strings.Contains(err.Msg, msg):
		tb.Errorf("%s: %d %q, want 401 containing %q", what, err.Status, err.Msg, msg)
	}
}

// reloads reads rumor_auth_key_reloads_total of a's source and result.
func reloads(a *Authenticator, result string) float64 {
	var m dto.Metric
	if err := a.keys.reloads.WithLabelValues(a.keys.source, result).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// The identity provider rotates: a token of a new kid is taken after one
// fetch, without a restart; a key it drops stops working at the next
// refresh; made-up kids cost one fetch per interval; and an answer that is
// not a usable JWKS keeps the keys that were good.
func TestJWKSURLRotation(t *testing.T) {
	k1, k2 := newP256(t), newP256(t)
	p := newIDP(t, jwksOf(jwkOf(t, "k1", k1)))
	clock := newTestClock()
	a := newAuth(t, Config{JWKSURL: p.URL + "/jwks.json", JWKSRefresh: 5 * time.Minute, JWKSMinRefetch: 30 * time.Second, Now: clock.Now})
	if err := a.Reload(t.Context()); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	p.wantFetches(t, "after Reload", 1)
	accepted(t, a, "k1", es256(t, k1, "k1"))
	p.wantFetches(t, "a known kid", 1)

	// A new key appears at the provider; tokens signed with it arrive
	// right away. Less than the minimum interval after the last fetch, the
	// unknown kid does not fetch yet; after it, one fetch brings the key.
	p.serve(http.StatusOK, jwksOf(jwkOf(t, "k1", k1), jwkOf(t, "k2", k2)))
	refused(t, a, "k2 right after a fetch", es256(t, k2, "k2"), `no key with kid "k2"`)
	p.wantFetches(t, "an unknown kid within the minimum interval", 1)
	clock.Add(31 * time.Second)
	accepted(t, a, "k2 after the interval", es256(t, k2, "k2"))
	accepted(t, a, "k1 still", es256(t, k1, "k1"))
	p.wantFetches(t, "the new kid", 2)

	// Garbage tokens with made-up kids, many at once: no more fetches until
	// the interval has passed, then one.
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			refused(t, a, "a made-up kid", es256(t, newP256(t), fmt.Sprint("garbage-", i)), "no key with kid")
		})
	}
	wg.Wait()
	p.wantFetches(t, "50 made-up kids", 2)
	clock.Add(31 * time.Second)
	for i := range 50 {
		wg.Go(func() {
			refused(t, a, "a made-up kid", es256(t, newP256(t), fmt.Sprint("more-garbage-", i)), "no key with kid")
		})
	}
	wg.Wait()
	p.wantFetches(t, "50 more made-up kids after the interval", 3)

	// The provider drops k1: it is refused after the periodic refresh.
	p.serve(http.StatusOK, jwksOf(jwkOf(t, "k2", k2)))
	clock.Add(4 * time.Minute)
	accepted(t, a, "k1 before the refresh is due", es256(t, k1, "k1"))
	p.wantFetches(t, "before the refresh is due", 3)
	clock.Add(2 * time.Minute)
	accepted(t, a, "k2 at the refresh", es256(t, k2, "k2"))
	a.keys.bg.Wait() // the refresh runs in the background: the request did not wait for it
	p.wantFetches(t, "the refresh", 4)
	refused(t, a, "k1 after the provider dropped it", es256(t, k1, "k1"), `no key with kid "k1"`)
	p.wantFetches(t, "the dropped kid, just after a fetch", 4)

	// The provider fails or answers garbage: the keys that were good stay,
	// and nothing else is accepted.
	okBefore := reloads(a, reloadOK)
	for i, bad := range []struct {
		status int
		body   string
	}{
		{http.StatusInternalServerError, "oops"},
		{http.StatusOK, "<html>not json</html>"},
		{http.StatusOK, `{"keys":[]}`},
		{http.StatusOK, jwksOf(`{"kty":"oct","kid":"k3","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}`)},
		{http.StatusOK, strings.Repeat(" ", maxKeyBytes+1)},
	} {
		p.serve(bad.status, bad.body)
		clock.Add(6 * time.Minute)
		accepted(t, a, fmt.Sprintf("k2 with a bad answer %d (%d)", i, bad.status), es256(t, k2, "k2"))
		a.keys.bg.Wait()
		refused(t, a, "k1 with a bad answer", es256(t, k1, "k1"), "no key with kid")
		refused(t, a, "HS256 with a bad answer", hs256(t, claims([]string{">"}, nil, time.Hour)), "not accepted")
	}
	p.wantFetches(t, "five bad answers", 9)
	if got := reloads(a, reloadError); got != 5 {
		t.Errorf(`rumor_auth_key_reloads_total{result="error"} = %v, want 5`, got)
	}
	if got := reloads(a, reloadOK); got != okBefore {
		t.Errorf(`rumor_auth_key_reloads_total{result="ok"} = %v after bad answers, want %v`, got, okBefore)
	}
	// A failed fetch is tried again after the short interval, not the long one.
	p.serve(http.StatusOK, jwksOf(jwkOf(t, "k2", k2), jwkOf(t, "k1", k1)))
	clock.Add(31 * time.Second)
	accepted(t, a, "k1 back at the provider", es256(t, k1, "k1"))
	a.keys.bg.Wait()
	p.wantFetches(t, "the retry after a failure", 10)
}

// Without a successful fetch there are no keys, and no token passes; the
// first token fetches, and Reload reports a provider that does not answer.
func TestJWKSURLFirstFetch(t *testing.T) {
	k1 := newP256(t)
	p := newIDP(t, "not yet")
	p.serve(http.StatusServiceUnavailable, "not yet")
	a := newAuth(t, Config{JWKSURL: p.URL, JWKSMinRefetch: time.Hour})
	if err := a.Reload(t.Context()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("Reload with the provider down = %v, want the 503", err)
	}
	refused(t, a, "k1 without keys", es256(t, k1, "k1"), "no keys")
	if got := a.Methods(); len(got) != 0 {
		t.Errorf("Methods() without keys = %v, want none", got)
	}

	p.serve(http.StatusOK, jwksOf(jwkOf(t, "k1", k1)))
	b := newAuth(t, Config{JWKSURL: p.URL})
	accepted(t, b, "the first token", es256(t, k1, "k1"))
	if got := b.Methods(); len(got) != 1 || got[0] != "ES256" {
		t.Errorf("Methods() = %v, want [ES256]", got)
	}
}

func TestJWKSURLConfig(t *testing.T) {
	for _, u := range []string{"http://idp.example.com/jwks", "ftp://127.0.0.1/jwks", "/jwks.json", "https://"} {
		if _, err := New(Config{JWKSURL: u}); err == nil {
			t.Errorf("New(JWKSURL %q) = nil error", u)
		}
	}
	for _, u := range []string{"https://idp.example.com/.well-known/jwks.json", "http://127.0.0.1:8080/jwks", "http://localhost/jwks", "http://[::1]/jwks"} {
		if _, err := New(Config{JWKSURL: u}); err != nil {
			t.Errorf("New(JWKSURL %q) = %v", u, err)
		}
	}
	if _, err := New(Config{JWKSURL: "https://idp.example.com/jwks", JWKSFile: "jwks.json"}); err == nil || !strings.Contains(err.Error(), "more than one key source") {
		t.Errorf("a URL and a file = %v, want more than one key source", err)
	}
	_, err := New(Config{JWKSURL: "http://user:hunter2@idp.example.com/jwks"})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("New with a password in the URL = %v, want an error without it", err)
	}
}

// eventually retries cond until it holds or the test's patience ends.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not after %v", what, testTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const otherSecret = "rumor-test-secret-rotated-abcdef0123456789"

// An HMAC secret file replaced by a rename: the new secret is taken at the
// next check, the old one refused; a file that does not parse keeps the
// secret in use. The checks run on a clock the test moves, so each one
// happens exactly where the test says. (web's TestHMACFileRotation shows
// that streams opened with the old secret keep running until their token
// expires.)
func TestHMACFileRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const check = 20 * time.Millisecond
	clock := newTestClock()
	a := newAuth(t, Config{HMACSecretFile: path, FileCheck: check, Now: clock.Now})
	all := claims([]string{">"}, []string{">"}, time.Hour)
	oldTok := hs256(t, all)
	newTok := sign(t, jwt.SigningMethodHS256, []byte(otherSecret), all, nil)

	accepted(t, a, "the first secret", oldTok)
	refused(t, a, "the next secret before the rotation", newTok, "signature invalid")

	watchtest.Replace(t, path, otherSecret+"\n")
	refused(t, a, "the next secret before a check is due", newTok, "signature invalid")
	clock.Add(check)
	accepted(t, a, "the new secret at the next check", newTok)
	refused(t, a, "the old secret after the rotation", oldTok, "signature invalid")
	if got := reloads(a, reloadOK); got != 1 {
		t.Errorf(`rumor_auth_key_reloads_total{source="hmac_secret_file",result="ok"} = %v, want 1`, got)
	}

	// A secret that is too short, then a file that is gone: the secret in
	// use stays, each failure is counted once however many checks see it.
	watchtest.Replace(t, path, "short\n")
	clock.Add(check)
	accepted(t, a, "the secret in use after a bad file", newTok)
	if got := reloads(a, reloadError); got != 1 {
		t.Errorf("after a check of the short secret, %v failed reloads, want 1", got)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	clock.Add(check)
	accepted(t, a, "the secret in use without the file", newTok)
	if got := reloads(a, reloadError); got != 2 {
		t.Errorf("after a check of the missing file, %v failed reloads, want 2", got)
	}
	for range 3 {
		clock.Add(check)
		accepted(t, a, "the secret in use, checks later", newTok)
	}
	if got := reloads(a, reloadError); got != 2 {
		t.Errorf("the same failure counted %v times in all, want once each (2)", got)
	}
	if err := a.Reload(t.Context()); err == nil {
		t.Error("Reload without the file = nil error")
	}
	watchtest.Replace(t, path, testSecret)
	clock.Add(check)
	accepted(t, a, "the first secret back at the next check", oldTok)
}

// A public key and a JWKS in a Kubernetes Secret volume: the update swaps
// a symlink, and rumor follows it.
func TestKeyFileRotationKubernetes(t *testing.T) {
	k1, k2 := newP256(t), newP256(t)
	pemOf := func(k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	vol := watchtest.NewVolume(t, map[string]string{"key.pem": pemOf(k1), "jwks.json": jwksOf(jwkOf(t, "k1", k1))})
	pub := newAuth(t, Config{PublicKeyFile: vol.Path("key.pem"), FileCheck: 10 * time.Millisecond})
	set := newAuth(t, Config{JWKSFile: vol.Path("jwks.json"), FileCheck: 10 * time.Millisecond})
	accepted(t, pub, "the first public key", es256(t, k1, ""))
	accepted(t, set, "the first JWKS", es256(t, k1, "k1"))

	// The JWKS gets a second key first (both valid), the PEM moves on.
	vol.Update(t, map[string]string{"key.pem": pemOf(k2), "jwks.json": jwksOf(jwkOf(t, "k1", k1), jwkOf(t, "k2", k2))})
	eventually(t, "the new public key", func() bool { _, err := pub.Verify(es256(t, k2, "")); return err == nil })
	refused(t, pub, "the old public key", es256(t, k1, ""), "signature invalid")
	eventually(t, "the new JWKS key", func() bool { _, err := set.Verify(es256(t, k2, "k2")); return err == nil })
	accepted(t, set, "the old JWKS key, still in the set", es256(t, k1, "k1"))

	// A broken update keeps what works.
	vol.Update(t, map[string]string{"key.pem": "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n", "jwks.json": "{"})
	eventually(t, "the broken files counted", func() bool {
		pub.Verify(es256(t, k2, ""))
		set.Verify(es256(t, k2, "k2"))
		return reloads(pub, reloadError) == 1 && reloads(set, reloadError) == 1
	})
	accepted(t, pub, "the public key after a broken update", es256(t, k2, ""))
	accepted(t, set, "the JWKS after a broken update", es256(t, k2, "k2"))
}

// A file whose modification time and size did not move is not read again
// by the checks; Reload reads it whatever its stat says.
func TestKeyFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(testSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	const check = 10 * time.Millisecond
	clock := newTestClock()
	a := newAuth(t, Config{HMACSecretFile: path, FileCheck: check, Now: clock.Now})
	other := otherSecret[:len(testSecret)]
	if err := os.WriteFile(path, []byte(other), 0o600); err != nil { // same size
		t.Fatal(err)
	}
	if err := os.Chtimes(path, old, old); err != nil { // same time
		t.Fatal(err)
	}
	newTok := sign(t, jwt.SigningMethodHS256, []byte(other), claims([]string{">"}, nil, time.Hour), nil)
	for range 3 { // checks are due: they see the same stat and read nothing
		clock.Add(check)
		refused(t, a, "the new secret before Reload", newTok, "signature invalid")
	}
	if err := a.Reload(t.Context()); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	accepted(t, a, "the new secret after Reload", newTok)
}

// A key file replaced by another of the same size with the same
// modification time (a Secret update within one clock tick of the last,
// keys of one kind having one size) is still noticed: it is another file.
func TestKeyFileSameSizeAndTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(testSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	a := newAuth(t, Config{HMACSecretFile: path, FileCheck: 10 * time.Millisecond})
	all := claims([]string{">"}, []string{">"}, time.Hour)
	accepted(t, a, "the first secret", hs256(t, all))

	next := testSecret[:len(testSecret)-1] + "!"
	watchtest.Replace(t, path, next)
	if err := os.Chtimes(path, before.ModTime(), before.ModTime()); err != nil {
		t.Fatal(err)
	}
	newTok := sign(t, jwt.SigningMethodHS256, []byte(next), all, nil)
	eventually(t, "the secret of the same size and time", func() bool { _, err := a.Verify(newTok); return err == nil })
}

// The periodic JWKS refresh runs in the background: a request that finds it
// due goes on with the current keys while the identity provider is slow,
// and Close stops the fetch and waits for it.
func TestJWKSURLRefreshDoesNotBlock(t *testing.T) {
	k1 := newP256(t)
	release := make(chan struct{})
	var fetches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fetches.Add(1) > 1 {
			select { // the refresh hangs until the test lets it go, or gives up
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		w.Write([]byte(jwksOf(jwkOf(t, "k1", k1))))
	}))
	defer srv.Close()
	defer close(release)
	clock := newTestClock()
	a := newAuth(t, Config{JWKSURL: srv.URL + "/jwks.json", JWKSRefresh: time.Minute, Now: clock.Now})
	if err := a.Reload(t.Context()); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	clock.Add(2 * time.Minute)
	done := make(chan struct{})
	go func() {
		defer close(done)
		accepted(t, a, "k1 while the refresh hangs", es256(t, k1, "k1"))
	}()
	select {
	case <-done:
	case <-time.After(testTimeout):
		t.Fatal("a request waited for the JWKS refresh")
	}
	eventually(t, "the background refresh to start", func() bool { return fetches.Load() == 2 })
	a.Close() // cancels the hanging fetch
	if !a.keys.refreshing.CompareAndSwap(false, false) {
		t.Error("a refresh still running after Close")
	}
}
