//go:build !race

package web

import (
	"bufio"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// maxIdleStream bounds what an idle HTTP/1.1 stream costs the server. It
// was about 28 KiB (Go 1.26, amd64) while the stream ran inside net/http:
// the connection's bufio reader and writer and the response's chunk buffer
// (10 KiB), the parsed request and its context (about 4 KiB), the handler
// goroutine's 8 KiB stack and the 2 KiB stack of net/http's goroutine that
// watches for the client going away. Since the stream takes its connection
// over once the headers are out (stream.detach), all of that is freed and
// an idle stream measures about 10.5 KiB: the stream's writer goroutine
// (a 4 KiB stack once the GC has shrunk it after the first write), its
// reader (2 KiB), and 3.3 KiB of heap: the stream, the subscription, the
// heartbeat timer, the connection's file descriptor and addresses, and the
// two goroutines' descriptors. Write buffers are pooled, so an idle stream
// holds none.
const maxIdleStream = 16 << 10

// TestIdleStreamMemory measures the memory an idle stream holds: heap and
// goroutine stacks, over 400 streams. The clients are raw connections in
// this process; their few hundred bytes each count too. Not under -race,
// which adds its own per-goroutine state.
func TestIdleStreamMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 400 connections")
	}
	ts := newServer(t, broker.Options{}, Options{})
	const n = 400
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	before := memStats()
	for range n {
		c, err := net.DialTimeout("tcp", ts.Listener.Addr().String(), testTimeout)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		_ = c.SetDeadline(time.Now().Add(testTimeout))
		if _, err := io.WriteString(c, "GET /channels/idle HTTP/1.1\r\nHost: rumor\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReaderSize(c, 16)
		for { // up to the connect comment: the stream is subscribed and idle
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(line, ": rumor") {
				break
			}
		}
	}
	after := memStats()
	heap := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	stack := (int64(after.StackInuse) - int64(before.StackInuse)) / n
	t.Logf("an idle stream holds %d bytes: heap %d, stacks %d", heap+stack, heap, stack)
	if heap+stack > maxIdleStream {
		t.Errorf("an idle stream holds %d bytes (heap %d, stacks %d), want at most %d", heap+stack, heap, stack, maxIdleStream)
	}
}

func memStats() runtime.MemStats {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m
}
