package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// streamServer is an httptest server whose handler sees each connection's
// number (from 1) and Last-Event-ID. Its cleanup closes it.
type streamServer struct {
	*httptest.Server
	mu      sync.Mutex
	lastIDs []string // Last-Event-ID of each request, in order
	queries []string
}

func newStreamServer(tb testing.TB, handle func(w http.ResponseWriter, r *http.Request, n int)) *streamServer {
	tb.Helper()
	s := &streamServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.lastIDs = append(s.lastIDs, r.Header.Get("Last-Event-ID"))
		s.queries = append(s.queries, r.URL.RequestURI())
		n := len(s.lastIDs)
		s.mu.Unlock()
		handle(w, r, n)
	}))
	tb.Cleanup(s.Close)
	return s
}

func (s *streamServer) requests() (lastIDs, queries []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lastIDs...), append([]string(nil), s.queries...)
}

// beginStream answers 200 with the headers of an event stream.
func beginStream(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
}

func writeFlush(w http.ResponseWriter, s string) {
	_, _ = io.WriteString(w, s)
	w.(http.Flusher).Flush()
}

// subscribeArgs are the flags the tests use: a tiny backoff keeps them fast.
func subscribeArgs(server string, rest ...string) []string {
	return append([]string{"subscribe", "--server", server, "--retry", "1ms", "--max-retry", "4ms"}, rest...)
}

// Trap 1: the r3labs client returns, without reconnecting, when the server
// ends the response cleanly, which is exactly what a draining node does.
// rumor subscribe comes back and resumes after the last id.
func TestSubscribeResumesAfterCleanEnd(t *testing.T) {
	srv := newStreamServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		beginStream(w)
		switch n {
		case 1:
			writeFlush(w, "retry: 1\n\nid: A\ndata: first\n\n")
			return // a clean end of the response
		default:
			writeFlush(w, "id: B\ndata: second\n\n")
			<-r.Context().Done()
		}
	})
	sub := start(t, env(nil), subscribeArgs(srv.URL, "demo", "orders.>")...)
	sub.out.waitContains(t, "data: second")
	if err := sub.stop(t); err != nil {
		t.Errorf("subscribe returned %v after its context ended, want nil", err)
	}
	if got, want := sub.out.String(), "id: A\ndata: first\n\nid: B\ndata: second\n\n"; got != want {
		t.Errorf("subscribe printed %q, want %q", got, want)
	}
	lastIDs, queries := srv.requests()
	if len(lastIDs) < 2 || lastIDs[0] != "" || lastIDs[1] != "A" {
		t.Errorf("Last-Event-ID of the connections = %q, want [\"\" \"A\"]", lastIDs)
	}
	if want := "/events?channel=demo&channel=orders.%3E"; queries[0] != want {
		t.Errorf("subscribe requested %q, want %q", queries[0], want)
	}
	if !strings.Contains(sub.errOut.String(), "stream ended; resuming after A") {
		t.Errorf("stderr does not tell about the resume:\n%s", sub.errOut)
	}
}

// Trap 2: the r3labs client's scanner gives up on events over 64 KiB and
// then, reconnecting to the same event, never gets past it.
func TestSubscribeLargeEvent(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 200<<10/16)        // 200 KiB on one line
	lines := strings.Repeat(strings.Repeat("z", 63)+"\n", 4<<10) // 256 KiB in 4096 lines
	srv := newStreamServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		beginStream(w)
		writeFlush(w, string(broker.AppendFrame(nil, broker.ID{Time: 1, Origin: 1, Seq: 1}, "", []byte(big))))
		writeFlush(w, string(broker.AppendFrame(nil, broker.ID{Time: 1, Origin: 1, Seq: 2}, "bulk", []byte(lines))))
		<-r.Context().Done()
	})
	sub := start(t, env(nil), subscribeArgs(srv.URL, "--json", "demo")...)
	out := sub.out.waitFor(t, "two JSON lines", func(s string) bool { return strings.Count(s, "\n") >= 2 })
	sub.stop(t)
	var got []map[string]string
	for line := range strings.Lines(out) {
		var m map[string]string
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("--json printed a line that is not JSON: %v", err)
		}
		got = append(got, m)
	}
	if len(got) != 2 || got[0]["data"] != big || got[0]["event"] != "message" || got[1]["data"] != lines || got[1]["event"] != "bulk" {
		t.Errorf("subscribe --json did not print the 200 KiB and 256 KiB events intact (%d lines)", len(got))
	}
	if lastIDs, _ := srv.requests(); len(lastIDs) != 1 {
		t.Errorf("subscribe connected %d times, want once", len(lastIDs))
	}
}

