package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// countWriter is a ResponseWriter that counts what a stream writes.
type countWriter struct {
	header http.Header
	n      atomic.Int64
	writes atomic.Int64
}

func (w *countWriter) Header() http.Header { return w.header }
func (w *countWriter) WriteHeader(int)     {}
func (w *countWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	w.writes.Add(1)
	return len(p), nil
}
func (w *countWriter) Flush()                           {}
func (w *countWriter) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkFanout measures one event's path from Hub.Publish to the bytes
// written on every stream of a channel: the broker's queueing and this
// package's drain, batch and write, until every stream has written it.
// allocs/op is the broker's per-event allocations (and this benchmark's
// one AppendFrame); the stream writers add none per event, so it does not
// grow with the number of streams.
func BenchmarkFanout(b *testing.B) {
	for _, streams := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			hub := broker.NewHub(broker.Options{HistorySize: -1, QueueSize: 1 << 20})
			defer hub.Close()
			h, err := NewHandler(Options{Hub: hub})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel()
			ws := make([]*countWriter, streams)
			for i := range ws {
				ws[i] = &countWriter{header: make(http.Header)}
				req := httptest.NewRequest(http.MethodGet, "/channels/bench", nil).WithContext(ctx)
				wg.Go(func() { h.ServeHTTP(ws[i], req) })
			}
			waitFor(b, "every stream subscribed", func() bool { return hub.Stats().Subscribers == streams })
			start := make([]int64, streams)
			for i, w := range ws {
				start[i] = w.n.Load()
			}
			data := []byte(strings.Repeat("x", 200))
			msg := []broker.Message{{Channel: "bench", Data: data}}
			var frameBytes int64
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				ids, _, err := hub.Publish(ctx, msg, broker.AckLocal)
				if err != nil {
					b.Fatal(err)
				}
				frameBytes += int64(len(broker.AppendFrame(nil, ids[0], "", data)))
			}
			for i, w := range ws { // the time includes writing every event to every stream
				waitFor(b, "the event written on every stream", func() bool { return w.n.Load()-start[i] == frameBytes })
			}
			b.StopTimer()
			var writes int64
			for _, w := range ws {
				writes += w.writes.Load()
			}
			b.ReportMetric(float64(b.N*streams)/float64(writes), "events/write")
		})
	}
}
