package bench

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram is log-linear, like HdrHistogram: values below 128 ns are
// exact, larger ones fall in one of 64 buckets per power of two, so a
// reported percentile is within 1/64 (1.6%) above the true value.
const (
	subBits  = 6
	subCount = 1 << subBits // buckets per power of two
	exact    = 2 * subCount // values below this have a bucket each
	nBuckets = exact + (64-subBits-1)*subCount
)

// Histogram counts durations. Record is safe for concurrent use; a run
// gives each group of subscribers its own so that they do not share
// cache lines.
type Histogram struct {
	counts [nBuckets]atomic.Uint64
	n, sum atomic.Uint64
	max    atomic.Int64
}

func bucket(v uint64) int {
	if v < exact {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1 // v>>e is in [64, 128)
	return exact + (e-1)*subCount + int(v>>e) - subCount
}

// upper is the largest value that falls in bucket i.
func upper(i int) uint64 {
	if i < exact {
		return uint64(i)
	}
	e := (i-exact)/subCount + 1
	m := uint64((i-exact)%subCount + subCount)
	return (m+1)<<e - 1
}

// Record counts d; a negative d (clocks that stepped back) counts as 0.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucket(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if int64(v) <= m || h.max.CompareAndSwap(m, int64(v)) {
			return
		}
	}
}

// Add adds o's counts to h. It is not atomic with respect to Records on o.
func (h *Histogram) Add(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Max is the largest value recorded, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean is the average value recorded.
func (h *Histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Quantile returns the value below which a fraction q of the values fall
// (q = 0.99 is p99): the upper end of the bucket holding it, never more
// than Max. It is 0 without values.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5) // the rank-th smallest value, from 1
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(time.Duration(upper(i)), h.Max())
		}
	}
	return h.Max()
}
