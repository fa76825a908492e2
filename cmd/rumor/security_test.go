package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	bin "encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rumorhq/rumor/watch/watchtest"
)

func TestSecurityDefaults(t *testing.T) {
	c, err := parseServe(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := SecurityConfig{
		AuthJWKSRefresh:       5 * time.Minute,
		AuthLeeway:            5 * time.Second,
		AuthCookie:            "rumor_token",
		MaxHeaderBytes:        64 << 10,
		ReadHeaderTimeout:     10 * time.Second,
		ReadBodyTimeout:       30 * time.Second,
		IdleTimeout:           2 * time.Minute,
		MaxStreamsPerClient:   100,
		MaxPublishesPerClient: 256,
	}
	if !reflect.DeepEqual(c.SecurityConfig, want) {
		t.Errorf("security defaults =\n%+v\nwant\n%+v", c.SecurityConfig, want)
	}
	if c.authOn() {
		t.Error("auth is on by default, want off for local use")
	}
}

// tempFile writes a file in the test's directory and returns its path.
func tempFile(tb testing.TB, name, content string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

const testSecret = "cmd-test-secret-0123456789abcdef0123"

// The typed values of the security flags, from a flag and from a variable;
// flags that only make sense with auth on get a secret alongside.
func TestSecurityValues(t *testing.T) {
	secret := tempFile(t, "secret", testSecret+"\n")
	withAuth := map[string]string{"RUMOR_AUTH_HMAC_SECRET_FILE": secret}
	tests := []struct {
		flag, flagVal, envVal string
		get                   func(Config) any
		wantFlag, wantEnv     any
	}{
		{"auth-audience", "a", "b", func(c Config) any { return c.AuthAudience }, "a", "b"},
		{"auth-issuer", "a", "b", func(c Config) any { return c.AuthIssuer }, "a", "b"},
		{"auth-jwks-refresh", "1m", "1h", func(c Config) any { return c.AuthJWKSRefresh }, time.Minute, time.Hour},
		{"auth-leeway", "1s", "2s", func(c Config) any { return c.AuthLeeway }, time.Second, 2 * time.Second},
		{"auth-cookie", "a", "b", func(c Config) any { return c.AuthCookie }, "a", "b"},
		{"auth-query-token", "true", "false", func(c Config) any { return c.AuthQueryToken }, true, false},
		{"public-channels", "news,status.>", "x", func(c Config) any { return strings.Join(c.PublicChannels, "|") }, "news|status.>", "x"},
		{"cors-origins", "https://a.example,*", "http://localhost:5173", func(c Config) any { return strings.Join(c.CORSOrigins, "|") }, "https://a.example|*", "http://localhost:5173"},
		{"max-header-bytes", "8KiB", "16384", func(c Config) any { return c.MaxHeaderBytes }, int64(8 << 10), int64(16 << 10)},
		{"read-header-timeout", "1s", "2s", func(c Config) any { return c.ReadHeaderTimeout }, time.Second, 2 * time.Second},
		{"read-body-timeout", "3s", "4s", func(c Config) any { return c.ReadBodyTimeout }, 3 * time.Second, 4 * time.Second},
		{"idle-timeout", "1m", "2m", func(c Config) any { return c.IdleTimeout }, time.Minute, 2 * time.Minute},
		{"max-streams-per-client", "5", "0", func(c Config) any { return c.MaxStreamsPerClient }, 5, 0},
		{"max-publishes-per-client", "5", "0", func(c Config) any { return c.MaxPublishesPerClient }, 5, 0},
		{"publish-rate", "100/s", "6000/m", func(c Config) any { return c.PublishRate }, "100/s", "6000/m"},
		{"trusted-proxies", "10.0.0.0/8,192.168.0.1", "127.0.0.1/32", func(c Config) any { return strings.Join(c.TrustedProxies, "|") }, "10.0.0.0/8|192.168.0.1", "127.0.0.1/32"},
	}
	for _, tt := range tests {
		vars := map[string]string{envName(tt.flag): tt.envVal}
		for k, v := range withAuth {
			vars[k] = v
		}
		c, err := parseServe([]string{"--" + tt.flag + "=" + tt.flagVal}, env(vars))
		if err != nil {
			t.Errorf("--%s=%s: %v", tt.flag, tt.flagVal, err)
		} else if got := tt.get(c); got != tt.wantFlag {
			t.Errorf("--%s=%s: got %v, want %v", tt.flag, tt.flagVal, got, tt.wantFlag)
		}
		c, err = parseServe(nil, env(vars))
		if err != nil {
			t.Errorf("%s=%s: %v", envName(tt.flag), tt.envVal, err)
		} else if got := tt.get(c); got != tt.wantEnv {
			t.Errorf("%s=%s: got %v, want %v", envName(tt.flag), tt.envVal, got, tt.wantEnv)
		}
	}

	// Each key source turns auth on, from a flag or a variable.
	k := newECKey(t)
	pubPEM := tempFile(t, "ec.pub", ecPublicPEM(t, k))
	jwks := tempFile(t, "jwks.json", `{"keys":[`+ecJWK(t, k)+`]}`)
	cert, key := selfSigned(t)
	for _, tt := range []struct{ flag, value string }{
		{"auth-hmac-secret", testSecret},
		{"auth-hmac-secret-file", secret},
		{"auth-public-key", pubPEM},
		{"auth-jwks", jwks},
		{"auth-jwks-url", "https://idp.example.com/.well-known/jwks.json"}, // not fetched by Validate
	} {
		for _, args := range [][]string{{"--" + tt.flag, tt.value}, nil} {
			vars := map[string]string{}
			if args == nil {
				vars[envName(tt.flag)] = tt.value
			}
			c, err := parseServe(args, env(vars))
			if err != nil {
				t.Errorf("%s %v: %v", tt.flag, vars, err)
				continue
			}
			if a, err := c.authenticator(nil, nil); err != nil || a == nil {
				t.Errorf("%s %v: authenticator = %v, %v, want one", tt.flag, vars, a, err)
			}
		}
	}
	c, err := parseServe([]string{"--tls-cert", cert}, env(map[string]string{"RUMOR_TLS_KEY": key}))
	if err != nil || c.TLSCert != cert || c.TLSKey != key {
		t.Errorf("--tls-cert with RUMOR_TLS_KEY: %+v, %v", c.SecurityConfig, err)
	}
}

func TestSecurityReportsEveryProblem(t *testing.T) {
	priv := tempFile(t, "ec.key", ecPrivatePEM(t, newECKey(t)))
	args := []string{
		"--auth-hmac-secret", "short",
		"--auth-jwks", tempFile(t, "jwks.json", `{"keys":[]}`),
		"--auth-cookie", "bad cookie",
		"--cors-origins", "https://ok.example,app.example.com,https://x/path",
		"--tls-cert", priv,
		"--max-header-bytes", "10",
		"--read-header-timeout", "0s",
		"--idle-timeout", "-1s",
		"--read-body-timeout", "0s",
		"--max-streams-per-client", "-1",
		"--max-publishes-per-client", "-1",
		"--publish-rate", "fast",
		"--trusted-proxies", "10.0.0.0/8,nowhere",
		"--auth-leeway", "1h",
		"--auth-jwks-refresh", "1s",
	}
	_, err := parseServe(args, env(nil))
	if err == nil {
		t.Fatal("parseServe with every security value wrong: no error")
	}
	for _, want := range []string{
		"--auth-hmac-secret and --auth-jwks are set: use exactly one",
		`--cors-origins: CORS origin "app.example.com"`,
		`--cors-origins: CORS origin "https://x/path"`,
		"--tls-cert and --tls-key go together",
		"--max-header-bytes 10",
		"--read-header-timeout must be positive",
		"--idle-timeout must be positive",
		"--read-body-timeout must be positive",
		"--max-streams-per-client -1",
		"--max-publishes-per-client -1",
		`--publish-rate "fast"`,
		`--trusted-proxies "nowhere"`,
		"--auth-leeway 1h0m0s",
		"--auth-jwks-refresh 1s",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "ok.example") || strings.Contains(err.Error(), `"10.0.0.0/8"`) {
		t.Errorf("error blames a valid value:\n%v", err)
	}

	// Problems of one key source, and settings that need auth.
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--auth-hmac-secret", "short", "--auth-cookie", "a;b", "--public-channels", "ok,bad..x"},
			[]string{"5 bytes, want at least 32", "cookie", "bad..x"}},
		{[]string{"--auth-hmac-secret-file", filepath.Join(t.TempDir(), "missing")}, []string{"--auth-hmac-secret-file"}},
		{[]string{"--auth-public-key", priv}, []string{"--auth-public-key " + priv, "PRIVATE KEY"}},
		{[]string{"--auth-jwks", tempFile(t, "empty.json", `{"keys":[]}`)}, []string{"--auth-jwks", "no RSA, EC"}},
		{[]string{"--auth-audience", "a", "--auth-issuer", "b", "--public-channels", "news", "--auth-query-token"},
			[]string{"--auth-audience is set but auth is off", "--auth-issuer is set", "--public-channels is set", "--auth-query-token is set"}},
		{[]string{"--tls-cert", priv, "--tls-key", priv}, []string{"--tls-cert " + priv}},
		{[]string{"--peer-tls-server-name", "rumor.svc"}, []string{"--peer-tls-server-name is set but TLS is off"}},
		{[]string{"--auth-jwks-url", "http://idp.example.com/jwks"}, []string{"--auth-jwks-url", "want https"}},
		{[]string{"--auth-jwks-url", "https://idp.example.com/jwks", "--auth-jwks", tempFile(t, "j.json", `{"keys":[]}`)}, []string{"--auth-jwks and --auth-jwks-url are set"}},
	} {
		_, err := parseServe(tt.args, env(nil))
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("parseServe(%q) = %v, want it to mention %q", tt.args, err, w)
			}
		}
	}
	// The secret itself is never echoed.
	if _, err := parseServe([]string{"--auth-hmac-secret", "tiny-secret-value"}, env(nil)); err == nil || strings.Contains(err.Error(), "tiny-secret-value") {
		t.Errorf("error for a short secret = %v: want one that does not echo it", err)
	}
}

