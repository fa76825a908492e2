package transport

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

func BenchmarkProbeWrites(b *testing.B) {
	nodes := startBenchCluster(b, 3, benchOpts{})
	msg := []broker.Message{{Channel: benchChannel, Data: bytes.Repeat([]byte("x"), 200)}}
	for _, gap := range []time.Duration{10 * time.Millisecond, time.Millisecond} {
		w0 := benchWrites()
		t0 := time.Now()
		for i := 0; i < 200; i++ {
			nodes[0].hub.Publish(context.Background(), msg, broker.AckLocal)
			time.Sleep(gap)
		}
		el := time.Since(t0)
		w := benchWrites() - w0
		w0 = benchWrites()
		time.Sleep(el)
		idle := benchWrites() - w0
		b.Logf("gap %v: %d writes for 200 events, %d writes idle same time -> %.2f/event", gap, w, idle, float64(w-idle)/200)
	}
}
