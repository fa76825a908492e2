package web

// These tests play attacker against a real HTTP server. Each case asserts
// the exact answer and, through a guard subscriber that sees every event
// on the node, that nothing was published that should not have been and
// nothing legitimate was lost.
//
// What is not here: the node-to-node paths. rumor has no HTTP endpoint
// between nodes; gossip and the relay share the gossip port, where
// memberlist refuses packets without the gossip key and label, and the
// relay handshake refuses a client that does not hold the key derived
// from them (transport/security_test.go: TestStrangersNeverJoin,
// TestRelayRefusesWrongKey; cmd/rumor/security_test.go runs a bad
// handshake against a real `rumor serve`).

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/broker"
)

// Limits of the fortress: small, so that the tests reach them cheaply.
const (
	fortressEventBytes = 1 << 10
	fortressBatch      = 8
	fortressPatterns   = 4
)

// fortress is a node as an attacker meets it: auth on, small limits, and a
// guard stream that sees every event.
type fortress struct {
	*testServer
	guard *sseStream
	admin string // a token that may publish and subscribe anything
	sign  func(tb testing.TB, c jwt.Claims) string
	seq   int // sentinels published so far
}

// newFortress starts a fortress whose tokens sign signs; o's auth and
// limits are filled in.
func newFortress(tb testing.TB, ac auth.Config, sign func(testing.TB, jwt.Claims) string, o Options) *fortress {
	tb.Helper()
	ac.Public = append(ac.Public, "news", "status.>")
	o.Auth = newAuth(tb, ac)
	o.MaxEventBytes = fortressEventBytes
	o.MaxBatch = fortressBatch
	o.MaxPatterns = fortressPatterns
	f := &fortress{testServer: newServer(tb, broker.Options{}, o), sign: sign}
	f.admin = sign(tb, claims([]string{">"}, []string{">"}, time.Hour))
	f.guard = f.openStream(tb, "/channels/%3E", f.bearer(f.admin))
	return f
}

func newHS256Fortress(tb testing.TB, o Options) *fortress {
	tb.Helper()
	return newFortress(tb, auth.Config{HMACSecret: []byte(testSecret)}, hs256, o)
}

func (f *fortress) token(tb testing.TB, publish, subscribe []string) string {
	tb.Helper()
	return f.sign(tb, claims(publish, subscribe, time.Hour))
}

func (f *fortress) bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// noLeaks publishes a sentinel and checks that the guard saw exactly the
// events with data want before it, in order.
func (f *fortress) noLeaks(tb testing.TB, want ...string) {
	tb.Helper()
	f.seq++
	sentinel := "sentinel-" + strconv.Itoa(f.seq)
	if a := f.do(tb, http.MethodPost, "/channels/zz.sentinel", f.bearer(f.admin), sentinel); a.status != http.StatusOK {
		tb.Fatalf("publishing the sentinel = %d %s", a.status, a.body)
	}
	var got []string
	for {
		ev, err := f.guard.next()
		if err != nil {
			tb.Fatalf("guard stream: %v (got %q)", err, got)
		}
		if ev.Data == sentinel {
			break
		}
		got = append(got, ev.Data)
	}
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		tb.Errorf("the node published %q, want exactly %q", got, want)
	}
}

// wantAuthError checks a 401 or 403 answer: JSON, the WWW-Authenticate
// header, and a message.
func wantAuthError(tb testing.TB, what string, a answer, status int, msg string) {
	tb.Helper()
	wantError(tb, what, a, status)
	if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer ") {
		tb.Errorf("%s: WWW-Authenticate = %q, want a Bearer challenge", what, a.header.Get("WWW-Authenticate"))
	}
	var e errorBody
	if err := json.Unmarshal([]byte(a.body), &e); err != nil || !strings.Contains(e.Error, msg) {
		tb.Errorf("%s: error %q does not say %q", what, e.Error, msg)
	}
}

func TestAttackTokens(t *testing.T) {
	f := newHS256Fortress(t, Options{})
	orders := f.token(t, []string{"orders.>"}, []string{"orders.*"})
	now := time.Now()
	claimsWith := func(k string, v any) jwt.MapClaims {
		c := claims([]string{">"}, []string{">"}, time.Hour)
		c[k] = v
		return c
	}
	// A token whose grants were widened after signing: the payload says
	// ">" but the signature is the orders token's.
	parts := strings.Split(orders, ".")
	widened, _ := json.Marshal(claims([]string{">"}, []string{">"}, time.Hour))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(widened) + "." + parts[2]

	for _, tt := range []struct {
		name, token, msg string
	}{
		{"forged with another secret", sign(t, jwt.SigningMethodHS256, []byte("an attacker's guess of the secret"), claims([]string{">"}, []string{">"}, time.Hour), nil), "signature invalid"},
		{"widened after signing", tampered, "signature invalid"},
		{"expired", hs256(t, claimsWith("exp", now.Add(-time.Minute).Unix())), "token expired"},
		{"not yet valid", hs256(t, claimsWith("nbf", now.Add(time.Hour).Unix())), "not valid yet"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims([]string{">"}, []string{">"}, time.Hour), nil), `"none" not accepted`},
		{"alg none, no signature part", strings.Join(strings.Split(sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims([]string{">"}, []string{">"}, time.Hour), nil), ".")[:2], "."), "malformed"},
		{"garbage", "garbage", "malformed"},
		// RFC 7519: exp, nbf and iat are NumericDates, JSON numbers.
		{"exp as a string", hs256(t, claimsWith("exp", strconv.FormatInt(now.Add(time.Hour).Unix(), 10))), "exp must be a NumericDate"},
		{"nbf as a string", hs256(t, claimsWith("nbf", strconv.FormatInt(now.Add(-time.Hour).Unix(), 10))), "nbf must be a NumericDate"},
		{"iat as a string", hs256(t, claimsWith("iat", strconv.FormatInt(now.Unix(), 10))), "iat must be a NumericDate"},
		{"exp as an object", hs256(t, claimsWith("exp", map[string]int{"n": 1})), "exp must be a NumericDate"},
	} {
		h := f.bearer(tt.token)
		wantAuthError(t, tt.name+": publish", f.do(t, http.MethodPost, "/channels/orders.eu", h, "x"), http.StatusUnauthorized, tt.msg)
		wantAuthError(t, tt.name+": batch", f.do(t, http.MethodPost, "/publish", h, `[{"channel":"orders.eu","data":"x"}]`), http.StatusUnauthorized, tt.msg)
		wantAuthError(t, tt.name+": stream", f.do(t, http.MethodGet, "/channels/orders.eu", h, ""), http.StatusUnauthorized, tt.msg)
		wantAuthError(t, tt.name+": public stream", f.do(t, http.MethodGet, "/channels/news", h, ""), http.StatusUnauthorized, tt.msg)
	}

	// No token at all: publishing needs one; a public channel does not.
	wantAuthError(t, "publish without a token", f.do(t, http.MethodPost, "/channels/news", nil, "x"), http.StatusUnauthorized, "a token is required to publish")
	wantAuthError(t, "stream without a token", f.do(t, http.MethodGet, "/channels/orders.eu", nil, ""), http.StatusUnauthorized, "a token is required to subscribe")
	wantAuthError(t, "?token= while disabled", f.do(t, http.MethodPost, "/channels/orders.eu?token="+url.QueryEscape(orders), nil, "x"), http.StatusUnauthorized, "disabled")
	wantAuthError(t, "Basic auth", f.do(t, http.MethodPost, "/channels/orders.eu", http.Header{"Authorization": {"Basic YWRtaW46YWRtaW4="}}, "x"), http.StatusUnauthorized, "want Bearer")
	f.openStream(t, "/channels/news", nil)
	f.openStream(t, "/events?channel=news&channel=status.eu.db&channel=status.>", nil)

	if got := f.metric(t, "rumor_auth_failures_total", map[string]string{"reason": auth.ReasonExpired}); got != 8 {
		t.Errorf("rumor_auth_failures_total{reason=expired} = %v, want 8", got)
	}
	if got := f.metric(t, "rumor_publish_errors_total", map[string]string{"reason": "unauthorized"}); got < 15 {
		t.Errorf("rumor_publish_errors_total{reason=unauthorized} = %v, want every refused publish", got)
	}
	f.noLeaks(t)
}