func TestParseRate(t *testing.T) {
	for _, tt := range []struct {
		in  string
		n   int
		per time.Duration
	}{
		{"", 0, 0}, {"0", 0, 0}, {"off", 0, 0},
		{"100/s", 100, time.Second}, {"6000/m", 6000, time.Minute}, {"10/h", 10, time.Hour},
		{"10/500ms", 10, 500 * time.Millisecond}, {" 5 / 2s ", 5, 2 * time.Second},
	} {
		n, per, err := parseRate(tt.in)
		if err != nil || n != tt.n || per != tt.per {
			t.Errorf("parseRate(%q) = %d, %v, %v; want %d, %v", tt.in, n, per, err, tt.n, tt.per)
		}
	}
	for _, bad := range []string{"100", "x/s", "-1/s", "0/s", "10/d", "10/1ns", "10/48h", "1/s/s"} {
		if _, _, err := parseRate(bad); err == nil {
			t.Errorf("parseRate(%q) = nil error", bad)
		}
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key,
// made with crypto/x509 for this test.
func selfSigned(tb testing.TB) (certFile, keyFile string) {
	tb.Helper()
	return selfSignedFor(tb, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
}

// selfSignedFor is selfSigned for these names and addresses.
func selfSignedFor(tb testing.TB, dnsNames []string, ips []net.IP) (certFile, keyFile string) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "rumor test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  ips,
		DNSNames:     dnsNames,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return tempFile(tb, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))),
		tempFile(tb, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})))
}

func newECKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func ecPublicPEM(tb testing.TB, k *ecdsa.PrivateKey) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func ecPrivatePEM(tb testing.TB, k *ecdsa.PrivateKey) string {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func ecJWK(tb testing.TB, k *ecdsa.PrivateKey) string {
	tb.Helper()
	b, err := k.PublicKey.Bytes()
	if err != nil {
		tb.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return `{"kty":"EC","kid":"k1","crv":"P-256","x":"` + enc(b[1:33]) + `","y":"` + enc(b[33:]) + `"}`
}

// token returns an HS256 JWT over claims, made by hand so that cmd's tests
// check rumor against the format, not against the library it uses.
func token(tb testing.TB, secret string, claims map[string]any) string {
	tb.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	body, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	signing := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc(body)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(signing))
	return signing + "." + enc(m.Sum(nil))
}

func grant(publish, subscribe []string) map[string]any {
	return map[string]any{
		"sub":   "cmd-test",
		"exp":   time.Now().Add(time.Hour).Unix(),
		"rumor": map[string]any{"publish": publish, "subscribe": subscribe},
	}
}

// startServeWith is startServe for a node whose URL scheme is scheme.
func startServeWith(tb testing.TB, scheme string, args ...string) (*running, string) {
	tb.Helper()
	all := append([]string{"serve", "--http-addr", "127.0.0.1:0", "--log-format", "json", "--drain-timeout", "5s"}, args...)
	r := start(tb, env(nil), all...)
	var url string
	r.out.waitFor(tb, `the "listening" log line`, func(s string) bool {
		m, ok := logLine(s, "listening")
		if ok {
			url, _ = m["url"].(string)
		}
		return ok
	})
	if !strings.HasPrefix(url, scheme+"://127.0.0.1:") {
		tb.Fatalf("listening url = %q, want %s://127.0.0.1:PORT", url, scheme)
	}
	return r, url
}

func do(tb testing.TB, c *http.Client, method, url string, h http.Header, body string) (*http.Response, string) {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// `rumor serve --tls-cert --tls-key` serves HTTPS with HTTP/2: many streams
// over one connection. TLS below 1.2 is refused.
func TestServeTLSHTTP2(t *testing.T) {
	cert, key := selfSigned(t)
	_, url := startServeWith(t, "https", "--tls-cert", cert, "--tls-key", key)
	pemCert, _ := os.ReadFile(cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCert)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/events?channel=tls&channel=other", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("stream over TLS: %v", err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream over TLS: %s %s %q, want HTTP/2 200 text/event-stream", resp.Proto, resp.Status, resp.Header.Get("Content-Type"))
	}
	if resp.Header.Get("Connection") != "" {
		t.Errorf("HTTP/2 answer with Connection: %q", resp.Header.Get("Connection"))
	}
	// A second stream and a publish share the connection.
	req2, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/channels/tls", nil)
	resp2, err := client.Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if p, body := do(t, client, http.MethodPost, url+"/channels/tls", nil, "over h2"); p.StatusCode != http.StatusOK || p.ProtoMajor != 2 {
		t.Fatalf("publish over TLS = %s %d %s", p.Proto, p.StatusCode, body)
	}
	for _, r := range []*http.Response{resp, resp2} {
		br := bufio.NewReader(r.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the stream: %v", err)
			}
			if line == "data: over h2\n" {
				break
			}
		}
	}

	old := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}
	t.Cleanup(old.CloseIdleConnections)
	if resp, err := (&http.Client{Transport: old}).Get(url + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("a TLS 1.1 client was served: %s", resp.Proto)
	}
	if resp, err := http.Get(strings.Replace(url, "https://", "http://", 1) + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP to the TLS port = %d, want a refusal", resp.StatusCode)
		}
	}
}

