package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rumorhq/rumor/broker"
)

// TestAdminListenerSplit: with Options.AdminAddr set, the public face
// serves what clients need and nothing that lists channels, members or
// metrics; the admin face serves all of it, the client API included.
func TestAdminListenerSplit(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{HTTPAddr: "127.0.0.1:8080", AdminAddr: "127.0.0.1:9090"})
	admin := httptest.NewServer(ts.h.Admin())
	t.Cleanup(admin.Close)
	adm := &testServer{Server: admin, hub: ts.hub, h: ts.h, reg: ts.reg}

	views := []string{"/channels", "/cluster", "/node", "/cluster/channels", "/metrics", "/", "/index.html", "/app.js"}
	for _, path := range views {
		if a := ts.do(t, http.MethodGet, path, nil, ""); a.status != http.StatusNotFound {
			t.Errorf("public GET %s: %d, want 404 (it is the admin listener's)", path, a.status)
		}
		if a := adm.do(t, http.MethodGet, path, nil, ""); a.status != http.StatusOK {
			t.Errorf("admin GET %s: %d %s, want 200", path, a.status, a.body)
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/rumor.js"} {
		for name, s := range map[string]*testServer{"public": ts, "admin": adm} {
			if a := s.do(t, http.MethodGet, path, nil, ""); a.status != http.StatusOK {
				t.Errorf("%s GET %s: %d, want 200", name, path, a.status)
			}
		}
	}
	if a := ts.do(t, http.MethodHead, "/rumor.js", nil, ""); a.status != http.StatusOK {
		t.Errorf("public HEAD /rumor.js: %d, want 200", a.status)
	}

	// The client API works on both faces: a stream on the public one gets
	// what is published on either.
	s := ts.openStream(t, "/events?channel=orders", nil)
	ts.publish(t, "orders", "from-public")
	adm.publish(t, "orders", "from-admin")
	for i, ev := range s.read(t, 2) {
		if want := []string{"from-public", "from-admin"}[i]; ev.Data != want {
			t.Errorf("stream event %d = %q, want %q", i, ev.Data, want)
		}
	}

	// The admin face tells where the views are.
	var cv memberList
	a := adm.do(t, http.MethodGet, "/cluster", nil, "")
	if err := json.Unmarshal([]byte(a.body), &cv); err != nil || len(cv.Members) != 1 || cv.Members[0].Admin != "127.0.0.1:9090" {
		t.Errorf("admin /cluster = %s (%v), want the one member with admin 127.0.0.1:9090", a.body, err)
	}
	if !strings.Contains(adm.do(t, http.MethodGet, "/metrics", nil, "").body, "rumor_events_published_total 2") {
		t.Errorf("admin /metrics does not count the two publishes")
	}
}

// TestNoAdminListenerServesAll: without AdminAddr the one face serves the
// views too (rumor serve's default).
func TestNoAdminListenerServesAll(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	for _, path := range []string{"/channels", "/cluster", "/node", "/cluster/channels", "/metrics", "/", "/rumor.js"} {
		if a := ts.do(t, http.MethodGet, path, nil, ""); a.status != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", path, a.status)
		}
	}
}
