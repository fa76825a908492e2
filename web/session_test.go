package web

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/broker"
)

// expiringToken returns a token for subscribe that expires within 0.5 to
// 1.5 s (exp is in whole seconds), and when.
func expiringToken(tb testing.TB, subscribe ...string) (string, time.Time) {
	tb.Helper()
	c := claims(nil, subscribe, 0)
	exp := time.Now().Add(1500 * time.Millisecond).Truncate(time.Second)
	c["exp"] = exp.Unix()
	return hs256(tb, c), exp
}

// A stream's token that expires ends the stream at its exp with a
// rumor.end event saying why, a retry: and a comment; the event has no id,
// so Last-Event-ID stays on the last event delivered; a reconnect with the
// same token gets 401 with reason "expired", in the body and in the
// WWW-Authenticate challenge; a fresh token resumes after that id with the
// events published meanwhile: nothing lost.
func TestStreamEndsWhenTokenExpires(t *testing.T) {
	a := newAuth(t, auth.Config{HMACSecret: []byte(testSecret)})
	ts := newServer(t, broker.Options{}, Options{Auth: a, Retry: 100 * time.Millisecond})
	pub := http.Header{"Authorization": {"Bearer " + hs256(t, claims([]string{">"}, nil, time.Hour))}}
	publish := func(data string) string {
		t.Helper()
		ans := ts.do(t, http.MethodPost, "/channels/a", pub, data)
		var p published
		decode(t, ans.body, &p)
		return p.ID
	}
	tok, exp := expiringToken(t, "a")
	bearer := http.Header{"Authorization": {"Bearer " + tok}}
	s := ts.openStream(t, "/channels/a", bearer)
	first := publish("before")
	if ev := s.read(t, 1)[0]; ev.Data != "before" {
		t.Fatalf("got %+v, want the event published before the expiry", ev)
	}

	end := s.read(t, 1)[0]
	if late := time.Since(exp); late < 0 || late > 2*time.Second {
		t.Errorf("stream ended %v after its token's exp, want at exp", late)
	}
	var data endEvent
	if err := json.Unmarshal([]byte(end.Data), &data); err != nil || end.Type != EndType {
		t.Fatalf("stream ended with %+v, want a %s event with JSON data", end, EndType)
	}
	if data.Reason != "expired" || data.LastEventID != first || !strings.Contains(data.Message, "fresh token") {
		t.Errorf("%s data = %+v, want reason expired, lastEventId %s and a message", EndType, data, first)
	}
	if end.LastEventID != first || strings.Contains(strings.Join(end.Fields, " "), "id") {
		t.Errorf("%s moved Last-Event-ID to %q (fields %v), want it to stay %s", EndType, end.LastEventID, end.Fields, first)
	}
	if _, err := s.next(); !errors.Is(err, io.EOF) {
		t.Errorf("after %s: %v, want the end of the stream", EndType, err)
	}
	if s.retry < 100 || s.retry > 1100 {
		t.Errorf("retry: %d ms at the end, want Retry plus up to 1s of jitter", s.retry)
	}
	waitFor(t, "the expired stream to be counted", func() bool {
		return ts.metric(t, "rumor_streams_ended_total", map[string]string{"reason": endExpired}) == 1
	})

	// The ended stream's connection looked reusable to the client (the
	// detached writer ends it with the last chunk under "Connection:
	// keep-alive", then closes it): drop it, or the next POST may go out
	// on it and meet EOF.
	ts.Client().CloseIdleConnections()

	// The browser's own reconnect, with the same token and Last-Event-ID.
	missed := publish("while away")
	again := ts.do(t, http.MethodGet, "/channels/a", http.Header{"Authorization": bearer["Authorization"], "Last-Event-ID": {first}}, "")
	wantExpired(t, "a reconnect with the expired token", again)

	// The page's reconnect with a fresh token resumes without a gap.
	fresh := http.Header{"Authorization": {"Bearer " + hs256(t, claims(nil, []string{"a"}, time.Hour))}, "Last-Event-ID": {first}}
	if ev := ts.openStream(t, "/channels/a", fresh).read(t, 1)[0]; ev.LastEventID != missed || ev.Data != "while away" {
		t.Errorf("resumed with %+v, want the event published while away (%s)", ev, missed)
	}
}

// wantExpired checks the refusal of an expired token: 401, reason expired
// in the JSON body and in the challenge's error_description.
func wantExpired(tb testing.TB, what string, a answer) {
	tb.Helper()
	wantError(tb, what, a, http.StatusUnauthorized)
	var e errorBody
	decode(tb, a.body, &e)
	if e.Reason != auth.ReasonExpired {
		tb.Errorf("%s: body %s, want reason %q", what, a.body, auth.ReasonExpired)
	}
	if got, want := a.header.Get("WWW-Authenticate"), `Bearer realm="rumor", error="invalid_token", error_description="token expired"`; got != want {
		tb.Errorf("%s: WWW-Authenticate = %s, want %s", what, got, want)
	}
}

// A stream is never downgraded when its token goes: a request with an
// expired token is refused even when it asks only for public channels, and
// a stream of public and granted channels without its token is refused, not
// narrowed to the public ones.
func TestExpiredTokenNeverDowngrades(t *testing.T) {
	a := newAuth(t, auth.Config{HMACSecret: []byte(testSecret), Public: []string{"news"}})
	ts := newServer(t, broker.Options{}, Options{Auth: a})
	c := claims(nil, []string{"orders"}, 0)
	c["exp"] = time.Now().Add(-time.Minute).Unix()
	expired := http.Header{"Authorization": {"Bearer " + hs256(t, c)}}
	wantExpired(t, "public channel with an expired token", ts.do(t, http.MethodGet, "/channels/news", expired, ""))
	wantExpired(t, "public and granted channels with an expired token", ts.do(t, http.MethodGet, "/events?channel=news&channel=orders", expired, ""))
	cookie := http.Header{"Cookie": {auth.DefaultCookie + "=" + expired.Get("Authorization")[len("Bearer "):]}}
	wantExpired(t, "the expired token in the cookie", ts.do(t, http.MethodGet, "/events?channel=news&channel=orders", cookie, ""))
	wantError(t, "public and granted channels without a token", ts.do(t, http.MethodGet, "/events?channel=news&channel=orders", nil, ""), http.StatusUnauthorized)
	// Without a token, only a stream of public channels alone.
	ts.openStream(t, "/channels/news", nil)
}
