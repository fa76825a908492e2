package transport

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// benchEvent is what the data-plane benchmarks publish: 200 bytes on
// channel "bench".
func benchEvent() *broker.Event {
	return &broker.Event{
		ID:      broker.ID{Time: hlcNow(), Origin: 0x1234_5678_9abc_def0, Seq: 123_456},
		Channel: "bench",
		Data:    []byte(strings.Repeat("x", 200)),
		Born:    time.Now(),
	}
}

// BenchmarkEncodeEvent is the link writer's work per event: the payload,
// then the frame.
func BenchmarkEncodeEvent(b *testing.B) {
	e := benchEvent()
	var scratch, buf []byte
	b.ReportAllocs()
	for b.Loop() {
		scratch = appendEvent(scratch[:0], e)
		buf = appendFrame(buf[:0], frameEvent, scratch)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkEncodePeers is the writers' work for one event sent to N peers:
// each link encoding it (as before) against one encoding they all share
// (frames), each writer copying the frame into its buffered connection.
// Events of 200 bytes (benchEvent) and of 8 KiB.
func BenchmarkEncodePeers(b *testing.B) {
	for _, size := range []int{200, 8 << 10} {
		e := benchEvent()
		e.Data = bytes.Repeat([]byte("x"), size)
		for _, peers := range []int{2, 8} {
			out := make([]*bufio.Writer, peers)
			for i := range out {
				out[i] = bufio.NewWriterSize(io.Discard, 64<<10)
			}
			b.Run(fmt.Sprintf("data=%d/peers=%d/per-link", size, peers), func(b *testing.B) {
				scratch, buf := make([][]byte, peers), make([][]byte, peers)
				b.ReportAllocs()
				for b.Loop() {
					for i, w := range out {
						scratch[i] = appendEvent(scratch[i][:0], e)
						buf[i] = appendFrame(buf[i][:0], frameEvent, scratch[i])
						_, _ = w.Write(buf[i])
					}
				}
			})
			b.Run(fmt.Sprintf("data=%d/peers=%d/shared", size, peers), func(b *testing.B) {
				var f frames
				b.ReportAllocs()
				for b.Loop() {
					enc := f.encode(e)
					for _, bw := range out {
						held := enc.hold() // as each link queues it
						_, _ = bw.Write(held.b)
						held.release()
					}
				}
			})
		}
	}
}

// BenchmarkDecodeEvent is the relay reader's work per event: read the
// frame from the buffered connection, decode and check the event.
func BenchmarkDecodeEvent(b *testing.B) {
	frame := appendFrame(nil, frameEvent, appendEvent(nil, benchEvent()))
	b.Run("interned", func(b *testing.B) { benchDecode(b, frame, names{}) })
	b.Run("plain", func(b *testing.B) { benchDecode(b, frame, nil) })
}

func benchDecode(b *testing.B, frame []byte, n names) {
	r := bytes.NewReader(frame)
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(frame)
		br.Reset(r)
		kind, p, nb, err := readFrame(br, buf)
		buf = nb
		if err != nil || kind != frameEvent {
			b.Fatalf("readFrame: %d, %v", kind, err)
		}
		if _, err := n.event(p); err != nil {
			b.Fatal(err)
		}
	}
}

// A relay reader's names hand out one string per channel name and type,
// whatever the peer sends, and stay bounded.
func TestNamesIntern(t *testing.T) {
	n := names{}
	e := benchEvent()
	e.Type = "update"
	var first *broker.Event
	for range 3 {
		got, err := n.event(appendEvent(nil, e))
		if err != nil {
			t.Fatal(err)
		}
		if !sameEvent(got, e) {
			t.Fatalf("names.event = %+v, want %+v", got, e)
		}
		if first == nil {
			first = got
		} else if got.Channel != first.Channel || got.Type != first.Type {
			t.Fatalf("interned names differ: %q/%q and %q/%q", got.Channel, got.Type, first.Channel, first.Type)
		}
	}
	if len(n) != 2 {
		t.Errorf("names holds %d entries, want 2 (channel and type)", len(n))
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = n.event(appendEvent(make([]byte, 0, 512), e)) }); allocs > 3 {
		// the event, its data, and the encoding buffer of this test
		t.Errorf("decoding with interned names: %v allocations, want at most 3", allocs)
	}
	for i := range 3 * maxNames {
		n.intern(fmt.Appendf(nil, "channel-%d", i))
	}
	if len(n) > maxNames {
		t.Errorf("names grew to %d, want at most %d", len(n), maxNames)
	}
}