// The algorithm-confusion attack against a node that verifies RS256: an
// HS256 token "signed" with the node's public key, which anyone can have.
func TestAttackAlgorithmConfusion(t *testing.T) {
	key := rsaKey(t, "rsa.key")
	f := newFortress(t, auth.Config{PublicKeyPEM: testdata(t, "rsa.pub")}, func(tb testing.TB, c jwt.Claims) string {
		return sign(tb, jwt.SigningMethodRS256, key, c, nil)
	}, Options{})
	everything := claims([]string{">"}, []string{">"}, time.Hour)
	for _, tt := range []struct{ name, token, msg string }{
		{"HS256 with the public key PEM", sign(t, jwt.SigningMethodHS256, testdata(t, "rsa.pub"), everything, nil), `"HS256" not accepted`},
		{"HS256 with the public key DER", sign(t, jwt.SigningMethodHS256, pemBody(t, testdata(t, "rsa.pub")), everything, nil), `"HS256" not accepted`},
		{"none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, everything, nil), `"none" not accepted`},
		{"RS256 by another key", sign(t, jwt.SigningMethodRS256, rsaKey(t, "rsa-other.key"), everything, nil), "signature invalid"},
		{"ES256", sign(t, jwt.SigningMethodES256, ecKey(t), everything, nil), `"ES256" not accepted`},
	} {
		wantAuthError(t, tt.name+": publish", f.do(t, http.MethodPost, "/channels/orders", f.bearer(tt.token), "x"), http.StatusUnauthorized, tt.msg)
		wantAuthError(t, tt.name+": stream", f.do(t, http.MethodGet, "/channels/orders", f.bearer(tt.token), ""), http.StatusUnauthorized, tt.msg)
	}
	good := f.token(t, []string{"orders"}, nil)
	if a := f.do(t, http.MethodPost, "/channels/orders", f.bearer(good), "legit"); a.status != http.StatusOK {
		t.Fatalf("RS256 publish = %d %s", a.status, a.body)
	}
	f.noLeaks(t, "legit")
}

func pemBody(tb testing.TB, b []byte) []byte {
	tb.Helper()
	s := string(b)
	s = s[strings.Index(s, "\n")+1 : strings.LastIndex(strings.TrimSpace(s), "\n")]
	der, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(s, "\n", ""))
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// Grants are per channel: a token for orders cannot reach payments, and no
// pattern widens a grant.
func TestAttackGrants(t *testing.T) {
	f := newHS256Fortress(t, Options{})
	tok := f.token(t, []string{"orders.>"}, []string{"orders.*", "chat.room1"})
	h := f.bearer(tok)

	wantAuthError(t, "publish to another channel", f.do(t, http.MethodPost, "/channels/payments", h, "x"), http.StatusForbidden, `publish to "payments"`)
	wantAuthError(t, "publish to the grant's prefix", f.do(t, http.MethodPost, "/channels/orders", h, "x"), http.StatusForbidden, `publish to "orders"`)
	wantAuthError(t, "publish to a public channel", f.do(t, http.MethodPost, "/channels/news", h, "x"), http.StatusForbidden, `publish to "news"`)
	wantAuthError(t, "a batch with one foreign channel", f.do(t, http.MethodPost, "/publish", h,
		`[{"channel":"orders.eu","data":"x"},{"channel":"payments","data":"y"}]`), http.StatusForbidden, `"payments"`)

	for _, p := range []string{
		"orders.%3E",      // orders.> with grant orders.*
		"%3E",             // > alone
		"*.secret",        // a wildcard in front
		"*",               // every one-token channel
		"orders.*.*",      // deeper than the grant
		"chat.*",          // wider than chat.room1
		"payments",        // another channel
		"news.%3E",        // wider than the public news
		"orders.eu.%3E",   // deeper than orders.*
		"orders.eu.paid",  // a channel orders.* does not match
		"status",          // public status.> does not cover status itself
		"orders.*%2Enews", // an encoded dot: orders.*.news
	} {
		wantAuthError(t, "stream "+p, f.do(t, http.MethodGet, "/channels/"+p, h, ""), http.StatusForbidden, "does not grant subscribe")
	}
	wantAuthError(t, "one bad pattern among good ones", f.do(t, http.MethodGet, "/events?channel=orders.eu&channel=news&channel=%3E", h, ""),
		http.StatusForbidden, `subscribe to ">"`)

	// What the token grants works, and a stream gets only its channels.
	s := f.openStream(t, "/events?channel=orders.*&channel=news&channel=chat.room1", h)
	if a := f.do(t, http.MethodPost, "/publish", h, `[{"channel":"orders.eu","data":"one"},{"channel":"orders.us.paid","data":"two"}]`); a.status != http.StatusOK {
		t.Fatalf("granted batch = %d %s", a.status, a.body)
	}
	if a := f.do(t, http.MethodPost, "/channels/payments", f.bearer(f.admin), "secret"); a.status != http.StatusOK {
		t.Fatalf("admin publish = %d %s", a.status, a.body)
	}
	if a := f.do(t, http.MethodPost, "/channels/news", f.bearer(f.admin), "headline"); a.status != http.StatusOK {
		t.Fatalf("admin publish = %d %s", a.status, a.body)
	}
	for i, ev := range s.read(t, 2) {
		if want := []string{"one", "headline"}[i]; ev.Data != want {
			t.Errorf("granted stream event %d = %q, want %q (orders.us.paid and payments are not its channels)", i, ev.Data, want)
		}
	}
	if got := f.metric(t, "rumor_auth_failures_total", map[string]string{"reason": auth.ReasonForbidden}); got != 17 {
		t.Errorf("rumor_auth_failures_total{reason=forbidden} = %v, want 17", got)
	}
	f.noLeaks(t, "one", "two", "secret", "headline")
}

// A token in a cookie is what a browser's EventSource sends. It may open
// streams from anywhere (a foreign page cannot read them without CORS), but
// it publishes only from this origin or an allowed one: a form on another
// site cannot publish in the user's name.
func TestAttackCookieCSRF(t *testing.T) {
	f := newHS256Fortress(t, Options{CORSOrigins: []string{"https://app.example.com"}})
	tok := f.token(t, []string{"orders.>"}, []string{"orders.*"})
	cookie := func(origin string) http.Header {
		h := http.Header{"Cookie": {auth.DefaultCookie + "=" + tok}}
		if origin != "" {
			h.Set("Origin", origin)
		}
		return h
	}
	wantAuthError(t, "POST from a foreign origin", f.do(t, http.MethodPost, "/channels/orders.eu", cookie("https://evil.example"), "csrf"), http.StatusForbidden, "cookie")
	wantAuthError(t, "batch from a foreign origin", f.do(t, http.MethodPost, "/publish", cookie("https://evil.example"), `[{"channel":"orders.eu","data":"csrf"}]`), http.StatusForbidden, "cookie")
	wantAuthError(t, "POST without Origin", f.do(t, http.MethodPost, "/channels/orders.eu", cookie(""), "csrf"), http.StatusForbidden, "cookie")
	wantAuthError(t, "POST from Origin null", f.do(t, http.MethodPost, "/channels/orders.eu", cookie("null"), "csrf"), http.StatusForbidden, "cookie")
	// This node's host with another scheme, port or a user is another origin.
	host := strings.TrimPrefix(f.URL, "http://")
	hostname, _, _ := net.SplitHostPort(host)
	for _, origin := range []string{"https://" + host, "ftp://" + host, "http://u@" + host, "http://" + hostname + ":1", "http://" + hostname, "http://" + host + "/path", "http://" + host + ".evil.example"} {
		wantAuthError(t, "POST from "+origin, f.do(t, http.MethodPost, "/channels/orders.eu", cookie(origin), "csrf"), http.StatusForbidden, "cookie")
	}
	for _, origin := range []string{f.URL, "https://app.example.com"} {
		if a := f.do(t, http.MethodPost, "/channels/orders.eu", cookie(origin), "from "+origin); a.status != http.StatusOK {
			t.Errorf("POST with the cookie from %s = %d %s, want 200", origin, a.status, a.body)
		}
	}
	s := f.openStream(t, "/channels/orders.eu", cookie("https://evil.example"))
	if got := s.resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("stream for a foreign origin: Access-Control-Allow-Origin = %q, want none, so its page cannot read it", got)
	}
	f.noLeaks(t, "from "+f.URL, "from https://app.example.com")
}

