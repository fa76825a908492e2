package web

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strings"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// rawStream opens path over a raw HTTP/1.x connection and returns the
// connection and a reader positioned after the response headers.
func rawStream(tb testing.TB, ts *testServer, request string) (net.Conn, *bufio.Reader, *http.Response) {
	tb.Helper()
	c := ts.dial(tb)
	tb.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := io.WriteString(c, request); err != nil {
		tb.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return c, br, resp
}

// waitStreams waits until n streams are open.
func waitStreams(tb testing.TB, ts *testServer, n int) {
	tb.Helper()
	waitFor(tb, fmt.Sprint(n, " streams open"), func() bool { return ts.h.openStreams() == n })
}

// TestDetachedWire: an HTTP/1.1 stream, written by the stream itself once
// net/http handed the connection over, is byte for byte a chunked
// response: the headers, chunks the standard reader accepts, the last
// chunk when the stream ends, then the connection closes.
func TestDetachedWire(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	_, br, resp := rawStream(t, ts, "GET /channels/wire HTTP/1.1\r\nHost: rumor\r\n\r\n")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" ||
		resp.Header.Get("Connection") != "keep-alive" || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("response %d, header %v, transfer encoding %v; want 200, an event stream, keep-alive, chunked", resp.StatusCode, resp.Header, resp.TransferEncoding)
	}
	p := newParser(resp.Body)
	id := ts.publish(t, "wire", "one\ntwo")
	if ev, err := p.next(); err != nil || ev.Data != "one\ntwo" || ev.LastEventID != id {
		t.Fatalf("event = %+v, %v; want %q with id %s", ev, err, "one\ntwo", id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := ts.h.CloseStreams(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.next(); !errors.Is(err, io.EOF) || p.retry < 2000 {
		t.Errorf("after CloseStreams: %v with retry %d, want a clean end (the last chunk) after a retry:", err, p.retry)
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("after the last chunk the connection gave %d bytes, %v; want it closed", n, err)
	}
}

// TestDetachedClientGone: a detached stream notices its client leave
// without writing, and gives back its place.
func TestDetachedClientGone(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{MaxStreamsPerClient: 1})
	c, _, _ := rawStream(t, ts, "GET /channels/gone HTTP/1.1\r\nHost: rumor\r\n\r\n")
	waitStreams(t, ts, 1)
	c.Close()
	waitStreams(t, ts, 0)
	if v := ts.metric(t, "rumor_streams_ended_total", map[string]string{"reason": "client"}); v != 1 {
		t.Errorf("rumor_streams_ended_total{reason=client} = %v, want 1", v)
	}
	// The client's slot came back with it.
	s := ts.openStream(t, "/channels/gone", nil)
	id := ts.publish(t, "gone", "x")
	if ev := s.read(t, 1)[0]; ev.LastEventID != id {
		t.Errorf("event %+v, want id %s", ev, id)
	}
}

// TestDetachedIgnoresClientBytes: bytes a client sends after its request
// (a pipelined request, garbage) neither end the stream nor get an answer.
func TestDetachedIgnoresClientBytes(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	c, _, resp := rawStream(t, ts, "GET /channels/pipe HTTP/1.1\r\nHost: rumor\r\n\r\n")
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: rumor\r\n\r\nzzz"); err != nil {
		t.Fatal(err)
	}
	p := newParser(resp.Body)
	id := ts.publish(t, "pipe", "after")
	if ev, err := p.next(); err != nil || ev.LastEventID != id {
		t.Errorf("event = %+v, %v; want id %s", ev, err, id)
	}
}

// TestHTTP10Stream: an HTTP/1.0 request cannot be answered in chunks; its
// stream stays with net/http and ends with the connection.
func TestHTTP10Stream(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	_, _, resp := rawStream(t, ts, "GET /channels/old HTTP/1.0\r\nHost: rumor\r\n\r\n")
	if len(resp.TransferEncoding) != 0 || resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP/1.0 stream: %d, transfer encoding %v; want 200, not chunked", resp.StatusCode, resp.TransferEncoding)
	}
	p := newParser(resp.Body)
	id := ts.publish(t, "old", "x")
	if ev, err := p.next(); err != nil || ev.LastEventID != id {
		t.Errorf("event = %+v, %v; want id %s", ev, err, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := ts.h.CloseStreams(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.next(); !errors.Is(err, io.EOF) {
		t.Errorf("after CloseStreams: %v, want EOF", err)
	}
}

// TestHTTP2Stream: HTTP/2 streams share their connection and stay with
// net/http; they work as before.
func TestHTTP2Stream(t *testing.T) {
	ts := startServer(t, broker.Options{}, Options{}, func(h http.Handler) *httptest.Server {
		srv := httptest.NewUnstartedServer(h)
		srv.EnableHTTP2 = true
		srv.StartTLS()
		return srv
	})
	s := ts.openStream(t, "/channels/h2", nil)
	if s.resp.ProtoMajor != 2 {
		t.Fatalf("stream over %s, want HTTP/2", s.resp.Proto)
	}
	id := ts.publish(t, "h2", "x")
	if ev := s.read(t, 1)[0]; ev.LastEventID != id {
		t.Errorf("event %+v, want id %s", ev, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := ts.h.CloseStreams(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.next(); !errors.Is(err, io.EOF) {
		t.Errorf("after CloseStreams: %v, want EOF", err)
	}
}

// TestHTTP11OverTLS: a TLS client that does not offer HTTP/2 gets a
// detached HTTP/1.1 stream through the TLS connection.
func TestHTTP11OverTLS(t *testing.T) {
	ts := startServer(t, broker.Options{}, Options{}, func(h http.Handler) *httptest.Server {
		srv := httptest.NewUnstartedServer(h)
		srv.StartTLS()
		return srv
	})
	c, err := tls.Dial("tcp", ts.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	io.WriteString(c, "GET /channels/tls HTTP/1.1\r\nHost: rumor\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stream over TLS: %v %v", resp, err)
	}
	p := newParser(resp.Body)
	waitStreams(t, ts, 1)
	if _, _, err := ts.hub.Publish(context.Background(), []broker.Message{{Channel: "tls", Data: []byte("x")}}, broker.AckLocal); err != nil {
		t.Fatal(err)
	}
	if ev, err := p.next(); err != nil || ev.Data != "x" {
		t.Errorf("event = %+v, %v", ev, err)
	}
}

// TestCloseStreamsAbortsStuckWriter: once CloseStreams's deadline has
// passed, a detached stream stuck writing to a client that stopped
// reading ends at once, not after its write timeout: net/http's Close no
// longer reaches its connection.
func TestCloseStreamsAbortsStuckWriter(t *testing.T) {
	ts := startServer(t, broker.Options{}, Options{WriteTimeout: time.Minute}, func(h http.Handler) *httptest.Server {
		srv := httptest.NewUnstartedServer(h)
		srv.Listener = &slowListener{Listener: srv.Listener}
		srv.Start()
		return srv
	})
	rawStream(t, ts, "GET /channels/stuck HTTP/1.1\r\nHost: rumor\r\n\r\n") // and never read again
	waitStreams(t, ts, 1)
	big := strings.Repeat("x", 64<<10)
	for range 200 { // far more than the socket buffers hold
		if _, _, err := ts.hub.Publish(context.Background(), []broker.Message{{Channel: "stuck", Data: []byte(big)}}, broker.AckLocal); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := ts.h.CloseStreams(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CloseStreams with a stuck stream = %v, want the deadline", err)
	}
	start := time.Now()
	waitStreams(t, ts, 0)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the stuck stream ended %v after CloseStreams gave up", took)
	}
}

// TestChunkWriter: a detached stream's writes go out as chunks of the
// chunked body, byte for byte: the size in hex, CRLF, the bytes, CRLF. An
// empty write sends nothing (an empty chunk would end the body); hangUp
// sends the last chunk and closes the connection.
func TestChunkWriter(t *testing.T) {
	hub := broker.NewHub(broker.Options{})
	defer hub.Close()
	h, err := NewHandler(Options{Hub: hub})
	if err != nil {
		t.Fatal(err)
	}
	server, client := net.Pipe()
	defer client.Close()
	s := &stream{h: h}
	s.conn.Store(&server)
	gone := make(chan struct{})
	close(gone) // no reader of the client's bytes: hangUp need not wait for one
	s.gone = gone
	wire := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(client) // until hangUp closes the connection
		wire <- string(b)
	}()

	long := strings.Repeat("x", 300)
	for _, p := range []string{"retry: 2000\n\n", "", long} {
		if err := s.write([]byte(p)); err != nil {
			t.Fatalf("write(%q): %v", p, err)
		}
	}
	if err := s.writeString(": ping\n"); err != nil {
		t.Fatalf("writeString: %v", err)
	}
	s.hangUp()
	got := <-wire
	want := "d\r\nretry: 2000\n\n\r\n" + "12c\r\n" + long + "\r\n" + "7\r\n: ping\n\r\n" + "0\r\n\r\n"
	if got != want {
		t.Fatalf("on the wire:\n%q\nwant\n%q", got, want)
	}
	body, err := io.ReadAll(httputil.NewChunkedReader(strings.NewReader(got)))
	if err != nil || string(body) != "retry: 2000\n\n"+long+": ping\n" {
		t.Errorf("the standard chunked reader read %q, %v", body, err)
	}
}
