package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rumorhq/rumor/broker"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

// waitFor polls cond until it holds, for at most testTimeout: the one way
// these tests wait for something the code does on another goroutine.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", testTimeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

type testServer struct {
	*httptest.Server
	hub *broker.Hub
	h   *Handler
	reg *prometheus.Registry
}

// newServer serves a Handler over a real single-node hub on 127.0.0.1:0.
func newServer(tb testing.TB, ho broker.Options, o Options) *testServer {
	tb.Helper()
	ts := startServer(tb, ho, o, func(h http.Handler) *httptest.Server { return httptest.NewServer(h) })
	return ts
}

// startServer is newServer with a custom way to start the httptest server.
func startServer(tb testing.TB, ho broker.Options, o Options, start func(http.Handler) *httptest.Server) *testServer {
	tb.Helper()
	hub := broker.NewHub(ho)
	hub.Settle() // one node: a relay here only fakes peers' acks
	o.Hub = hub
	if o.NodeName == "" {
		o.NodeName = "test-node"
	}
	o.Registry = prometheus.NewRegistry()
	h, err := NewHandler(o)
	if err != nil {
		tb.Fatal(err)
	}
	ts := &testServer{Server: start(h), hub: hub, h: h, reg: o.Registry}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := h.CloseStreams(ctx); err != nil {
			tb.Errorf("CloseStreams: %v", err)
		}
		ts.Close()
		hub.Close()
	})
	return ts
}

type answer struct {
	status int
	header http.Header
	body   string
}

// do sends a request and reads the whole answer.
func (ts *testServer) do(tb testing.TB, method, path string, header http.Header, body string) answer {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// publish publishes data on channel and returns the event's id.
func (ts *testServer) publish(tb testing.TB, channel, data string) string {
	tb.Helper()
	a := ts.do(tb, http.MethodPost, "/channels/"+channel, nil, data)
	if a.status != http.StatusOK {
		tb.Fatalf("POST /channels/%s = %d %s, want 200", channel, a.status, a.body)
	}
	var p published
	decode(tb, a.body, &p)
	if p.Channel != channel || p.ID == "" {
		tb.Fatalf("POST /channels/%s = %s, want an id and the channel", channel, a.body)
	}
	return p.ID
}

func decode(tb testing.TB, body string, v any) {
	tb.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		tb.Fatalf("decode %q: %v", body, err)
	}
}

// wantError checks a JSON error answer.
func wantError(tb testing.TB, what string, a answer, status int) {
	tb.Helper()
	if a.status != status {
		tb.Errorf("%s = %d %s, want %d", what, a.status, a.body, status)
	}
	var e errorBody
	if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Error == "" {
		tb.Errorf("%s body = %q, want JSON {\"error\": ...}", what, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		tb.Errorf("%s Content-Type = %q, want application/json", what, ct)
	}
}

// sseStream is an open event stream read with the test's parser.
type sseStream struct {
	resp *http.Response
	*sseParser
}

// openStream opens path as an event stream; the request ends at cleanup.
func (ts *testServer) openStream(tb testing.TB, path string, header http.Header) *sseStream {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+path, nil)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		cancel()
		tb.Fatalf("GET %s: %v", path, err)
	}
	tb.Cleanup(func() {
		cancel()
		resp.Body.Close()
	})
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("GET %s = %d %s, want 200", path, resp.StatusCode, b)
	}
	return &sseStream{resp: resp, sseParser: newParser(resp.Body)}
}

// read returns the next n events.
func (s *sseStream) read(tb testing.TB, n int) []sseEvent {
	tb.Helper()
	out := make([]sseEvent, 0, n)
	for len(out) < n {
		ev, err := s.next()
		if err != nil {
			tb.Fatalf("read event %d of %d: %v (got %+v)", len(out)+1, n, err, out)
		}
		out = append(out, ev)
	}
	return out
}

// metric returns the value of one sample of the registry, or -1.
func (ts *testServer) metric(tb testing.TB, name string, labels map[string]string) float64 {
	tb.Helper()
	mfs, err := ts.reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}