// Auth from flags to answers: a token file, public channels, CORS.
func TestServeAuth(t *testing.T) {
	secret := tempFile(t, "secret", testSecret+"\n") // the newline is not part of it
	srv, url := startServeWith(t, "http", "--auth-hmac-secret-file", secret, "--public-channels", "news",
		"--cors-origins", "https://app.example.com")
	c := http.DefaultClient
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	pub := token(t, testSecret, grant([]string{"orders.>"}, []string{"orders.*"}))

	if resp, body := do(t, c, http.MethodPost, url+"/channels/orders.eu", nil, "x"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("publish without a token = %d %s, want 401", resp.StatusCode, body)
	}
	if resp, body := do(t, c, http.MethodPost, url+"/channels/orders.eu", bearer(token(t, "another secret, at least 32 bytes", grant([]string{">"}, nil))), "x"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("publish with a forged token = %d %s, want 401", resp.StatusCode, body)
	}
	if resp, body := do(t, c, http.MethodPost, url+"/channels/payments", bearer(pub), "x"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("publish without the grant = %d %s, want 403", resp.StatusCode, body)
	}
	if resp, body := do(t, c, http.MethodGet, url+"/channels/orders.%3E", bearer(pub), ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("subscribe wider than the grant = %d %s, want 403", resp.StatusCode, body)
	}
	if resp, body := do(t, c, http.MethodPost, url+"/channels/orders.eu", bearer(pub), "granted"); resp.StatusCode != http.StatusOK {
		t.Errorf("granted publish = %d %s, want 200", resp.StatusCode, body)
	}
	// A public channel needs no token.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/channels/news", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("public stream without a token = %d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, body := do(t, c, http.MethodOptions, url+"/channels/orders.eu", http.Header{"Origin": {"https://app.example.com"}, "Access-Control-Request-Method": {"POST"}}, ""); resp.StatusCode != http.StatusNoContent ||
		resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("preflight = %d %v %s, want 204 for the listed origin", resp.StatusCode, resp.Header, body)
	}
	srv.out.waitFor(t, `the "security" log line`, func(s string) bool {
		m, ok := logLine(s, "security")
		return ok && m["auth"] == true
	})
	if strings.Contains(srv.out.String(), testSecret) {
		t.Error("the log shows the secret")
	}
}