// CR, LF and NUL in every field a client controls: refused with 400, or for
// the data, carried without adding a field.
func TestAttackInjection(t *testing.T) {
	f := newHS256Fortress(t, Options{})
	admin := f.bearer(f.admin)
	for _, ch := range []string{"a%0Ab", "a%0D%0Aevent:%20x", "a%00b", "a%0D", "a.%0A", "%0A", "a%09b", "a%20b", "a%C3%A9"} {
		wantError(t, "POST /channels/"+ch, f.do(t, http.MethodPost, "/channels/"+ch, admin, "x"), http.StatusBadRequest)
		wantError(t, "GET /channels/"+ch, f.do(t, http.MethodGet, "/channels/"+ch, admin, ""), http.StatusBadRequest)
		wantError(t, "GET /events?channel="+ch, f.do(t, http.MethodGet, "/events?channel="+ch, admin, ""), http.StatusBadRequest)
	}
	for _, ch := range []string{"a\nb", "a\r\nevent: x", "a\u0000b", "a b", ""} {
		body, _ := json.Marshal([]batchItem{{Channel: "ok", Data: "x"}, {Channel: ch, Data: "x"}})
		wantError(t, "batch channel "+strconv.Quote(ch), f.do(t, http.MethodPost, "/publish", admin, string(body)), http.StatusBadRequest)
	}
	for _, typ := range []string{"x%0Aid:%201", "x%0D%0Adata:%20y", "x%00", "x%20y", "rumor.reset"} {
		wantError(t, "?event="+typ, f.do(t, http.MethodPost, "/channels/ok?event="+typ, admin, "x"), http.StatusBadRequest)
	}
	body, _ := json.Marshal([]batchItem{{Channel: "ok", Event: "x\nid: 1", Data: "x"}})
	wantError(t, "batch event type with LF", f.do(t, http.MethodPost, "/publish", admin, string(body)), http.StatusBadRequest)
	for _, key := range []string{"a\tb", "a\xffb", strings.Repeat("k", maxKeyLen+1)} {
		h := f.bearer(f.admin)
		h.Set("Idempotency-Key", key)
		wantError(t, "Idempotency-Key "+strconv.Quote(key), f.do(t, http.MethodPost, "/channels/ok", h, "x"), http.StatusBadRequest)
	}
	wantError(t, "?lastEventId with LF", f.do(t, http.MethodGet, "/channels/ok?lastEventId=x%0Aevent:%20evil", admin, ""), http.StatusBadRequest)

	// Bytes net/http refuses before rumor sees them: 400 from the server.
	addr := f.Listener.Addr().String()
	for _, hdr := range []string{
		"Idempotency-Key: a\x00b", "Idempotency-Key: a\rb", "Last-Event-ID: x\x00y", "Last-Event-ID: x\ry", "Authorization: Bearer a\x00b",
	} {
		req := "POST /channels/ok HTTP/1.1\r\nHost: rumor\r\n" + hdr + "\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
		if got := rawRequest(t, addr, req); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
			t.Errorf("header %q: %s, want 400", hdr, got)
		}
	}
	// An LF splits a header in two: two keys are refused.
	req := "POST /channels/ok HTTP/1.1\r\nHost: rumor\r\nAuthorization: Bearer " + f.admin + "\r\nIdempotency-Key: a\nIdempotency-Key: b\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
	if got := rawRequest(t, addr, req); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
		t.Errorf("Idempotency-Key split by LF: %s, want 400", got)
	}

	// A malformed Last-Event-ID header still gets a stream (a browser never
	// retries a 400), with a reset whose id is empty, not the header echoed.
	for _, v := range []string{"x\ty", "x\xffy", "0194d0e5c3a70000-8f3c2a1b4d5e6f70-1\tevent: evil"} {
		h := f.bearer(f.admin)
		h.Set("Last-Event-ID", v)
		s := f.openStream(t, "/channels/ok", h)
		ev := s.read(t, 1)[0]
		if ev.Type != broker.ResetType || ev.Data != `{"lastEventId":""}` || strings.Join(ev.Fields, ",") != "event,data" {
			t.Errorf("Last-Event-ID %q: first event %+v, want a reset with an empty id", v, ev)
		}
	}

	// Data is anyone's bytes: it arrives whole and adds no field.
	payload := "a\r\nevent: evil\r\nid: 1\n\ndata: x\x00y\rretry: 1"
	if a := f.do(t, http.MethodPost, "/channels/ok", admin, payload); a.status != http.StatusOK {
		t.Fatalf("publish a hostile payload = %d %s", a.status, a.body)
	}
	f.noLeaks(t, normalize(payload))
}