// Trap 3 against a real server: it refuses (503, then connections cut
// before any answer) several times, then comes back. The client keeps
// trying and gets the event.
func TestSubscribeRetriesUntilServerComesBack(t *testing.T) {
	srv := newStreamServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch {
		case n <= 3:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"node is draining"}`)
		case n <= 5:
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		default:
			beginStream(w)
			writeFlush(w, "id: 1\ndata: back\n\n")
			<-r.Context().Done()
		}
	})
	sub := start(t, env(nil), subscribeArgs(srv.URL, "demo")...)
	sub.out.waitContains(t, "data: back")
	sub.stop(t)
	if lastIDs, _ := srv.requests(); len(lastIDs) != 6 {
		t.Errorf("subscribe connected %d times, want 6", len(lastIDs))
	}
	if !strings.Contains(sub.errOut.String(), "503 Service Unavailable: node is draining; resuming in") {
		t.Errorf("stderr does not show the server's error:\n%s", sub.errOut)
	}
}

// Trap 3, the 15 minutes: the r3labs default backoff stops after 15
// minutes. In a bubble with fake time, a server that is gone for 20
// minutes is retried all along, at most --max-retry apart, and the client
// picks up once it is back.
func TestSubscribeNeverGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		begin := time.Now()
		var calls []time.Time
		rt := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			calls = append(calls, time.Now())
			if time.Since(begin) < 20*time.Minute {
				return nil, errors.New("connection refused")
			}
			return fakeStream(req, "id: 1\ndata: back\n\n"), nil
		})
		s, out, _ := fakeSubscriber(rt)
		s.backoff = reconnectBackoff{initial: time.Second, max: 30 * time.Second, server: -1}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.run(ctx) }()
		for i := 0; i < 3600 && !strings.Contains(out.String(), "data: back"); i++ {
			time.Sleep(time.Second)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run = %v after cancel, want nil", err)
		}
		if !strings.Contains(out.String(), "data: back") {
			t.Fatalf("no event after %v of fake time and %d attempts", time.Since(begin), len(calls))
		}
		for i := 1; i < len(calls); i++ {
			if gap := calls[i].Sub(calls[i-1]); gap > 30*time.Second || gap <= 0 {
				t.Errorf("attempt %d came %v after the previous one, want (0, 30s]", i+1, gap)
			}
		}
		if last := calls[len(calls)-1].Sub(begin); last < 20*time.Minute || last > 21*time.Minute {
			t.Errorf("the successful attempt came at %v, want within 20m..21m", last)
		}
	})
}

// The first reconnection waits exactly what the server asked for with
// retry:; failures in a row then back off from there.
func TestSubscribeHonoursServerRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls []time.Time
		rt := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			calls = append(calls, time.Now())
			switch len(calls) {
			case 1:
				return fakeStream(req, "retry: 5000\n\nid: 1\ndata: a\n\n", io.EOF), nil
			case 2, 3:
				return nil, errors.New("connection refused")
			default:
				return fakeStream(req, "id: 2\ndata: b\n\n"), nil
			}
		})
		s, out, _ := fakeSubscriber(rt)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.run(ctx) }()
		for i := 0; i < 600 && !strings.Contains(out.String(), "data: b"); i++ {
			time.Sleep(time.Second)
		}
		cancel()
		<-done
		if len(calls) != 4 {
			t.Fatalf("%d connections, want 4", len(calls))
		}
		if gap := calls[1].Sub(calls[0]); gap != 5*time.Second {
			t.Errorf("reconnected %v after a clean end, want the server's retry: 5s", gap)
		}
		if gap := calls[2].Sub(calls[1]); gap < 7500*time.Millisecond || gap > 10*time.Second {
			t.Errorf("second attempt in a row after %v, want 7.5s..10s (5s doubled, jittered)", gap)
		}
	})
}

// A connection that goes silent (a half-open TCP connection after a node
// vanished) is given up after --idle-timeout; heartbeats keep it open.
func TestSubscribeIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls []time.Time
		rt := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			calls = append(calls, time.Now())
			if len(calls) == 1 {
				// Heartbeats every 20s for 5 minutes, then silence.
				return fakeStream(req, "retry: 1000\n\n", repeat(15, 20*time.Second, ": heartbeat\n\n")), nil
			}
			return fakeStream(req, "id: 2\ndata: again\n\n"), nil
		})
		s, out, notice := fakeSubscriber(rt)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.run(ctx) }()
		for i := 0; i < 3600 && !strings.Contains(out.String(), "data: again"); i++ {
			time.Sleep(time.Second)
		}
		cancel()
		<-done
		if len(calls) != 2 {
			t.Fatalf("%d connections, want 2", len(calls))
		}
		// 15 heartbeats 20s apart, then a minute of silence, then retry: 1s.
		if gap, want := calls[1].Sub(calls[0]), 15*20*time.Second+time.Minute+time.Second; gap != want {
			t.Errorf("reconnected after %v, want %v", gap, want)
		}
		if !strings.Contains(notice.String(), errIdle.Error()) {
			t.Errorf("stderr does not say why it reconnected:\n%s", notice)
		}
	})
}

// An event cut off by a broken connection is not printed, and the resume
// position stays before it, so the next connection gets it whole. (The
// r3labs client prints the half event and resumes after it: it is lost.)
func TestSubscribeCutOffEvent(t *testing.T) {
	srv := newStreamServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		beginStream(w)
		if n == 1 {
			writeFlush(w, "id: 1\ndata: one\n\nid: 2\ndata: tw")
			panic(http.ErrAbortHandler) // the connection breaks
		}
		writeFlush(w, "id: 2\ndata: two\n\n")
		<-r.Context().Done()
	})
	sub := start(t, env(nil), subscribeArgs(srv.URL, "demo")...)
	sub.out.waitContains(t, "data: two")
	sub.stop(t)
	if got, want := sub.out.String(), "id: 1\ndata: one\n\nid: 2\ndata: two\n\n"; got != want {
		t.Errorf("subscribe printed %q, want %q", got, want)
	}
	if lastIDs, _ := srv.requests(); len(lastIDs) != 2 || lastIDs[1] != "1" {
		t.Errorf("Last-Event-ID of the connections = %q, want [\"\" \"1\"]", lastIDs)
	}
}

// rumor.reset goes to stderr as a notice; events go on after it.
func TestSubscribeReset(t *testing.T) {
	srv := newStreamServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		beginStream(w)
		writeFlush(w, string(broker.ResetFrame("OLD")))
		writeFlush(w, "id: 5\nevent: order\ndata: after\n\n")
		<-r.Context().Done()
	})
	sub := start(t, env(nil), subscribeArgs(srv.URL, "--last-event-id", "OLD", "demo")...)
	sub.out.waitContains(t, "data: after")
	sub.stop(t)
	if got, want := sub.out.String(), "id: 5\nevent: order\ndata: after\n\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if want := `rumor.reset: events after "OLD" are no longer retained`; !strings.Contains(sub.errOut.String(), want) {
		t.Errorf("stderr = %q, want it to contain %q", sub.errOut, want)
	}
	if lastIDs, _ := srv.requests(); lastIDs[0] != "OLD" {
		t.Errorf("--last-event-id sent Last-Event-ID %q, want OLD", lastIDs[0])
	}
}

// What reconnecting cannot fix ends the command with the server's words.
func TestSubscribePermanentErrors(t *testing.T) {
	tests := []struct {
		name    string
		handle  func(w http.ResponseWriter)
		wantErr string
	}{
		{"bad channel", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":"invalid channel pattern \"a..b\": empty token"}`)
		}, `400 Bad Request: invalid channel pattern "a..b": empty token`},
		{"not a stream", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html>")
		}, `answered "text/html", not an event stream`},
		{"too large", func(w http.ResponseWriter) {
			beginStream(w)
			writeFlush(w, "data: "+strings.Repeat("x", 2<<10)+"\n\n")
		}, "event larger than --max-event-bytes"},
	}
	for _, tt := range tests {
		srv := newStreamServer(t, func(w http.ResponseWriter, r *http.Request, n int) { tt.handle(w) })
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := run(ctx, subscribeArgs(srv.URL, "--max-event-bytes", "1KiB", "a..b"), env(nil), io.Discard, io.Discard)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: subscribe = %v, want an error containing %q", tt.name, err, tt.wantErr)
		}
		if lastIDs, _ := srv.requests(); len(lastIDs) != 1 {
			t.Errorf("%s: %d connections, want 1 (no retry)", tt.name, len(lastIDs))
		}
	}
}

