package web

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rumorhq/rumor/broker"
)

// TestDrain follows cmd's shutdown order: Drain, then CloseStreams.
func TestDrain(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	streams := []*sseStream{
		ts.openStream(t, "/channels/a", nil),
		ts.openStream(t, "/events?channel=a&channel=b.*", nil),
		ts.openStream(t, "/channels/b.c", nil),
	}
	if a := ts.do(t, http.MethodGet, "/readyz", nil, ""); a.status != http.StatusOK {
		t.Errorf("GET /readyz before Drain = %d %s, want 200", a.status, a.body)
	}

	ts.h.Drain()
	if a := ts.do(t, http.MethodGet, "/readyz", nil, ""); a.status != http.StatusServiceUnavailable || !strings.Contains(a.body, `"draining"`) {
		t.Errorf("GET /readyz while draining = %d %s, want 503 draining", a.status, a.body)
	}
	if a := ts.do(t, http.MethodGet, "/healthz", nil, ""); a.status != http.StatusOK {
		t.Errorf("GET /healthz while draining = %d %s, want 200", a.status, a.body)
	}
	for _, path := range []string{"/channels/a", "/publish"} {
		a := ts.do(t, http.MethodPost, path, nil, `[{"channel":"a","data":"x"}]`)
		wantError(t, "POST "+path+" while draining", a, http.StatusServiceUnavailable)
		if a.header.Get("Retry-After") == "" {
			t.Errorf("POST %s while draining has no Retry-After", path)
		}
	}
	wantShed(t, ts, "/channels/a", 2000)
	if v := ts.metric(t, "rumor_streams_rejected_total", map[string]string{"reason": "draining"}); v != 1 {
		t.Errorf("rumor_streams_rejected_total{reason=draining} = %v, want 1", v)
	}

	// Open streams still deliver until CloseStreams: the relays are being
	// flushed and peers' events still arrive.
	if _, _, err := ts.hub.Publish(context.Background(), []broker.Message{{Channel: "a", Data: []byte("late")}}, broker.AckLocal); err != nil {
		t.Fatal(err)
	}
	for _, s := range streams[:2] {
		if ev := s.read(t, 1)[0]; ev.Data != "late" {
			t.Errorf("while draining got %+v, want the event", ev)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := ts.h.CloseStreams(ctx); err != nil {
		t.Fatalf("CloseStreams: %v", err)
	}
	for i, s := range streams {
		if _, err := s.next(); !errors.Is(err, io.EOF) {
			t.Errorf("stream %d ended with %v, want EOF", i, err)
		}
		if s.retry < 2000 || s.retry > 7000 {
			t.Errorf("stream %d ended with retry %d, want a jittered 2000..7000", i, s.retry)
		}
	}
	if v := ts.metric(t, "rumor_streams_ended_total", map[string]string{"reason": "shutdown"}); v != 3 {
		t.Errorf("rumor_streams_ended_total{reason=shutdown} = %v, want 3", v)
	}
	if v := ts.metric(t, "rumor_streams_open", nil); v != 0 {
		t.Errorf("rumor_streams_open = %v after CloseStreams, want 0", v)
	}
	if err := ts.h.CloseStreams(ctx); err != nil {
		t.Errorf("second CloseStreams: %v", err)
	}
}

// wantShed checks a stream answered with 200, a retry: of at least min ms
// and an immediate end.
func wantShed(tb testing.TB, ts *testServer, path string, minRetry int) {
	tb.Helper()
	a := ts.do(tb, http.MethodGet, path, nil, "")
	evs, p := parseAll(tb, []byte(a.body))
	if a.status != http.StatusOK || a.header.Get("Content-Type") != "text/event-stream" || len(evs) != 0 || p.retry < minRetry || len(p.comments) == 0 {
		tb.Errorf("GET %s = %d %q, want 200, a retry: of at least %d and a comment", path, a.status, a.body, minRetry)
	}
}

func TestStreamLimit(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{MaxStreams: 2})
	first := ts.openStream(t, "/channels/a", nil)
	ts.openStream(t, "/channels/b", nil)
	wantShed(t, ts, "/channels/c", 5000)
	if v := ts.metric(t, "rumor_streams_rejected_total", map[string]string{"reason": "limit"}); v != 1 {
		t.Errorf("rumor_streams_rejected_total{reason=limit} = %v, want 1", v)
	}
	if v := ts.metric(t, "rumor_streams_open", nil); v != 2 {
		t.Errorf("rumor_streams_open = %v, want 2", v)
	}
	first.resp.Body.Close()
	waitFor(t, "the closed stream to be released", func() bool { return ts.h.openStreams() <= 1 })
	ts.openStream(t, "/channels/c", nil)
}

func TestHealth(t *testing.T) {
	ready := errors.New("joining the cluster")
	var mu sync.Mutex
	ts := newServer(t, broker.Options{}, Options{Version: "v1.2.3", Ready: func() error {
		mu.Lock()
		defer mu.Unlock()
		return ready
	}})
	if a := ts.do(t, http.MethodGet, "/healthz", nil, ""); a.status != 200 || a.body != `{"status":"ok","version":"v1.2.3"}`+"\n" {
		t.Errorf("GET /healthz = %d %s", a.status, a.body)
	}
	if a := ts.do(t, http.MethodGet, "/readyz", nil, ""); a.status != 503 || !strings.Contains(a.body, "joining the cluster") {
		t.Errorf("GET /readyz while Ready fails = %d %s, want 503 with the error", a.status, a.body)
	}
	mu.Lock()
	ready = nil
	mu.Unlock()
	if a := ts.do(t, http.MethodGet, "/readyz", nil, ""); a.status != 200 {
		t.Errorf("GET /readyz = %d %s, want 200", a.status, a.body)
	}
}

func TestChannels(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	ts.openStream(t, "/channels/b", nil)
	ts.publish(t, "a", "x")
	ts.publish(t, "a", "y")
	var got channelList
	decode(t, ts.do(t, http.MethodGet, "/channels", nil, "").body, &got)
	if got.Node != "test-node" || len(got.Channels) != 2 ||
		got.Channels[0].Name != "a" || got.Channels[0].Events != 2 || got.Channels[0].Published != 2 ||
		got.Channels[1].Name != "b" || got.Channels[1].Subscribers != 1 {
		t.Errorf("GET /channels = %+v, want a with 2 events and b with 1 subscriber", got)
	}
}

func TestMetrics(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	s := ts.openStream(t, "/channels/m", nil)
	ts.publish(t, "m", "1")
	ts.publish(t, "m", "2")
	s.read(t, 2)
	a := ts.do(t, http.MethodGet, "/metrics", nil, "")
	if a.status != 200 {
		t.Fatalf("GET /metrics = %d", a.status)
	}
	for _, want := range []string{
		"rumor_streams_open 1", "rumor_subscribers 1", "rumor_events_published_total 2",
		"rumor_events_delivered_total 2", "rumor_events_received_total 0", "rumor_history_events 2",
		"rumor_channels 1", "rumor_pending_events 0", "rumor_publish_duration_seconds_count 2",
		`rumor_streams_rejected_total{reason="limit"} 0`, `rumor_publish_errors_total{reason="overload"} 0`,
		"rumor_events_dropped_total 0", "rumor_slow_disconnects_total 0", "rumor_duplicates_dropped_total 0",
		"rumor_late_events_total 0", "rumor_gaps_abandoned_total 0", "rumor_history_bytes ",
		"go_goroutines ", "process_",
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("GET /metrics lacks %q", want)
		}
	}
	// Delivery latency is observed after the write, which may follow the
	// client's read by a moment.
	waitFor(t, "rumor_delivery_latency_seconds count 2", func() bool {
		return ts.metric(t, "rumor_delivery_latency_seconds", nil) == 2
	})
}

