package web

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// A write's pieces say exactly what was added, in order; small pieces are
// copied together into the one scratch buffer, which never grows (earlier
// pieces point into it), and large ones are shared, not copied.
func TestBatchPieces(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	b := new(batch)
	for round := range 200 {
		var want []byte
		var large [][]byte
		for range r.IntN(60) {
			p := bytes.Repeat([]byte{byte('a' + r.IntN(26))}, 1+r.IntN(3*copyFrame))
			want = append(want, p...)
			if len(p) > copyFrame {
				large = append(large, p)
			}
			b.add(p)
		}
		var got []byte
		for _, p := range b.parts {
			got = append(got, p...)
		}
		if !bytes.Equal(got, want) || b.n != len(want) {
			t.Fatalf("round %d: the pieces hold %d bytes (n %d), want the %d added, in order", round, len(got), b.n, len(want))
		}
		if cap(b.buf) > copyBytes {
			t.Fatalf("round %d: scratch grew to %d bytes", round, cap(b.buf))
		}
		for _, p := range large {
			shared := false
			for _, q := range b.parts {
				shared = shared || unsafe.SliceData(q) == unsafe.SliceData(p)
			}
			if !shared {
				t.Fatalf("round %d: a %d-byte frame was copied, want it shared", round, len(p))
			}
		}
		b.reset()
	}
}