// The HTTP server gets its timeouts and header limit from the flags: a
// client that sends its headers a byte at a time is cut, so is one that
// trickles a publish body, and an oversized header gets 431.
func TestServeSlowClientsAndHeaderLimit(t *testing.T) {
	_, url := startServeWith(t, "http", "--read-header-timeout", "300ms", "--read-body-timeout", "300ms", "--max-header-bytes", "2KiB")
	addr := strings.TrimPrefix(url, "http://")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, b := range []byte("GET /healthz HTTP/1.1\r\nHost: rumor\r\nX-Slow: " + strings.Repeat("s", 200)) {
			if _, err := conn.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(conn)
	if d := time.Since(start); d > 2*time.Second || !bytes.HasPrefix(b, []byte("HTTP/1.1 400 ")) {
		t.Errorf("slow header: %q after %v, want 400 and the end at about 300ms", b, d)
	}
	conn.Close()
	<-done

	body, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	_ = body.SetDeadline(time.Now().Add(10 * time.Second))
	start = time.Now()
	_, _ = io.WriteString(body, "POST /channels/slow HTTP/1.1\r\nHost: rumor\r\nContent-Length: 100\r\n\r\nx")
	status, _ := bufio.NewReader(body).ReadString('\n')
	if d := time.Since(start); d > 2*time.Second || !strings.HasPrefix(status, "HTTP/1.1 400 ") {
		t.Errorf("trickled body: %q after %v, want 400 at about 300ms", status, d)
	}

	big := http.Header{"X-Pad": {strings.Repeat("p", 8<<10)}}
	if resp, _ := do(t, http.DefaultClient, http.MethodGet, url+"/healthz", big, ""); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("8 KiB header = %d, want 431", resp.StatusCode)
	}
}