// fakeCluster is a membership the test changes.
type fakeCluster struct {
	mu      sync.Mutex
	members []Member
	changes chan struct{}
}

func (c *fakeCluster) Self() string { return "n1" }

func (c *fakeCluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members
}

func (c *fakeCluster) Changes() <-chan struct{} { return c.changes }

func (c *fakeCluster) set(ms []Member) {
	c.mu.Lock()
	c.members = ms
	c.mu.Unlock()
	select {
	case c.changes <- struct{}{}:
	default:
	}
}

func TestCluster(t *testing.T) {
	single := newServer(t, broker.Options{}, Options{NodeName: "solo", HTTPAddr: "10.0.0.1:8080"})
	want := `{"self":"solo","members":[{"name":"solo","addr":"","http":"10.0.0.1:8080","state":"alive","self":true}]}` + "\n"
	if a := single.do(t, http.MethodGet, "/cluster", nil, ""); a.status != 200 || a.body != want {
		t.Errorf("single node GET /cluster = %d %s, want %s", a.status, a.body, want)
	}

	fc := &fakeCluster{changes: make(chan struct{}, 1), members: []Member{
		{Name: "n2", Addr: "10.0.0.2:7946", HTTP: "10.0.0.2:8080", State: "alive"},
		{Name: "n1", Addr: "10.0.0.1:7946", HTTP: "10.0.0.1:8080", State: "alive", Self: true},
	}}
	ts := newServer(t, broker.Options{}, Options{Cluster: fc})
	want = `{"self":"n1","members":[{"name":"n1","addr":"10.0.0.1:7946","http":"10.0.0.1:8080","state":"alive","self":true},` +
		`{"name":"n2","addr":"10.0.0.2:7946","http":"10.0.0.2:8080","state":"alive"}]}`
	if a := ts.do(t, http.MethodGet, "/cluster", nil, ""); a.status != 200 || a.body != want+"\n" {
		t.Errorf("GET /cluster = %d %s, want %s", a.status, a.body, want)
	}

}