// Bodies too large, malformed or trickled: a clear error, nothing stored.
func TestAttackBodies(t *testing.T) {
	f := newHS256Fortress(t, Options{ReadBodyTimeout: 300 * time.Millisecond})
	admin := f.bearer(f.admin)
	post := func(path, body string) answer { return f.do(t, http.MethodPost, path, admin, body) }
	big := strings.Repeat("x", fortressEventBytes+1)
	wantError(t, "data over the limit", post("/channels/ok", big), http.StatusRequestEntityTooLarge)
	wantError(t, "batch over four times the limit", post("/publish", `[{"channel":"ok","data":"`+strings.Repeat("x", batchBodyFactor*fortressEventBytes)+`"}]`), http.StatusRequestEntityTooLarge)
	wantError(t, "batch item over the limit", post("/publish", `[{"channel":"ok","data":"`+big+`"}]`), http.StatusRequestEntityTooLarge)

	// Without Content-Length (chunked), the limit holds while reading.
	req, _ := http.NewRequest(http.MethodPost, f.URL+"/channels/ok", io.MultiReader(strings.NewReader(big), strings.NewReader("more")))
	req.Header = f.bearer(f.admin)
	resp, err := f.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over the limit = %d, want 413", resp.StatusCode)
	}

	items := make([]string, fortressBatch+1)
	for i := range items {
		items[i] = `{"channel":"ok","data":"x"}`
	}
	for _, tt := range []struct{ name, body string }{
		{"not JSON", "[{"},
		{"not an array", `{"channel":"ok","data":"x"}`},
		{"unknown field", `[{"channel":"ok","data":"x","admin":true}]`},
		{"data not a string", `[{"channel":"ok","data":{"x":1}}]`},
		{"data after the array", `[{"channel":"ok","data":"x"}] [{"channel":"ok","data":"y"}]`},
		{"empty batch", `[]`},
		{"empty data", `[{"channel":"ok","data":""}]`},
		{"too many items", "[" + strings.Join(items, ",") + "]"},
		{"deep nesting", strings.Repeat("[", 2000)},
	} {
		wantError(t, tt.name, post("/publish", tt.body), http.StatusBadRequest)
	}
	wantError(t, "empty data", post("/channels/ok", ""), http.StatusBadRequest)
	wantError(t, "invalid UTF-8 data", post("/channels/ok", "\xff\xfe"), http.StatusBadRequest)
	wantError(t, "channel too long", post("/channels/"+strings.Repeat("a", broker.MaxChannelLen+1), "x"), http.StatusBadRequest)
	wantError(t, "too many tokens", post("/channels/"+strings.Repeat("a.", broker.MaxChannelParts)+"a", "x"), http.StatusBadRequest)
	wantError(t, "too many patterns", f.do(t, http.MethodGet, "/events?channel=a&channel=b&channel=c&channel=d&channel=e", admin, ""), http.StatusBadRequest)
	wantError(t, "PUT", f.do(t, http.MethodPut, "/channels/ok", admin, "x"), http.StatusMethodNotAllowed)
	wantError(t, "DELETE", f.do(t, http.MethodDelete, "/channels/ok", admin, ""), http.StatusMethodNotAllowed)

	// A publisher that trickles its body is cut at the body deadline and
	// does not keep its publish slot.
	conn, err := net.DialTimeout("tcp", f.Listener.Addr().String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(testTimeout))
	start := time.Now()
	_, _ = io.WriteString(conn, "POST /channels/ok HTTP/1.1\r\nHost: rumor\r\nAuthorization: Bearer "+f.admin+"\r\nContent-Length: 100\r\n\r\nx")
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("trickled body: %v, want 400", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(b), "127.0.0.1") || !strings.Contains(string(b), "did not arrive in time") {
		t.Errorf("trickled body: %d %s, want 400 saying it was late, without internal addresses", resp.StatusCode, b)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("trickled body answered after %v, want about the 300ms body timeout", d)
	}
	if n := f.h.inflight.Load(); n != 0 {
		t.Errorf("%d publishes in flight after the trickler was cut, want 0", n)
	}
	// encoding/json turns invalid UTF-8 inside a JSON string into U+FFFD:
	// what is stored is valid UTF-8, never the raw bytes.
	if a := post("/publish", "[{\"channel\":\"ok\",\"data\":\"\xff\xfe\"}]"); a.status != http.StatusOK {
		t.Errorf("batch with invalid UTF-8 in a JSON string = %d %s, want 200 with U+FFFD", a.status, a.body)
	}
	f.noLeaks(t, "\uFFFD\uFFFD")
}