// --max-streams-per-client and --publish-rate reach the handler.
func TestServeClientLimits(t *testing.T) {
	_, url := startServeWith(t, "http", "--max-streams-per-client", "1", "--publish-rate", "2/m")
	rawStream(t, url+"/channels/a")
	resp, body := do(t, http.DefaultClient, http.MethodGet, url+"/channels/b", nil, "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "retry: ") || !strings.Contains(body, "too many streams from your address") {
		t.Errorf("second stream = %d %q, want 200, a retry: and the per-client reason", resp.StatusCode, body)
	}
	for i := range 3 {
		resp, body := do(t, http.DefaultClient, http.MethodPost, url+"/channels/a", nil, "x")
		want := http.StatusOK
		if i == 2 {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want {
			t.Errorf("publish %d = %d %s, want %d", i, resp.StatusCode, body, want)
		}
		if i == 2 && resp.Header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
	}
}

// A node with gossip and no key warns loudly at start; with a key it does
// not. (transport/security_test.go shows that nodes with another key or
// label never join.)
func TestGossipWithoutKeyWarns(t *testing.T) {
	warned := func(out string) bool {
		for line := range strings.Lines(out) {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["level"] == "WARN" && strings.HasPrefix(m["msg"].(string), "GOSSIP IS NOT ENCRYPTED") {
				return true
			}
		}
		return false
	}
	open, _ := startServeWith(t, "http", "--gossip-addr", "127.0.0.1:0")
	if !warned(open.out.String()) {
		t.Errorf("gossip without a key: no warning in\n%s", open.out)
	}
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	closed, _ := startServeWith(t, "http", "--gossip-addr", "127.0.0.1:0", "--gossip-key", key)
	if warned(closed.out.String()) {
		t.Errorf("gossip with a key: warned anyway\n%s", closed.out)
	}
}

// The relay listens on the gossip port of a real `rumor serve`: a client
// that does not hold the key cannot finish the handshake, and is counted.
func TestRelayRefusesStranger(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	srv, url := startServeWith(t, "http", "--gossip-addr", "127.0.0.1:0", "--gossip-key", key, "--cluster-label", "test")
	m, _ := logLine(srv.out.String(), "listening")
	gossip, _ := m["gossip"].(string)
	if gossip == "" {
		t.Fatalf("no gossip address in %v", m)
	}
	conn, err := net.DialTimeout("tcp", gossip, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	hello := append([]byte("RUMR\x02"), make([]byte, 16)...) // relay protocol version 2
	hello = bin.BigEndian.AppendUint64(hello, 0x1234)
	if _, err := conn.Write(hello); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, 16+8+32)
	if _, err := io.ReadFull(conn, reply); err != nil {
		t.Fatalf("the node's handshake reply: %v", err)
	}
	// A proof made without the key, then an attempt to talk on.
	_, _ = conn.Write(bytes.Repeat([]byte{0xAB}, 32))
	_, _ = conn.Write([]byte("an event, it hopes"))
	// Closing with our unread bytes in its buffer makes the kernel reset
	// the connection: a reset is a close too.
	if n, err := io.Copy(io.Discard, conn); n != 0 || err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("after a bad proof the node sent %d bytes (%v), want to close the connection", n, err)
	}
	srv.out.waitContains(t, "relay handshake refused")
	if _, body := get(t, url+"/metrics"); !strings.Contains(body, "rumor_relay_handshake_failures_total 1") {
		t.Errorf("rumor_relay_handshake_failures_total is not 1")
	}
}

// certPair is a self-signed certificate for 127.0.0.1 with serial, and its
// key, as PEM.
func certPair(tb testing.TB, serial int64) (certPEM, keyPEM string) {
	tb.Helper()
	key := newECKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "rumor rotation test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Duration(serial) * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), ecPrivatePEM(tb, key)
}

