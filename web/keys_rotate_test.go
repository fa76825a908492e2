package web

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/broker"
)

const otherSecret = "rumor-test-secret-rotated-abcdef0123456789"

// The HMAC secret file is replaced: the stream opened with the old secret
// keeps running until its token expires and gets what a publisher with the
// new secret sends; a new stream with the old secret is refused; the
// reload is counted on /metrics. (auth's TestHMACFileRotation covers the
// keys themselves.)
func TestHMACFileRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := newAuth(t, auth.Config{HMACSecretFile: path, FileCheck: 20 * time.Millisecond})
	ts := newServer(t, broker.Options{}, Options{Auth: a})
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	all := claims([]string{">"}, []string{">"}, time.Hour)
	oldTok := hs256(t, all)
	newTok := sign(t, jwt.SigningMethodHS256, []byte(otherSecret), all, nil)
	stream := ts.openStream(t, "/channels/orders.eu", bearer(oldTok))

	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(otherSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a token of the new secret accepted", func() bool { _, err := a.Verify(newTok); return err == nil })
	if got := ts.metric(t, "rumor_auth_key_reloads_total", map[string]string{"source": "hmac_secret_file", "result": "ok"}); got != 1 {
		t.Errorf(`rumor_auth_key_reloads_total{source="hmac_secret_file",result="ok"} = %v, want 1`, got)
	}
	if got := ts.do(t, http.MethodPost, "/channels/orders.eu", bearer(newTok), "after rotation"); got.status != http.StatusOK {
		t.Fatalf("publish with the new secret = %d %s", got.status, got.body)
	}
	if ev := stream.read(t, 1)[0]; ev.Data != "after rotation" {
		t.Errorf("the old stream got %q, want the event published after the rotation", ev.Data)
	}
	wantError(t, "a new stream with the old secret", ts.do(t, http.MethodGet, "/channels/orders.eu", bearer(oldTok), ""), http.StatusUnauthorized)
}
