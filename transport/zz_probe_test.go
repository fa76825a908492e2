package transport

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

type recHub struct {
	*broker.Hub
	mu  sync.Mutex
	adv map[uint64][]time.Time
	del []time.Time
	tick []time.Time
}

func (h *recHub) Advance(o, w uint64) {
	h.mu.Lock()
	h.adv[o] = append(h.adv[o], time.Now())
	h.mu.Unlock()
	h.Hub.Advance(o, w)
}
func (h *recHub) Deliver(e *broker.Event) bool {
	h.mu.Lock()
	h.del = append(h.del, time.Now())
	h.mu.Unlock()
	return h.Hub.Deliver(e)
}
func (h *recHub) Tick() {
	h.mu.Lock()
	h.tick = append(h.tick, time.Now())
	h.mu.Unlock()
	h.Hub.Tick()
}

func maxGap(ts []time.Time, start time.Time) (time.Duration, time.Duration) {
	var g, at time.Duration
	for i := 1; i < len(ts); i++ {
		if d := ts[i].Sub(ts[i-1]); d > g {
			g, at = d, ts[i-1].Sub(start)
		}
	}
	return g, at
}

func BenchmarkProbeWM(b *testing.B) {
	var hubs []*recHub
	var nodes []*benchNode
	for i := 0; i < 3; i++ {
		origin := broker.NewOrigin()
		var join []string
		if i > 0 {
			join = []string{nodes[0].c.GossipAddr()}
		}
		c, _ := New(Config{NodeName: fmt.Sprintf("p%d", i+1), BindAddr: "127.0.0.1:0", Join: join, Origin: origin, Label: "bench", Key: []byte("0123456789abcdef")})
		hub := broker.NewHub(broker.Options{Origin: origin, Relay: c, QueueSize: 1 << 20})
		rh := &recHub{Hub: hub, adv: map[uint64][]time.Time{}}
		c.Start(context.Background(), rh)
		n := &benchNode{hub: hub, c: c}
		n.name = c.Self()
		b.Cleanup(n.crash)
		nodes = append(nodes, n)
		hubs = append(hubs, rh)
	}
	for _, nd := range nodes {
		for nd.c.Ready() != nil || nd.hub.Stats().Peers != 2 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	pat, _ := broker.ParsePattern(benchChannel)
	sub, _ := nodes[1].hub.Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{pat}})
	defer sub.Close()
	type drain struct {
		at  time.Duration
		n   int
		lat time.Duration
	}
	var drains []drain
	start := time.Now()
	for _, h := range hubs {
		h.mu.Lock(); h.adv = map[uint64][]time.Time{}; h.del = nil; h.tick = nil; h.mu.Unlock()
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var buf []*broker.Event
		for {
			select {
			case <-stop:
				return
			case <-sub.Ready():
			}
			buf, _ = sub.Drain(buf[:0])
			if len(buf) > 0 {
				drains = append(drains, drain{time.Since(start), len(buf), time.Since(buf[0].Born)})
			}
		}
	}()
	msg := []broker.Message{{Channel: benchChannel, Data: bytes.Repeat([]byte("x"), 200)}}
	for i := 0; i < 40000; i++ {
		if d := time.Until(start.Add(time.Duration(i) * 50 * time.Microsecond)); d > 0 {
			time.Sleep(d)
		}
		nodes[0].hub.Publish(context.Background(), msg, broker.AckLocal)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-done
	big := drain{}
	for _, d := range drains {
		if d.n > big.n {
			big = d
		}
	}
	b.Logf("largest drain at %v n=%d oldest=%v", big.at.Round(time.Millisecond), big.n, big.lat.Round(100*time.Microsecond))
	A, C := nodes[0].hub.Origin(), nodes[2].hub.Origin()
	B := hubs[1]
	g, at := maxGap(B.adv[A], start)
	b.Logf("at B: max gap of A's Advance %v at %v (%d calls)", g.Round(100*time.Microsecond), at.Round(time.Millisecond), len(B.adv[A]))
	g, at = maxGap(B.adv[C], start)
	b.Logf("at B: max gap of C's Advance %v at %v (%d calls)", g.Round(100*time.Microsecond), at.Round(time.Millisecond), len(B.adv[C]))
	g, at = maxGap(hubs[2].del, start)
	b.Logf("at C: max gap of Deliver %v at %v (%d)", g.Round(100*time.Microsecond), at.Round(time.Millisecond), len(hubs[2].del))
	g, at = maxGap(hubs[2].tick, start)
	b.Logf("at C: max gap of Tick %v at %v (%d)", g.Round(100*time.Microsecond), at.Round(time.Millisecond), len(hubs[2].tick))
	g, at = maxGap(hubs[1].del, start)
	b.Logf("at B: max gap of Deliver %v at %v (%d)", g.Round(100*time.Microsecond), at.Round(time.Millisecond), len(hubs[1].del))
}