// A renewed certificate is served on new connections without a restart,
// while a connection opened before keeps going; a pair that does not match
// (the certificate replaced before its key) keeps the good one.
func TestCertificateRotation(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	c1, k1 := certPair(t, 1)
	c2, k2 := certPair(t, 2)
	c3, k3 := certPair(t, 3)
	watchtest.Replace(t, certFile, c1)
	watchtest.Replace(t, keyFile, k1)
	cert, err := loadCertificate(certFile, keyFile, 10*time.Millisecond, time.Now, nil)
	if err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cert.get},
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})
	pool := x509.NewCertPool()
	for _, c := range []string{c1, c2, c3} {
		pool.AppendCertsFromPEM([]byte(c))
	}
	url := "https://" + ln.Addr().String() + "/"
	// serial asks on client's connection, a new one unless it has one open.
	serial := func(client *http.Client) int64 {
		t.Helper()
		resp, body := do(t, client, http.MethodGet, url, nil, "")
		if resp.StatusCode != http.StatusOK || body != "ok" {
			t.Fatalf("GET over TLS = %d %q", resp.StatusCode, body)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	newClient := func() *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 5 * time.Second}
	}
	counted := func(result string) float64 {
		var m dto.Metric
		if err := cert.reloads.WithLabelValues(result).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}

	open := newClient() // keeps its connection
	if got := serial(open); got != 1 {
		t.Fatalf("served serial %d, want 1", got)
	}
	watchtest.Replace(t, certFile, c2)
	watchtest.Replace(t, keyFile, k2)
	waitFor(t, "a new connection gets the renewed certificate", func() bool { return serial(newClient()) == 2 })
	if got := serial(open); got != 1 {
		t.Errorf("the connection opened before the renewal: serial %d, want 1 (it keeps going)", got)
	}

	// The certificate arrives before its key: the pair does not load, the
	// renewed one stays; once the key follows, the new pair is served.
	watchtest.Replace(t, certFile, c3)
	waitFor(t, "the mismatched pair counted", func() bool { serial(newClient()); return counted("error") == 1 })
	if got := serial(newClient()); got != 2 {
		t.Errorf("served serial %d with a mismatched pair, want 2", got)
	}
	watchtest.Replace(t, keyFile, k3)
	waitFor(t, "the complete new pair", func() bool { return serial(newClient()) == 3 })
	if ok, failed := counted("ok"), counted("error"); ok != 2 || failed != 1 {
		t.Errorf("rumor_tls_cert_reloads_total ok=%v error=%v, want 2 and 1", ok, failed)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(cert.collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "rumor_tls_cert_expiry_timestamp_seconds" {
			want := float64(time.Now().Add(3 * time.Hour).Unix())
			if got := mf.GetMetric()[0].GetGauge().GetValue(); got < want-60 || got > want+60 {
				t.Errorf("rumor_tls_cert_expiry_timestamp_seconds = %v, want about %v (the third certificate's)", got, want)
			}
		}
	}
}