func TestSubscribeUsage(t *testing.T) {
	for _, args := range [][]string{
		{"subscribe"},
		{"subscribe", "--server", "localhost:8080", "demo"},
		{"subscribe", "--max-retry", "0s", "demo"},
	} {
		if err := run(t.Context(), args, env(nil), io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) = nil, want a usage error", args)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fakeSubscriber is a subscriber with the CLI's defaults and a fake network.
func fakeSubscriber(rt http.RoundTripper) (*subscriber, *output, *output) {
	out, notice := newOutput(), newOutput()
	return &subscriber{
		urls:     []string{"http://rumor.test/events?channel=demo"},
		client:   &http.Client{Transport: rt},
		maxEvent: 1 << 20,
		idle:     time.Minute,
		backoff:  reconnectBackoff{initial: time.Second, max: 30 * time.Second, server: -1},
		out:      out,
		notice:   notice,
	}, out, notice
}

// fakeStream answers req with an event stream of the given parts: strings
// are sent, a duration is waited, io.EOF ends the response cleanly. After
// the last part the body blocks until the request ends, like a live stream.
func fakeStream(req *http.Request, parts ...any) *http.Response {
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"text/event-stream"}},
		Body:       &fakeBody{ctx: req.Context(), parts: parts},
		Request:    req,
	}
}

