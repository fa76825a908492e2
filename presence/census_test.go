package presence

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// FuzzCensus feeds a peer's census bytes to a directory: nothing panics,
// and whatever is accepted leaves the sums consistent (no negative count,
// no subject held with no streams).
func FuzzCensus(f *testing.F) {
	full, _ := json.Marshal(census{Seq: 1, Full: true, Streams: 2, Ch: map[string]wireEntry{"a": {N: 2, S: map[string]int{"x": 1}}}})
	delta, _ := json.Marshal(census{Seq: 2, Streams: 1, Ch: map[string]wireEntry{"a": {N: 1, S: map[string]int{"x": 0}}}})
	f.Add(full, delta)
	f.Add([]byte(`{"q":1,"f":true,"c":{"a":{"n":-1}}}`), []byte(`{"q":2,"c":{"a":{"n":3,"s":{"y":9}}}}`))
	f.Add([]byte(`{"q":1,"f":true,"a":{"room":{"on":true,"id":"x"}}}`), []byte(`not json`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		hub := broker.NewHub(broker.Options{})
		defer hub.Close()
		d, err := New(Options{Hub: hub, Interval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		const peer = 0xfeed
		d.mu.Lock()
		defer d.mu.Unlock()
		d.updateMembers([]uint64{d.origin, peer}, time.Now())
		for _, raw := range [][]byte{a, b} {
			c, err := decodeCensus(raw)
			if err != nil {
				continue
			}
			d.applyCensus(peer, c, time.Now())
		}
		for k, e := range d.agg {
			if e.n < 0 {
				t.Fatalf("count of %q = %d", k, e.n)
			}
			for s, n := range e.subs {
				if n <= 0 {
					t.Fatalf("subject %q of %q: %d streams of %d", s, k, n, e.n)
				}
			}
		}
	})
}
