package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/broker"
)

// adminToken is a token with the admin grant.
func adminToken(tb testing.TB, secret string) string {
	tb.Helper()
	c := claims(nil, nil, time.Hour)
	c["sub"] = "ops"
	c["rumor"] = map[string]any{"admin": true}
	return sign(tb, jwt.SigningMethodHS256, []byte(secret), c, nil)
}

func newRevokeServer(tb testing.TB) (*testServer, *auth.Revocations) {
	tb.Helper()
	revs := auth.NewRevocations(auth.RevocationOptions{})
	a := newAuth(tb, auth.Config{HMACSecret: []byte(testSecret), Public: []string{"news"}, Revocations: revs})
	return newServer(tb, broker.Options{}, Options{Auth: a, Revocations: revs, Retry: 100 * time.Millisecond}), revs
}

// The admin API refuses every call without an admin token in the
// Authorization header, and holds nothing after them.
func TestAdminAPIRefusesHostileCalls(t *testing.T) {
	ts, revs := newRevokeServer(t)
	body := `{"kind":"kick-channel","channel":">"}`
	expired := claims(nil, nil, -time.Hour)
	expired["rumor"] = map[string]any{"admin": true}
	for _, tt := range []struct {
		name   string
		header http.Header
		status int
	}{
		{"no credential", nil, http.StatusUnauthorized},
		{"a subscriber's token", http.Header{"Authorization": {"Bearer " + hs256(t, claims([]string{">"}, []string{">"}, time.Hour))}}, http.StatusForbidden},
		{"a forged admin token", http.Header{"Authorization": {"Bearer " + adminToken(t, "another secret, long enough to sign")}}, http.StatusUnauthorized},
		{"an expired admin token", http.Header{"Authorization": {"Bearer " + hs256(t, expired)}}, http.StatusUnauthorized},
		{"an admin token in the cookie", http.Header{"Cookie": {auth.DefaultCookie + "=" + adminToken(t, testSecret)}}, http.StatusUnauthorized},
		{"Basic credentials", http.Header{"Authorization": {"Basic b3BzOm9wcw=="}}, http.StatusUnauthorized},
	} {
		wantError(t, "POST /revocations with "+tt.name, ts.do(t, http.MethodPost, "/revocations", tt.header, body), tt.status)
		wantError(t, "GET /revocations with "+tt.name, ts.do(t, http.MethodGet, "/revocations", tt.header, ""), tt.status)
	}
	if got := revs.List(); len(got) != 0 {
		t.Errorf("held after hostile calls: %v", got)
	}
	if got := ts.metric(t, "rumor_auth_failures_total", map[string]string{"reason": auth.ReasonForbidden}); got != 2 {
		t.Errorf("rumor_auth_failures_total{reason=forbidden} = %v, want 2", got)
	}

	// Without auth there is no admin API.
	open := newServer(t, broker.Options{}, Options{})
	wantError(t, "POST /revocations without auth", open.do(t, http.MethodPost, "/revocations", nil, body), http.StatusNotFound)

	// A good token, a bad decision.
	admin := http.Header{"Authorization": {"Bearer " + adminToken(t, testSecret)}}
	for _, bad := range []string{`{"kind":"ban"}`, `{"kind":"token"}`, `{"kind":"token","jti":"x","extra":1}`, `[`, `{"kind":"kick-channel","channel":"a..b"}`} {
		wantError(t, "POST /revocations "+bad, ts.do(t, http.MethodPost, "/revocations", admin, bad), http.StatusBadRequest)
	}
}

// endOf reads a stream until its rumor.end event and returns its reason.
func endOf(tb testing.TB, s *sseStream) string {
	tb.Helper()
	for {
		ev, err := s.next()
		if err != nil {
			tb.Fatalf("the stream ended without %s: %v", EndType, err)
		}
		if ev.Type == EndType {
			var e endEvent
			decode(tb, ev.Data, &e)
			return e.Reason
		}
	}
}