// A header larger than MaxHeaderBytes gets 431, whoever sends it.
func TestAttackHeaderSize(t *testing.T) {
	ts := startServer(t, broker.Options{}, Options{}, func(h http.Handler) *httptest.Server {
		srv := httptest.NewUnstartedServer(h)
		srv.Config.MaxHeaderBytes = 1 << 10 // net/http allows 4 KiB more
		srv.Start()
		return srv
	})
	req := "GET /healthz HTTP/1.1\r\nHost: rumor\r\nX-Pad: " + strings.Repeat("p", 8<<10) + "\r\n\r\n"
	if got := rawRequest(t, ts.Listener.Addr().String(), req); !strings.HasPrefix(got, "HTTP/1.1 431 ") {
		t.Errorf("8 KiB header: %s, want 431", got)
	}
	if a := ts.do(t, http.MethodGet, "/healthz", nil, ""); a.status != http.StatusOK {
		t.Errorf("a normal request after it = %d", a.status)
	}
}

// A client that sends its headers a byte at a time (slowloris) is cut at
// ReadHeaderTimeout, while everyone else is served.
func TestAttackSlowloris(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ts := startServer(t, broker.Options{}, Options{}, func(h http.Handler) *httptest.Server {
		srv := httptest.NewUnstartedServer(h)
		srv.Config.ReadHeaderTimeout = timeout
		srv.Start()
		return srv
	})
	conn, err := net.DialTimeout("tcp", ts.Listener.Addr().String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // a byte every 20ms: the whole header would take 20s
		header := "GET /channels/slow HTTP/1.1\r\nHost: rumor\r\nX-Slow: " + strings.Repeat("s", 1000)
		for i := range len(header) {
			if _, err := conn.Write([]byte{header[i]}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	cut := make(chan time.Duration, 1)
	go func() {
		// net/http answers a header cut off mid-line with 400 and closes
		// the connection.
		_ = conn.SetReadDeadline(time.Now().Add(testTimeout))
		b, _ := io.ReadAll(conn)
		if !strings.HasPrefix(string(b), "HTTP/1.1 400 ") {
			t.Errorf("the slowloris client got %q, want 400 and the end", b)
		}
		cut <- time.Since(start)
	}()
	// Everyone else is served meanwhile.
	if a := ts.do(t, http.MethodGet, "/healthz", nil, ""); a.status != http.StatusOK {
		t.Errorf("healthz during the slowloris = %d", a.status)
	}
	if d := <-cut; d < timeout-50*time.Millisecond || d > timeout+2*time.Second {
		t.Errorf("slowloris cut after %v, want about ReadHeaderTimeout %v", d, timeout)
	}
	if ts.h.openStreams() != 0 {
		t.Errorf("%d streams open, want 0: the slow request never reached the handler", ts.h.openStreams())
	}
}

// A subscriber that never reads is cut off, and neither the publisher nor
// the other subscribers notice.
func TestAttackNonReader(t *testing.T) {
	auth := newAuth(t, auth.Config{HMACSecret: []byte(testSecret)})
	ts := startServer(t, broker.Options{QueueSize: 16}, Options{Auth: auth, WriteTimeout: 500 * time.Millisecond}, func(h http.Handler) *httptest.Server {
		srv := httptest.NewUnstartedServer(h)
		srv.Listener = &slowListener{Listener: srv.Listener}
		srv.Start()
		return srv
	})
	tok := hs256(t, claims([]string{">"}, []string{">"}, time.Hour))
	conn, err := net.DialTimeout("tcp", ts.Listener.Addr().String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	_, _ = io.WriteString(conn, "GET /channels/feed HTTP/1.1\r\nHost: rumor\r\nAuthorization: Bearer "+tok+"\r\n\r\n")
	h := http.Header{"Authorization": {"Bearer " + tok}}
	waitFor(t, "the non-reader's stream", func() bool { return ts.h.openStreams() == 1 })
	reader := ts.openStream(t, "/channels/feed", h)

	// Publish in rounds, each waiting for the reader, so that a loaded
	// machine does not make the reader slow too.
	const n, round = 320, 16
	payload := strings.Repeat("z", 16<<10)
	start := time.Now()
	for i := 0; i < n; i += round {
		for j := i; j < i+round; j++ {
			if a := ts.do(t, http.MethodPost, "/channels/feed?ack=local", h, strconv.Itoa(j)+" "+payload); a.status != http.StatusOK {
				t.Fatalf("publish %d = %d %s", j, a.status, a.body)
			}
		}
		for j := i; j < i+round; j++ {
			ev, err := reader.next()
			if err != nil || !strings.HasPrefix(ev.Data, strconv.Itoa(j)+" ") {
				t.Fatalf("the reading subscriber's event %d: %q %v", j, clip(ev.Data), err)
			}
		}
	}
	if d := time.Since(start); d > testTimeout/2 {
		t.Errorf("%d publishes took %v: the non-reader slowed everyone", n, d)
	}
	waitFor(t, "the non-reader to be cut", func() bool { return ts.h.openStreams() == 1 })
	slow := ts.metric(t, "rumor_streams_ended_total", map[string]string{"reason": endSlow})
	write := ts.metric(t, "rumor_streams_ended_total", map[string]string{"reason": endWrite})
	if slow+write != 1 {
		t.Errorf("streams ended slow %v + write %v, want the one non-reader", slow, write)
	}
}

// Many streams from one address hit the per-client limit; other clients,
// told apart by a trusted proxy's X-Forwarded-For, are unaffected, and a
// client that reaches the node directly cannot fake the header.
func TestAttackStreamFlood(t *testing.T) {
	const limit = 3
	t.Run("direct", func(t *testing.T) {
		ts := newServer(t, broker.Options{}, Options{MaxStreamsPerClient: limit})
		for i := range limit {
			ts.openStream(t, "/channels/flood"+strconv.Itoa(i), nil)
		}
		for i := range 3 {
			spoof := http.Header{"X-Forwarded-For": {"198.51.100." + strconv.Itoa(i+1)}}
			if _, comment := readShed(t, ts, "/channels/more", spoof); !strings.Contains(comment, "from your address") {
				t.Errorf("stream %d over the limit: comment %q", limit+i, comment)
			}
		}
		if got := ts.metric(t, "rumor_streams_rejected_total", map[string]string{"reason": rejectClientLimit}); got != 3 {
			t.Errorf("rumor_streams_rejected_total{reason=client_limit} = %v, want 3", got)
		}
	})
	t.Run("behind a trusted proxy", func(t *testing.T) {
		ts := newServer(t, broker.Options{}, Options{MaxStreamsPerClient: limit, TrustedProxies: []string{"127.0.0.1/32"}})
		via := func(client string) http.Header { return http.Header{"X-Forwarded-For": {client}} }
		for i := range limit {
			ts.openStream(t, "/channels/flood"+strconv.Itoa(i), via("198.51.100.1"))
		}
		readShed(t, ts, "/channels/more", via("198.51.100.1"))
		// The attacker prepends addresses; the proxy appends the real one.
		readShed(t, ts, "/channels/more", via("203.0.113.9, 198.51.100.1"))
		for i := range limit {
			ts.openStream(t, "/channels/other"+strconv.Itoa(i), via("198.51.100.2"))
		}
	})
}

// rumor has no HTTP endpoint between nodes: nothing an outsider could call
// to join, inject or read another node's state beyond the documented
// read-only views.
func TestAttackNoNodeEndpoints(t *testing.T) {
	f := newHS256Fortress(t, Options{})
	for _, p := range []string{"/relay", "/internal/publish", "/cluster/join", "/gossip", "/deliver", "/replicate", "/debug/pprof/", "/admin"} {
		a := f.do(t, http.MethodPost, p, nil, `{"id":"x"}`)
		if a.status != http.StatusNotFound && a.status != http.StatusMethodNotAllowed {
			t.Errorf("POST %s = %d, want 404 or 405", p, a.status)
		}
	}
	for _, p := range []string{"/cluster", "/node", "/channels", "/healthz", "/readyz"} {
		wantError(t, "POST "+p, f.do(t, http.MethodPost, p, nil, "x"), http.StatusMethodNotAllowed)
	}
	f.noLeaks(t)
}

// FuzzBatch: no body panics readBatch; what it accepts is within the
// limits, carries the idempotency key per item, and reads back the same
// when encoded again.
func FuzzBatch(f *testing.F) {
	for _, s := range []string{
		`[{"channel":"a","data":"x"}]`,
		`[{"channel":"a","event":"t","data":"x\ny"},{"channel":"b.c","data":"{\"k\":1}"}]`,
		`[]`, `[{}]`, `[{"channel":1}]`, `[{"channel":"a","data":"x"}] x`, `[{"channel":"a","data":"x","extra":1}]`,
		"[{\"channel\":\"a\",\"data\":\"\xff\"}]", `[` + strings.Repeat(`{"channel":"a","data":"x"},`, fortressBatch) + `{"channel":"a","data":"x"}]`,
	} {
		f.Add([]byte(s))
	}
	h := &Handler{opts: Options{MaxEventBytes: fortressEventBytes, MaxBatch: fortressBatch}}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/publish", strings.NewReader(string(body)))
		r.Header.Set("Idempotency-Key", "k")
		msgs, _, err := h.readBatch(httptest.NewRecorder(), r)
		if err != nil {
			var re requestError
			if !errors.As(err, &re) {
				t.Fatalf("readBatch error %v is not a client error", err)
			}
			return
		}
		if len(msgs) == 0 || len(msgs) > fortressBatch {
			t.Fatalf("readBatch accepted %d messages", len(msgs))
		}
		items := make([]batchItem, len(msgs))
		for i, m := range msgs {
			if len(m.Data) > fortressEventBytes {
				t.Errorf("message %d: %d bytes of data accepted", i, len(m.Data))
			}
			if m.Key != "k"+batchKeySep+strconv.Itoa(i) {
				t.Errorf("message %d: key %q", i, m.Key)
			}
			items[i] = batchItem{Channel: m.Channel, Event: m.Type, Data: string(m.Data)}
		}
		again, _ := json.Marshal(items)
		r = httptest.NewRequest(http.MethodPost, "/publish", strings.NewReader(string(again)))
		msgs2, _, err := h.readBatch(httptest.NewRecorder(), r)
		if err != nil || len(msgs2) != len(msgs) {
			t.Fatalf("re-encoded batch %s: %d messages, %v", again, len(msgs2), err)
		}
		for i := range msgs {
			if msgs[i].Channel != msgs2[i].Channel || msgs[i].Type != msgs2[i].Type || string(msgs[i].Data) != string(msgs2[i].Data) {
				t.Errorf("message %d changed on a round trip: %+v, then %+v", i, msgs[i], msgs2[i])
			}
		}
	})
}

// Idempotency keys belong to their publisher: another token that sends the
// same key publishes its own event, neither suppressed as a replay nor
// told the first one's id.
func TestAttackIdempotencyKeys(t *testing.T) {
	f := newHS256Fortress(t, Options{})
	as := func(sub string) http.Header {
		c := claims([]string{"orders.>"}, nil, time.Hour)
		c["sub"] = sub
		h := f.bearer(f.sign(t, c))
		h.Set("Idempotency-Key", "order-42")
		return h
	}
	first := f.do(t, http.MethodPost, "/channels/orders.eu", as("victim"), "victim's")
	squat := f.do(t, http.MethodPost, "/channels/orders.eu", as("attacker"), "attacker's")
	retry := f.do(t, http.MethodPost, "/channels/orders.eu", as("victim"), "victim's retry")
	for _, a := range []answer{first, squat, retry} {
		if a.status != http.StatusOK {
			t.Fatalf("publish = %d %s", a.status, a.body)
		}
	}
	var p1, p2, p3 published
	decode(t, first.body, &p1)
	decode(t, squat.body, &p2)
	decode(t, retry.body, &p3)
	if p2.ID == p1.ID || squat.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("another subject's key replayed the victim's publish: %s, %s", p1.ID, p2.ID)
	}
	if p3.ID != p1.ID || retry.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the victim's retry = %s (replayed %q), want %s replayed", p3.ID, retry.header.Get("Idempotent-Replayed"), p1.ID)
	}
	f.noLeaks(t, "victim's", "attacker's")
}

