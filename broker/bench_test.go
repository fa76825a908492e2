package broker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rumorhq/rumor/broker"
)

func BenchmarkAppendFrame(b *testing.B) {
	data := []byte(strings.Repeat(`{"order":42,"state":"paid"}`, 8)[:200])
	id := broker.ID{Time: 0x0192a3b4c5d60001, Origin: 0xdeadbeefcafef00d, Seq: 123456}
	var buf []byte
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		buf = broker.AppendFrame(buf[:0], id, "order.paid", data)
	}
}

// BenchmarkPublish publishes one 200-byte event to a channel with n local
// subscribers. The subscribers are drained outside the timer.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			const queue = 1024
			h := newHub(b, broker.Options{QueueSize: queue})
			subs := make([]*broker.Subscription, n)
			for i := range subs {
				subs[i] = subscribe(b, h, broker.ID{}, "bench")
			}
			msgs := []broker.Message{{Channel: "bench", Type: "tick", Data: []byte(strings.Repeat("x", 200))}}
			ctx := context.Background()
			var buf []*broker.Event
			drainAll := func() {
				for _, s := range subs {
					var err error
					if buf, err = s.Drain(buf[:0]); err != nil {
						b.Fatal(err)
					}
				}
			}
			// Grow every queue to its working size first: steady state only.
			for range queue / 2 {
				if _, _, err := h.Publish(ctx, msgs, broker.AckLocal); err != nil {
					b.Fatal(err)
				}
			}
			drainAll()
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := h.Publish(ctx, msgs, broker.AckLocal); err != nil {
					b.Fatal(err)
				}
				if i++; i%(queue/2) == 0 {
					b.StopTimer()
					drainAll()
					b.StartTimer()
				}
			}
			if st := h.Stats(); st.SlowDisconnects != 0 {
				b.Fatalf("%d subscribers fell behind", st.SlowDisconnects)
			}
		})
	}
}

// BenchmarkSubscribeReplay subscribes after a retained position and
// collects the replay, on one channel and on a pattern over ten.
func BenchmarkSubscribeReplay(b *testing.B) {
	for _, tc := range []struct {
		name     string
		channels int
		pattern  string
	}{{"channel", 1, "c0"}, {"pattern", 10, "c*"}} {
		b.Run(tc.name, func(b *testing.B) {
			h := newHub(b, broker.Options{HistorySize: 1000})
			var ids []broker.ID
			for i := range 1000 {
				ids = append(ids, publish(b, h, fmt.Sprintf("c%d", i%tc.channels), "x"))
			}
			p, err := broker.ParsePattern(strings.Replace(tc.pattern, "c*", "*", 1))
			if err != nil {
				b.Fatal(err)
			}
			req := broker.SubscribeRequest{Patterns: []broker.Pattern{p}, From: broker.PositionOf(ids[900])}
			b.ReportAllocs()
			for b.Loop() {
				s, err := h.Subscribe(req)
				if err != nil {
					b.Fatal(err)
				}
				if len(s.Replay) != 99 || s.Reset {
					b.Fatalf("Replay %d events, Reset %v", len(s.Replay), s.Reset)
				}
				s.Close()
			}
		})
	}
}

func BenchmarkDeliverDuplicate(b *testing.B) {
	h := newHub(b, broker.Options{})
	e := &broker.Event{ID: broker.ID{Time: 1 << 16, Origin: 5, Seq: 1}, Channel: "a", Data: []byte("x")}
	h.Deliver(e)
	b.ReportAllocs()
	for b.Loop() {
		if h.Deliver(e) {
			b.Fatal("duplicate delivered")
		}
	}
}

// BenchmarkRepair: a node missing every tenth event of three origins (1,000
// retained each) builds its digest, and a peer answers it.
func BenchmarkRepair(b *testing.B) {
	holder := newHub(b, broker.Options{})
	lacking := newHub(b, broker.Options{})
	for o := uint64(7); o < 10; o++ {
		for q := uint64(1); q <= 1000; q++ {
			holder.Deliver(peerEvent(o, q))
			if q%10 != 5 {
				lacking.Deliver(peerEvent(o, q))
			}
		}
	}
	b.Run("Digest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if d := lacking.Digest(); len(d) != 3 {
				b.Fatal(d)
			}
		}
	})
	d := lacking.Digest()
	b.Run("Missing", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if got := holder.Missing(d, 100, 0); len(got) != 100 {
				b.Fatal(len(got))
			}
		}
	})
}