// Revoking a jti ends that token's streams (rumor.end, reason revoked) and
// refuses it from then on; kicking a subject ends its streams (reason
// kicked) but lets its tokens back in; kicking a channel pattern ends every
// stream that could get its events, anonymous ones included. Streams the
// decisions do not cover go on.
func TestRevokeAndKickEndStreams(t *testing.T) {
	ts, _ := newRevokeServer(t)
	admin := http.Header{"Authorization": {"Bearer " + adminToken(t, testSecret)}}
	token := func(sub, jti string) http.Header {
		c := claims(nil, []string{">"}, time.Hour)
		c["sub"], c["jti"] = sub, jti
		return http.Header{"Authorization": {"Bearer " + hs256(t, c)}}
	}
	decide := func(body string) auth.Revocation {
		t.Helper()
		a := ts.do(t, http.MethodPost, "/revocations", admin, body)
		if a.status != http.StatusOK {
			t.Fatalf("POST /revocations %s = %d %s", body, a.status, a.body)
		}
		var v auth.Revocation
		decode(t, a.body, &v)
		return v
	}
	alice1, alice2, bob := token("alice", "a1"), token("alice", "a2"), token("bob", "b1")
	s1 := ts.openStream(t, "/channels/orders", alice1)
	s2 := ts.openStream(t, "/channels/orders", alice2)
	sBob := ts.openStream(t, "/channels/orders", bob)
	sNews := ts.openStream(t, "/channels/news", nil)

	v := decide(`{"kind":"token","jti":"a1"}`)
	if v.ID == "" || v.Node != "test-node" || !v.Until.After(time.Now().Add(23*time.Hour)) {
		t.Errorf("decision %+v, want an id, the node and 24 hours", v)
	}
	if r := endOf(t, s1); r != "revoked" {
		t.Errorf("a1's stream ended %q, want revoked", r)
	}
	a := ts.do(t, http.MethodGet, "/channels/orders", alice1, "")
	wantError(t, "a1 again", a, http.StatusUnauthorized)
	if !strings.Contains(a.body, `"reason":"revoked"`) {
		t.Errorf("a1 again: %s, want reason revoked", a.body)
	}

	decide(`{"kind":"kick-subject","subject":"alice"}`)
	if r := endOf(t, s2); r != "kicked" {
		t.Errorf("a2's stream ended %q, want kicked", r)
	}
	back := ts.openStream(t, "/channels/orders", alice2) // a kick is not a revocation

	pub := http.Header{"Authorization": {"Bearer " + hs256(t, claims([]string{">"}, nil, time.Hour))}}
	if a := ts.do(t, http.MethodPost, "/channels/orders", pub, "still here"); a.status != http.StatusOK {
		t.Fatalf("publish: %d %s", a.status, a.body)
	}
	for name, s := range map[string]*sseStream{"bob": sBob, "alice back": back} {
		if ev := s.read(t, 1)[0]; ev.Data != "still here" {
			t.Errorf("%s's stream got %+v, want the event", name, ev)
		}
	}

	decide(`{"kind":"kick-channel","channel":">"}`)
	for name, s := range map[string]*sseStream{"bob": sBob, "the anonymous news stream": sNews} {
		if r := endOf(t, s); r != "kicked" {
			t.Errorf("%s ended %q, want kicked", name, r)
		}
	}

	var list struct{ Revocations []auth.Revocation }
	decode(t, ts.do(t, http.MethodGet, "/revocations", admin, "").body, &list)
	if len(list.Revocations) != 3 || list.Revocations[0].JTI != "a1" {
		t.Errorf("GET /revocations = %+v, want the 3 decisions, oldest first", list.Revocations)
	}
	waitFor(t, "the ends to be counted", func() bool {
		return ts.metric(t, "rumor_streams_ended_total", map[string]string{"reason": endRevoked}) == 1 &&
			ts.metric(t, "rumor_streams_ended_total", map[string]string{"reason": endKicked}) == 4
	})
	if got := ts.metric(t, "rumor_revocations_held", map[string]string{"kind": auth.KickSubject}); got != 1 {
		t.Errorf("rumor_revocations_held{kind=kick-subject} = %v, want 1", got)
	}
}