// Publishers without a token cost nothing: each is refused with 401 before
// its body is read, takes no publish slot, and its connection is closed
// rather than drained, so that more of them than MaxPublishes, each holding
// a body open, neither wait for their answer nor lock valid publishers out.
func TestAttackTokenlessBodies(t *testing.T) {
	const slots = 4
	f := newHS256Fortress(t, Options{MaxPublishes: slots, ReadBodyTimeout: testTimeout})
	for _, path := range []string{"/publish", "/channels/orders"} {
		var conns []*bufio.Reader
		for i := range 2 * slots {
			conn, err := net.DialTimeout("tcp", f.Listener.Addr().String(), testTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(testTimeout))
			// A body announced at the batch limit, of which only its first
			// byte ever comes.
			if _, err := io.WriteString(conn, "POST "+path+" HTTP/1.1\r\nHost: rumor\r\nContent-Length: "+
				strconv.Itoa(batchBodyFactor*fortressEventBytes)+"\r\n\r\n["); err != nil {
				t.Fatalf("holder %d: %v", i, err)
			}
			conns = append(conns, bufio.NewReader(conn))
		}
		for i, br := range conns {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("POST %s holder %d: %v, want 401 before the body", path, i, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
				t.Errorf("POST %s holder %d = %d (close %v), want 401 and the connection closed", path, i, resp.StatusCode, resp.Close)
			}
		}
		if n := f.h.inflight.Load(); n != 0 {
			t.Errorf("POST %s: %d publishes in flight with only tokenless holders, want 0", path, n)
		}
		// The holders are still connected: valid publishers are served.
		if a := f.do(t, http.MethodPost, "/publish", f.bearer(f.admin), `[{"channel":"ok","data":"`+path+`"}]`); a.status != http.StatusOK {
			t.Errorf("valid batch while tokenless bodies are held = %d %s", a.status, a.body)
		}
	}
	if got := f.metric(t, "rumor_publish_errors_total", map[string]string{"reason": "unauthorized"}); got != 4*slots {
		t.Errorf("rumor_publish_errors_total{reason=unauthorized} = %v, want %d", got, 4*slots)
	}
	f.noLeaks(t, "/publish", "/channels/orders")
}