func repeat(n int, every time.Duration, s string) []any {
	var parts []any
	for range n {
		parts = append(parts, every, s)
	}
	return parts
}

type fakeBody struct {
	ctx   context.Context
	parts []any
}

func (b *fakeBody) Read(p []byte) (int, error) {
	for len(b.parts) > 0 {
		part := b.parts[0]
		b.parts = b.parts[1:]
		switch v := part.(type) {
		case []any:
			b.parts = append(v, b.parts...)
		case string:
			return copy(p, v), nil // parts are small
		case time.Duration:
			select {
			case <-time.After(v):
			case <-b.ctx.Done():
				return 0, b.ctx.Err()
			}
		case error:
			return 0, v
		default:
			panic(fmt.Sprintf("fakeBody part %T", part))
		}
	}
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}

func (b *fakeBody) Close() error { return nil }

// A node that dies mid-stream (its connections cut, then refused): with
// several servers in $RUMOR_SERVER, subscribe moves to the next and
// resumes there after the last id it printed.
func TestSubscribeMovesToAnotherServer(t *testing.T) {
	dead := newStreamServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			beginStream(w)
			writeFlush(w, "retry: 1\n\nid: A\ndata: first\n\n")
		}
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close() // no clean end: a crash
	})
	alive := newStreamServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		beginStream(w)
		writeFlush(w, "id: B\ndata: second\n\n")
		<-r.Context().Done()
	})
	sub := start(t, env(map[string]string{"RUMOR_SERVER": dead.URL + ", " + alive.URL}),
		"subscribe", "--retry", "1ms", "--max-retry", "4ms", "demo")
	sub.out.waitContains(t, "data: second")
	sub.stop(t)
	if got, want := sub.out.String(), "id: A\ndata: first\n\nid: B\ndata: second\n\n"; got != want {
		t.Errorf("subscribe printed %q, want %q", got, want)
	}
	if lastIDs, _ := alive.requests(); len(lastIDs) == 0 || lastIDs[0] != "A" {
		t.Errorf("Last-Event-ID on the second server = %q, want \"A\" first", lastIDs)
	}
	if want := "resuming after A on " + alive.URL + "/events?channel=demo"; !strings.Contains(sub.errOut.String(), want) {
		t.Errorf("stderr does not say %q:\n%s", want, sub.errOut)
	}
}

