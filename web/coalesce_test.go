package web

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// readChunk reads one chunk of a chunked body: on a detached stream, one
// chunk is one write.
func readChunk(tb testing.TB, br *bufio.Reader) string {
	tb.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		tb.Fatalf("chunk size: %v", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
	if err != nil {
		tb.Fatalf("chunk size %q: %v", line, err)
	}
	p := make([]byte, n+2)
	if _, err := io.ReadFull(br, p); err != nil {
		tb.Fatalf("chunk of %d bytes: %v", n, err)
	}
	return string(p[:n])
}

func publishNow(tb testing.TB, ts *testServer, channel, data string) {
	tb.Helper()
	msg := broker.Message{Channel: channel, Data: []byte(data)}
	if _, _, err := ts.hub.Publish(context.Background(), []broker.Message{msg}, broker.AckLocal); err != nil {
		tb.Fatal(err)
	}
}

// TestCoalesceSharesWrite: events that become ready less than Coalesce
// after a stream's last write wait and go out together in one write; the
// first event after a quiet stream goes out at once.
// It runs in a synctest bubble: the stream's clock is the test's.
func TestCoalesceSharesWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const coalesce = time.Second
		ts := newPipeServer(t, broker.Options{}, Options{Coalesce: coalesce})
		conn, br, _ := rawStream(t, ts, "GET /channels/co HTTP/1.1\r\nHost: rumor\r\n\r\n")
		if c := readChunk(t, br); !strings.HasPrefix(c, "retry:") {
			t.Fatalf("first chunk %q, want the preamble", c)
		}
		publishNow(t, ts, "co", "first")
		if c := readChunk(t, br); !strings.Contains(c, "data: first\n") {
			t.Fatalf("chunk %q, want the first event alone", c)
		}
		wrote := time.Now()
		publishNow(t, ts, "co", "second")
		// Nothing is written until Coalesce after the last write.
		_ = conn.SetReadDeadline(wrote.Add(coalesce - time.Millisecond))
		if _, err := br.Peek(1); !isTimeout(err) {
			t.Fatalf("peek: %v; want nothing written within %v of the last write", err, coalesce)
		}
		_ = conn.SetReadDeadline(time.Time{})
		publishNow(t, ts, "co", "third")
		c := readChunk(t, br)
		if !strings.Contains(c, "data: second\n") || !strings.Contains(c, "data: third\n") {
			t.Fatalf("chunk %q, want the second and third events in one write", c)
		}
		if strings.Index(c, "second") > strings.Index(c, "third") {
			t.Fatalf("chunk %q: events out of order", c)
		}
		if d := time.Since(wrote); d != coalesce {
			t.Errorf("the shared write came %v after the last one, want %v", d, coalesce)
		}
	})
}

// TestCoalesceOff: with a negative Coalesce every event is written as soon
// as the stream wakes.
func TestCoalesceOff(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{Coalesce: -1})
	_, br, _ := rawStream(t, ts, "GET /channels/co HTTP/1.1\r\nHost: rumor\r\n\r\n")
	readChunk(t, br) // the preamble
	for i := range 3 {
		data := fmt.Sprint("event-", i)
		publishNow(t, ts, "co", data)
		if c := readChunk(t, br); !strings.Contains(c, "data: "+data+"\n") || strings.Count(c, "data: ") != 1 {
			t.Fatalf("chunk %q, want %s alone", c, data)
		}
	}
}

// TestCoalesceShutdown: an event waiting to share a write is not lost when
// the node shuts streams down: it goes out with the shutdown's retry:.
func TestCoalesceShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newPipeServer(t, broker.Options{}, Options{Coalesce: time.Hour})
		c, br, _ := rawStream(t, ts, "GET /channels/co HTTP/1.1\r\nHost: rumor\r\n\r\n")
		readChunk(t, br) // the preamble
		publishNow(t, ts, "co", "first")
		if got := readChunk(t, br); !strings.Contains(got, "data: first\n") {
			t.Fatalf("chunk %q, want the first event at once", got)
		}
		publishNow(t, ts, "co", "waiting")
		_ = c.SetReadDeadline(time.Now().Add(time.Hour - time.Millisecond))
		if _, err := br.Peek(1); !isTimeout(err) {
			t.Fatalf("peek: %v; want nothing written within the hour", err)
		}
		_ = c.SetReadDeadline(time.Now().Add(testTimeout))
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		closed := make(chan error, 1)
		go func() { closed <- ts.h.CloseStreams(ctx) }() // a pipe holds no bytes: read while it writes
		got := readChunk(t, br)
		if !strings.Contains(got, "data: waiting\n") || !strings.Contains(got, "retry: ") {
			t.Fatalf("last chunk %q, want the waiting event and a retry:", got)
		}
		_, _ = io.Copy(io.Discard, br) // the last chunk, then the connection closes
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		if v := ts.metric(t, "rumor_streams_ended_total", map[string]string{"reason": endShutdown}); v != 1 {
			t.Errorf("rumor_streams_ended_total{reason=shutdown} = %v, want 1", v)
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