// dialStream opens path on a raw connection and reads up to the connect
// comment, so that the stream is subscribed when it returns.
func dialStream(tb testing.TB, addr, path string, readBuffer int) (net.Conn, *bufio.Reader) {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	if readBuffer > 0 {
		_ = c.(*net.TCPConn).SetReadBuffer(readBuffer)
	}
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: rumor\r\n\r\n"); err != nil {
		tb.Fatal(err)
	}
	br := bufio.NewReaderSize(c, 64)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			tb.Fatalf("GET %s: %v", path, err)
		}
		if strings.HasPrefix(line, ": rumor") {
			return c, br
		}
	}
}

// Streams share the frames of the events they write: many readers of
// large events cost the node those events once, not once per reader.
// Before, each stream copied what it drained into a buffer of its own,
// twice, so memory grew with readers × bytes in flight.
func TestAttackReadersShareFrames(t *testing.T) {
	const readers, events, size = 64, 16, 64 << 10
	ts := newServer(t, broker.Options{}, Options{})
	done := make(chan struct{})
	defer close(done)
	for range readers {
		c, br := dialStream(t, ts.Listener.Addr().String(), "/channels/big", 0)
		go func() {
			buf := make([]byte, 32<<10)
			for {
				_ = c.SetReadDeadline(time.Now().Add(testTimeout))
				if _, err := br.Read(buf); err != nil {
					return
				}
				select {
				case <-done:
					return
				default:
				}
			}
		}()
	}
	data := strings.Repeat("b", size)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range events {
		if a := ts.do(t, http.MethodPost, "/channels/big?ack=local", nil, data); a.status != http.StatusOK {
			t.Fatalf("publish %d = %d %s", i, a.status, a.body)
		}
	}
	waitFor(t, "every reader to get every event", func() bool {
		return ts.metric(t, "rumor_delivery_latency_seconds", nil) == readers*events
	})
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d readers of %d events of %d KiB: %d KiB allocated", readers, events, size>>10, allocated>>10)
	if limit := uint64(readers * events * size / 4); allocated > limit {
		t.Errorf("%d readers of %d events of %d KiB allocated %d KiB, want under %d KiB: streams copy frames", readers, events, size>>10, allocated>>10, limit>>10)
	}
}

// A stream holds at most QueueBytes of events, queued or being written:
// a reader that stalls on large events is cut as slow once it holds more,
// long before its queue is full by count, and counted.
func TestAttackStalledReaderBytes(t *testing.T) {
	const budget, size = 256 << 10, 64 << 10
	ts := startServer(t, broker.Options{QueueBytes: budget}, Options{WriteTimeout: testTimeout}, func(h http.Handler) *httptest.Server {
		srv := httptest.NewUnstartedServer(h)
		srv.Listener = &slowListener{Listener: srv.Listener} // the first stream's socket buffer is small
		srv.Start()
		return srv
	})
	dialStream(t, ts.Listener.Addr().String(), "/channels/big", 4096) // never read again
	data := strings.Repeat("s", size)
	var peak float64
	for i := 0; ts.metric(t, "rumor_slow_disconnects_total", nil) == 0; i++ {
		if i == 64 {
			t.Fatalf("a stalled reader of %d KiB events not cut after %d KiB published, with a %d KiB budget", size>>10, i*size>>10, budget>>10)
		}
		if a := ts.do(t, http.MethodPost, "/channels/big?ack=local", nil, data); a.status != http.StatusOK {
			t.Fatalf("publish %d = %d %s", i, a.status, a.body)
		}
		peak = max(peak, ts.metric(t, "rumor_subscriber_bytes", nil))
	}
	if peak > budget || peak <= 0 {
		t.Errorf("rumor_subscriber_bytes peaked at %v, want within the %d budget", peak, budget)
	}
	// The stream's write is still stuck on the stalled socket; what it
	// holds goes once the stream ends.
	ts.h.CloseStreams(canceled())
	waitFor(t, "the stalled stream to end", func() bool { return ts.h.openStreams() == 0 })
	waitFor(t, "its bytes to be given back", func() bool { return ts.metric(t, "rumor_subscriber_bytes", nil) == 0 })
}