// The key files of the flags are watched: a public key replaced by one of
// another kind is what the authenticator verifies with after a reload.
func TestAuthKeyFileFollowsRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key.pem")
	watchtest.Replace(t, path, ecPublicPEM(t, newECKey(t)))
	c, err := parseServe([]string{"--auth-public-key", path}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.authenticator(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Methods(); len(got) != 1 || got[0] != "ES256" {
		t.Fatalf("Methods() = %v, want [ES256]", got)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	watchtest.Replace(t, path, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	if err := a.Reload(t.Context()); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := a.Methods(); len(got) != 1 || got[0] != "EdDSA" {
		t.Errorf("Methods() after the rotation = %v, want [EdDSA]", got)
	}
}

// es256Token is an ES256 JWT naming kid, made by hand like token.
func es256Token(tb testing.TB, k *ecdsa.PrivateKey, kid string, claims map[string]any) string {
	tb.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	body, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	signing := enc([]byte(`{"alg":"ES256","typ":"JWT","kid":"`+kid+`"}`)) + "." + enc(body)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
	if err != nil {
		tb.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + enc(sig)
}

// `rumor serve --auth-jwks-url` fetches the identity provider's keys at
// start, and unknown kids do not make it fetch again within 30s; a
// provider that does not answer stops rumor at start.
func TestServeJWKSURL(t *testing.T) {
	k1, k2 := newECKey(t), newECKey(t)
	jwk := func(kid string, k *ecdsa.PrivateKey) string {
		return strings.Replace(ecJWK(t, k), `"kid":"k1"`, `"kid":"`+kid+`"`, 1)
	}
	var body atomic.Pointer[string]
	set := func(keys ...string) { s := `{"keys":[` + strings.Join(keys, ",") + `]}`; body.Store(&s) }
	set(jwk("k1", k1))
	var fetches atomic.Int64
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		io.WriteString(w, *body.Load())
	}))
	t.Cleanup(idp.Close)

	_, url := startServeWith(t, "http", "--auth-jwks-url", idp.URL+"/jwks")
	publish := func(k *ecdsa.PrivateKey, kid string) int {
		resp, _ := do(t, http.DefaultClient, http.MethodPost, url+"/channels/orders", http.Header{"Authorization": {"Bearer " + es256Token(t, k, kid, grant([]string{">"}, nil))}}, "x")
		return resp.StatusCode
	}
	if got := publish(k1, "k1"); got != http.StatusOK {
		t.Errorf("publish with k1 = %d, want 200", got)
	}
	if got := publish(k2, "k2"); got != http.StatusUnauthorized {
		t.Errorf("publish with k2 before the provider has it = %d, want 401", got)
	}
	// The provider adds k2. Its kid is unknown, but the fetch at start was
	// less than 30s ago: no fetch yet (web's tests move the clock past it
	// and see k2 taken).
	set(jwk("k1", k1), jwk("k2", k2))
	if got := publish(k2, "k2"); got != http.StatusUnauthorized {
		t.Errorf("publish with k2 within 30s of the last fetch = %d, want 401", got)
	}
	if got := fetches.Load(); got != 1 {
		t.Errorf("%d fetches after start and two unknown kids within 30s, want 1", got)
	}

	// A provider that is not there: rumor does not start.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	err := run(t.Context(), []string{"serve", "--http-addr", "127.0.0.1:0", "--auth-jwks-url", dead.URL + "/jwks"}, env(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--auth-jwks-url") {
		t.Errorf("serve with an unreachable JWKS URL = %v, want an error naming --auth-jwks-url", err)
	}
}

// What is left open is said at start: with auth on but no --admin-addr,
// the views (channel names of every node through /cluster/channels) and
// pprof answer on the public port, and the log warns about both; on a
// loopback address or with --admin-addr it stays quiet.
func TestLogSecurityWarnsPublicViews(t *testing.T) {
	for _, tt := range []struct {
		http, admin string
		warns       int
	}{
		{"0.0.0.0:8080", "", 2},
		{"127.0.0.1:8080", "", 0},
		{"0.0.0.0:8080", "0.0.0.0:9090", 0},
	} {
		var buf strings.Builder
		c := Config{HTTPAddr: tt.http, AdminAddr: tt.admin, Pprof: true}
		c.AuthHMACSecret = testSecret
		c.logSecurity(slog.New(slog.NewTextHandler(&buf, nil)))
		got := strings.Count(buf.String(), "level=WARN")
		if got != tt.warns || tt.warns > 0 && (!strings.Contains(buf.String(), "/cluster/channels") || !strings.Contains(buf.String(), "pprof")) {
			t.Errorf("http %s admin %q: %d warnings, want %d:\n%s", tt.http, tt.admin, got, tt.warns, buf.String())
		}
	}
}