// TestMembership: every watcher sees every change through the one Changes
// channel, and the pump goroutine runs only while someone watches.
func TestMembership(t *testing.T) {
	fc := &fakeCluster{changes: make(chan struct{}, 1)}
	m := &membership{cluster: fc}
	for round := range 2 { // the pump stops with the last watcher and starts again
		c1, leave1 := m.watch()
		c2, leave2 := m.watch()
		fc.set(nil)
		for i, c := range []<-chan struct{}{c1, c2} {
			select {
			case <-c:
			case <-time.After(testTimeout):
				t.Fatalf("round %d: watcher %d missed a change", round, i)
			}
		}
		next := m.next()
		fc.set(nil)
		select {
		case <-next:
		case <-time.After(testTimeout):
			t.Fatalf("round %d: the second change was missed", round)
		}
		leave1()
		leave2() // waits for the pump: goleak checks it is gone
	}
}

func TestUI(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	a := ts.do(t, http.MethodGet, "/", nil, "")
	if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") || !strings.Contains(a.body, "rumor") {
		t.Fatalf("GET / = %d %q %.80q, want the HTML page", a.status, a.header.Get("Content-Type"), a.body)
	}
	etag := a.header.Get("ETag")
	if a := ts.do(t, http.MethodGet, "/", http.Header{"If-None-Match": {etag}}, ""); etag == "" || a.status != http.StatusNotModified {
		t.Errorf("GET / with If-None-Match %q = %d, want 304", etag, a.status)
	}
	if a := ts.do(t, http.MethodHead, "/", nil, ""); a.status != 200 || a.body != "" {
		t.Errorf("HEAD / = %d %q, want 200 without a body", a.status, a.body)
	}
	for _, path := range []string{"/missing.js", "/../web/ui.go", "/ui/index.html"} {
		wantError(t, "GET "+path, ts.do(t, http.MethodGet, path, nil, ""), http.StatusNotFound)
	}
}

// memWriter is an in-memory ResponseWriter for a stream driven inside a
// synctest bubble, where real sockets do not fit.
type memWriter struct {
	mu     sync.Mutex
	header http.Header
	buf    bytes.Buffer
	status int
}

func (w *memWriter) Header() http.Header { return w.header }
func (w *memWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.status = code
}

func (w *memWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *memWriter) Flush()                           {}
func (w *memWriter) SetWriteDeadline(time.Time) error { return nil }

// take returns and forgets what was written so far.
func (w *memWriter) take() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.buf.String()
	w.buf.Reset()
	return s
}

func TestHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := broker.NewHub(broker.Options{})
		defer hub.Close()
		h, err := NewHandler(Options{Hub: hub, Heartbeat: 10 * time.Second, NodeName: "hb"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		w := &memWriter{header: make(http.Header)}
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/channels/hb", nil).WithContext(ctx))
		}()
		synctest.Wait()
		if got := w.take(); got != "retry: 2000\n: rumor hb\n\n" {
			t.Fatalf("stream starts with %q", got)
		}

		time.Sleep(10*time.Second - time.Millisecond)
		synctest.Wait()
		if got := w.take(); got != "" {
			t.Errorf("before the heartbeat interval: %q, want nothing", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := w.take(); got != ": ping\n" {
			t.Errorf("after the heartbeat interval: %q, want a comment", got)
		}

		// An event postpones the next heartbeat: only idle streams get one.
		time.Sleep(5 * time.Second)
		if _, _, err := hub.Publish(ctx, []broker.Message{{Channel: "hb", Data: []byte("x")}}, broker.AckLocal); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := w.take(); !strings.HasSuffix(got, "data: x\n\n") {
			t.Errorf("event written as %q", got)
		}
		time.Sleep(10*time.Second - time.Millisecond)
		synctest.Wait()
		if got := w.take(); got != "" {
			t.Errorf("%v after an event: %q, want nothing yet", 10*time.Second-time.Millisecond, got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := w.take(); got != ": ping\n" {
			t.Errorf("10s after an event: %q, want a heartbeat", got)
		}

		cancel()
		<-done
	})
}

// TestMethodAndPath checks the router's answers to a wrong path and to a
// known path with a wrong method, on both faces.
func TestMethodAndPath(t *testing.T) {
	type want struct {
		method, path string
		status       int
		allow        string // for 405
	}
	check := func(t *testing.T, ts *testServer, cases []want) {
		t.Helper()
		for _, c := range cases {
			a := ts.do(t, c.method, c.path, nil, "")
			what := c.method + " " + c.path
			wantError(t, what, a, c.status)
			if got := strings.Join(a.header.Values("Allow"), ", "); got != c.allow {
				t.Errorf("%s Allow = %q, want %q", what, got, c.allow)
			}
		}
	}
	t.Run("one face", func(t *testing.T) {
		ts := newServer(t, broker.Options{}, Options{})
		check(t, ts, []want{
			{"POST", "/nope", 404, ""},
			{"GET", "/nope", 404, ""},
			{"DELETE", "/nope/deeper", 404, ""},
			{"GET", "/publish", 405, "POST"},
			{"PUT", "/channels/demo", 405, "GET, POST"},
			{"DELETE", "/events", 405, "GET"},
			{"POST", "/healthz", 405, "GET"},
			{"POST", "/metrics", 405, "GET"},
			{"POST", "/cluster", 405, "GET"},
			{"POST", "/", 405, "GET, HEAD"},
			{"POST", "/app.js", 405, "GET, HEAD"},
			{"GET", "/missing.js", 404, ""},
		})
	})
	t.Run("public face with an admin listener", func(t *testing.T) {
		ts := newServer(t, broker.Options{}, Options{AdminAddr: "127.0.0.1:1"})
		check(t, ts, []want{
			{"POST", "/nope", 404, ""},
			{"GET", "/publish", 405, "POST"},
			{"POST", "/rumor.js", 405, "GET, HEAD"},
			{"GET", "/metrics", 404, ""},
			{"POST", "/metrics", 404, ""},
			{"GET", "/", 404, ""},
		})
	})
}

// NewHandler reports every problem with its options at once, as an error,
// and a second Handler on one registry is refused rather than a panic.
func TestNewHandlerErrors(t *testing.T) {
	_, err := NewHandler(Options{CORSOrigins: []string{"app.example.com"}, TrustedProxies: []string{"10.0.0.0/33"}})
	for _, want := range []string{"no hub", `CORS origin "app.example.com"`, `trusted proxy "10.0.0.0/33"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewHandler with bad options = %v, want an error saying %s", err, want)
		}
	}

	hub := broker.NewHub(broker.Options{})
	defer hub.Close()
	reg := prometheus.NewRegistry()
	if _, err := NewHandler(Options{Hub: hub, Registry: reg}); err != nil {
		t.Fatal(err)
	}
	if h, err := NewHandler(Options{Hub: hub, Registry: reg}); err == nil || h != nil {
		t.Errorf("a second Handler on one registry = %v, %v; want an error", h, err)
	}
}