// canceled is a context that has ended: CloseStreams with it aborts the
// streams still writing at once.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// The UI's redirects stay on this node: a path that cleans to a directory
// is redirected to that directory's own path, never to a path that a
// browser reads as another host (//evil.example/), whether the router
// sends it to the UI's handler or not.
func TestAttackUIRedirect(t *testing.T) {
	f := newHS256Fortress(t, Options{})
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ui := f.h.uiHandler()
	offSite := func(loc string) bool {
		u, err := url.Parse(loc)
		return loc != "" && (err != nil || u.Host != "" || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") || !strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "."))
	}
	for _, p := range []string{"/%2Fevil.example%2F..", "/%2F%2Fevil.example%2F..", "//evil.example/..", "/%5Cevil.example%2F..", "/%2Fevil.example", "/.%2F%2Fevil.example%2F.."} {
		resp, err := c.Get(f.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); offSite(loc) {
			t.Errorf("GET %s = %d, Location %q: a redirect off this node", p, resp.StatusCode, loc)
		}
		w := httptest.NewRecorder()
		ui(w, httptest.NewRequest(http.MethodGet, p, nil))
		if loc := w.Header().Get("Location"); offSite(loc) || w.Code == http.StatusMovedPermanently && loc != "/" {
			t.Errorf("the UI's handler for %s = %d, Location %q; want a redirect to / at most", p, w.Code, loc)
		}
	}
}

// No page of another site can frame the UI: every UI file says so in the
// headers browsers obey (a <meta> policy cannot carry frame-ancestors).
func TestAttackUIFraming(t *testing.T) {
	f := newHS256Fortress(t, Options{})
	for _, p := range uiPaths() {
		a := f.do(t, http.MethodGet, p, nil, "")
		if a.status != http.StatusOK {
			t.Fatalf("GET %s = %d", p, a.status)
		}
		if got := a.header.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("GET %s: X-Frame-Options = %q, want DENY", p, got)
		}
		if got := a.header.Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy = %q, want frame-ancestors 'none'", p, got)
		}
	}
}

// Behind a trusted proxy that terminates TLS, this node's pages are
// https: the proxy's X-Forwarded-Proto says so, and only a trusted proxy's.
func TestAttackCookieOriginBehindProxy(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		var o Options
		if trusted {
			o.TrustedProxies = []string{"127.0.0.1/32"}
		}
		f := newHS256Fortress(t, o)
		tok := f.token(t, []string{"orders.>"}, nil)
		h := http.Header{"Cookie": {auth.DefaultCookie + "=" + tok}, "X-Forwarded-Proto": {"https"}}
		h.Set("Origin", "https://"+strings.TrimPrefix(f.URL, "http://"))
		a := f.do(t, http.MethodPost, "/channels/orders.eu", h, "via the proxy")
		switch {
		case trusted && a.status != http.StatusOK:
			t.Errorf("cookie publish from this node's https origin through a trusted proxy = %d %s, want 200", a.status, a.body)
		case !trusted:
			wantAuthError(t, "X-Forwarded-Proto from an untrusted peer", a, http.StatusForbidden, "cookie")
		}
	}
}

// A batch's keys and single publishes' keys never meet: a single publish
// with the key of a batch's item (k#0, as they once were made) does not
// make that batch a replay, nor the other way round.
func TestAttackIdempotencyKeysSingleAndBatch(t *testing.T) {
	f := newHS256Fortress(t, Options{})
	with := func(key string) http.Header {
		h := f.bearer(f.admin)
		h.Set("Idempotency-Key", key)
		return h
	}
	for _, k := range []string{"k#0", "k 0", "k/0"} {
		if a := f.do(t, http.MethodPost, "/channels/orders", with(k), "single "+k); a.status != http.StatusOK {
			t.Fatalf("single publish with key %q = %d %s", k, a.status, a.body)
		}
	}
	batch := f.do(t, http.MethodPost, "/publish", with("k"), `[{"channel":"orders","data":"batch k"}]`)
	if batch.status != http.StatusOK || batch.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("batch with key k after singles with k#0 = %d %s (replayed %q), want published", batch.status, batch.body, batch.header.Get("Idempotent-Replayed"))
	}
	single := f.do(t, http.MethodPost, "/channels/orders", with("k"), "single k")
	if single.status != http.StatusOK || single.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("single with key k after a batch with k = %d %s (replayed %q), want published", single.status, single.body, single.header.Get("Idempotent-Replayed"))
	}
	f.noLeaks(t, "single k#0", "single k 0", "single k/0", "batch k", "single k")
}

// One client holding publish bodies open takes at most
// MaxPublishesPerClient slots: its next publish gets 429 at once, before
// its body, while other clients publish. With auth off this is what keeps
// a tokenless client from locking everyone out.
func TestAttackPublisherHoldsSlots(t *testing.T) {
	const perClient = 2
	ts := newServer(t, broker.Options{}, Options{MaxPublishes: 16, MaxPublishesPerClient: perClient, ReadBodyTimeout: testTimeout, TrustedProxies: []string{"127.0.0.1/32"}})
	hold := func(client string) *bufio.Reader {
		conn, err := net.DialTimeout("tcp", ts.Listener.Addr().String(), testTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(testTimeout))
		_, _ = io.WriteString(conn, "POST /publish HTTP/1.1\r\nHost: rumor\r\nX-Forwarded-For: "+client+"\r\nContent-Length: 1000\r\n\r\n[")
		return bufio.NewReader(conn)
	}
	for range perClient {
		hold("198.51.100.1")
	}
	waitFor(t, "the holder's publishes in flight", func() bool { return ts.h.inflight.Load() == perClient })
	resp, err := http.ReadResponse(hold("198.51.100.1"), nil)
	if err != nil {
		t.Fatalf("one publish over the client's limit: %v, want 429 at once", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("one publish over the client's limit = %d (Retry-After %q), want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if a := ts.do(t, http.MethodPost, "/channels/other", http.Header{"X-Forwarded-For": {"198.51.100.2"}}, "x"); a.status != http.StatusOK {
		t.Errorf("another client's publish = %d %s, want 200", a.status, a.body)
	}
	if got := ts.metric(t, "rumor_publish_errors_total", map[string]string{"reason": publishClientLimit}); got != 1 {
		t.Errorf("rumor_publish_errors_total{reason=client_limit} = %v, want 1", got)
	}
}
