package broker

import (
	"testing"
	"time"
)

// BenchmarkHistoryAdd appends to a full channel log: every add evicts the
// oldest event from the channel log, the arrival queue and the origin log.
func BenchmarkHistoryAdd(b *testing.B) {
	h := NewHub(Options{HistorySize: 1000})
	defer h.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.channel("c")
	now := time.Unix(1_700_000_000, 0)
	events := make([]*Event, 4096)
	for i := range events {
		events[i] = &Event{Channel: "c", Data: make([]byte, 200)}
		events[i].Frame()
	}
	var seq uint64
	b.ReportAllocs()
	for b.Loop() {
		seq++
		e := events[seq%uint64(len(events))]
		e.ID = ID{Time: seq, Origin: 1, Seq: seq} // reused: the frame stays, only the id moves
		h.hist.add(c, e, seq, now)
	}
	if c.log.len() != min(1000, int(seq)) {
		b.Fatalf("log holds %d", c.log.len())
	}
}