// --server may be repeated and replaces $RUMOR_SERVER; every server is
// tried in turn while none answers, and each bad URL is named.
func TestSubscribeServerFlag(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // a port nobody listens on
	alive := newStreamServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		beginStream(w)
		writeFlush(w, "id: 1\ndata: here\n\n")
		<-r.Context().Done()
	})
	sub := start(t, env(map[string]string{"RUMOR_SERVER": "ftp://ignored"}),
		"subscribe", "--server", closed.URL, "--server", alive.URL, "--retry", "1ms", "demo")
	sub.out.waitContains(t, "data: here")
	if err := sub.stop(t); err != nil {
		t.Errorf("subscribe = %v, want nil", err)
	}

	err := run(t.Context(), []string{"subscribe", "--server", "http://ok:1,ftp://x", "--server", "nohost", "demo"}, env(nil), io.Discard, io.Discard)
	for _, want := range []string{`--server "ftp://x"`, `--server "nohost"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("subscribe with bad servers = %v, want it to name %s", err, want)
		}
	}
}

// With several servers, each one's first attempt waits the base delay;
// only a whole round of failures doubles it.
func TestBackoffRounds(t *testing.T) {
	b := reconnectBackoff{initial: time.Second, max: time.Minute, server: -1, servers: 3}
	for i := range 3 {
		if d := b.next(); d != time.Second {
			t.Errorf("attempt %d waits %v, want 1s (first round)", i, d)
		}
	}
	if d := b.next(); d < 1500*time.Millisecond || d > 2*time.Second {
		t.Errorf("first attempt of the second round waits %v, want 2s less up to a quarter", d)
	}
}

// --json against a real node: one stream of a channel and a pattern, and
// every line names the event's channel while the data stays as published.
func TestSubscribeJSONChannel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := startCluster(t, ctx, 1)
	n := c.nodes[0]
	sub := start(t, env(nil), subscribeArgs(n.URL(), "--json", "demo", "orders.>")...)
	for deadline := time.Now().Add(10 * time.Second); n.hub.Stats().Subscribers == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("rumor subscribe did not connect within 10s")
		}
	}
	want := []map[string]string{
		{"channel": "demo", "event": "message", "data": "a\nb"},
		{"channel": "orders.eu", "event": "order.paid", "data": `{"n":1}`},
	}
	want[0]["id"] = c.publish(t, n, "demo", "", "a\nb")
	want[1]["id"] = c.publish(t, n, "orders.eu", "order.paid", `{"n":1}`)
	c.publish(t, n, "elsewhere", "", "not subscribed")
	out := sub.out.waitFor(t, "two JSON lines", func(s string) bool { return strings.Count(s, "\n") >= 2 })
	sub.stop(t)
	var got []map[string]string
	for line := range strings.Lines(out) {
		var m map[string]string
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("--json printed %q, not JSON: %v", line, err)
		}
		if !strings.HasPrefix(m["lastEventId"], m["id"]) {
			t.Errorf("--json lastEventId %q does not start with id %q", m["lastEventId"], m["id"])
		}
		delete(m, "lastEventId")
		got = append(got, m)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("subscribe --json printed %v, want %v", got, want)
	}
}
