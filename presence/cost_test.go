package presence_test

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
	"github.com/rumorhq/rumor/presence"
)

// TestFreshness measures how long a subscribe on one node takes to show in
// another node's count, with the default Interval (100 ms), and checks the
// documented bound, Interval plus the relay's delay, loosely enough for a
// loaded CI machine (where the relay's delay has outliers of hundreds of
// ms): the median within 500 ms, the worst within 3 s. A census that went
// out only with the heartbeat (2 s) would fail it.
func TestFreshness(t *testing.T) {
	if testing.Short() {
		t.Skip("a measurement: 60 samples")
	}
	o := presence.Options{} // the defaults
	nodes := startCluster(t, 3, o)
	var lags []time.Duration
	for i := range 60 {
		ch := fmt.Sprintf("fresh.%d", i)
		start := time.Now()
		leave := nodes[i%3].dir.Join(presence.Stream{Patterns: []string{ch}})
		other := nodes[(i+1)%3]
		waitFor(t, "count on "+other.name, 5*time.Second, func() bool { return other.dir.Count(ch) == 1 })
		lags = append(lags, time.Since(start))
		leave()
	}
	slices.Sort(lags)
	p50, p99, worst := lags[len(lags)/2], lags[len(lags)*99/100], lags[len(lags)-1]
	t.Logf("count lag, %d samples: p50 %v, p99 %v, max %v", len(lags), p50.Round(time.Millisecond), p99.Round(time.Millisecond), worst.Round(time.Millisecond))
	if p50 > 500*time.Millisecond || worst > 3*time.Second {
		t.Errorf("lag p50 %v (want at most 500ms), max %v (want at most 3s)", p50, worst)
	}
}

// TestCost measures what presence costs for 20,000 streams on one node
// over 1,000 channels, each with its own subject: the heap it holds on the
// node with the streams and on a peer, and the bytes its reserved channels
// carry to each peer, while the streams connect and once they are all
// there. The numbers go to docs/BENCHMARKS.md (issue #13).
func TestCost(t *testing.T) {
	if os.Getenv("RUMOR_PRESENCE_COST") == "" {
		t.Skip("a measurement of 20,000 streams, for docs/BENCHMARKS.md: set RUMOR_PRESENCE_COST=1")
	}
	t.Run("anonymous", func(t *testing.T) { measureCost(t, false) })
	t.Run("subjects", func(t *testing.T) { measureCost(t, true) })
}

func measureCost(t *testing.T, subjects bool) {
	const streams, channels = 20000, 1000
	subject := func(i int) string {
		if subjects {
			return fmt.Sprintf("user-%d", i)
		}
		return ""
	}
	announced := channels // occupied
	if subjects {
		announced += streams // and a join each
	}
	nodes := startCluster(t, 3, presence.Options{})
	var bytes, events, all atomic.Int64
	stop := meter(t, nodes[1].hub, &bytes, &events, &all)
	defer stop()

	heap0 := heapNow()
	start := time.Now()
	leaves := make([]func(), 0, streams)
	for i := range streams {
		leaves = append(leaves, nodes[0].dir.Join(presence.Stream{
			Patterns: []string{fmt.Sprintf("room.%d", i%channels)},
			Subject:  subject(i),
		}))
	}
	for _, n := range nodes {
		waitFor(t, n.name+" counts every stream", time.Minute, func() bool {
			total := 0
			for _, c := range n.dir.Counts() {
				total += c
			}
			return total == streams
		})
	}
	// Every join announced (a node decides only its share of channels).
	waitFor(t, "every join announced", time.Minute, func() bool {
		n := all.Load() - events.Load() // n2's own: its census and its decisions
		return events.Load()+n >= int64(announced)
	})
	connect := time.Since(start)
	connectBytes, connectEvents := bytes.Load(), events.Load()
	heap1 := heapNow()

	// Steady state: nothing changes, only heartbeats.
	b0, e0 := bytes.Load(), events.Load()
	time.Sleep(10 * time.Second) // the measurement window, not a wait for a condition
	steadyBytes, steadyEvents := bytes.Load()-b0, events.Load()-e0

	// Churn: 100 streams leave and 100 join per second.
	b0, e0 = bytes.Load(), events.Load()
	churnStart := time.Now()
	for s := range 10 {
		for j := range 100 {
			k := (s*100 + j) % streams
			leaves[k]()
			leaves[k] = nodes[0].dir.Join(presence.Stream{Patterns: []string{fmt.Sprintf("room.%d", k%channels)}, Subject: subject(k)})
		}
		time.Sleep(time.Second) // the churn's pace
	}
	churn := time.Since(churnStart)
	churnBytes, churnEvents := bytes.Load()-b0, events.Load()-e0

	t.Logf("%d streams on n1 over %d channels, subjects %v, 3 nodes", streams, channels, subjects)
	t.Logf("heap, all three nodes' presence together (one process): %.1f MiB (%.0f B per stream)", float64(heap1-heap0)/(1<<20), float64(heap1-heap0)/streams)
	t.Logf("connect (%v): %d events, %.1f MiB on the reserved channels to each peer", connect.Round(time.Millisecond), connectEvents, float64(connectBytes)/(1<<20))
	t.Logf("steady (10 s): %d events, %.0f B/s to each peer", steadyEvents, float64(steadyBytes)/10)
	t.Logf("churn 100 leave + 100 join per s (%v): %d events, %.1f KiB/s to each peer", churn.Round(time.Millisecond), churnEvents, float64(churnBytes)/churn.Seconds()/1024)
	for _, l := range leaves {
		l()
	}
}

// meter adds up the events on presence's reserved channels that reach hub
// from its peers (events) and their size on the relay's wire (data,
// channel, type, key and the id, an approximation of the frame), and all
// of them, its own included (all).
func meter(tb testing.TB, hub *broker.Hub, bytes, events, all *atomic.Int64) (stop func()) {
	tb.Helper()
	census, _ := broker.ParsePattern(presence.CensusChannel)
	notices, _ := broker.ParsePattern(presence.NoticePrefix + ">")
	sub, err := hub.Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{census, notices}})
	if err != nil {
		tb.Fatal(err)
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-quit:
				return
			case <-sub.Ready():
			}
			evs, err := sub.Drain(nil)
			for _, e := range evs {
				all.Add(1)
				if e.ID.Origin == hub.Origin() {
					continue // sent, not received
				}
				bytes.Add(int64(len(e.Data) + len(e.Channel) + len(e.Type) + len(e.Key) + 40))
				events.Add(1)
			}
			sub.Release()
			if err != nil {
				return
			}
		}
	}()
	return func() { close(quit); sub.Close(); wg.Wait() }
}

func heapNow() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestCostOneNode is TestCost's memory on a node alone: what the node
// that holds the 20,000 streams pays, its own announcements included.
func TestCostOneNode(t *testing.T) {
	if os.Getenv("RUMOR_PRESENCE_COST") == "" {
		t.Skip("a measurement of 20,000 streams, for docs/BENCHMARKS.md: set RUMOR_PRESENCE_COST=1")
	}
	for _, subjects := range []bool{false, true} {
		hub := broker.NewHub(broker.Options{})
		heap0 := heapNow()
		dir, err := presence.New(presence.Options{Hub: hub})
		if err != nil {
			t.Fatal(err)
		}
		var bytes, events, all atomic.Int64
		stop := meter(t, hub, &bytes, &events, &all)
		want := int64(1000)
		for i := range 20000 {
			s := presence.Stream{Patterns: []string{fmt.Sprintf("room.%d", i%1000)}}
			if subjects {
				s.Subject = fmt.Sprintf("user-%d", i)
			}
			dir.Join(s)
		}
		if subjects {
			want += 20000
		}
		waitFor(t, "every transition announced", time.Minute, func() bool { return all.Load() >= want })
		stop()
		heap1 := heapNow()
		t.Logf("one node, 20,000 streams over 1,000 channels, subjects %v: heap %.1f MiB (%.0f B per stream)", subjects, float64(heap1-heap0)/(1<<20), float64(heap1-heap0)/20000)
		dir.Close()
		hub.Close()
	}
}

// BenchmarkJoinLeave is the cost of counting one stream in and out.
func BenchmarkJoinLeave(b *testing.B) {
	hub := broker.NewHub(broker.Options{})
	defer hub.Close()
	dir, err := presence.New(presence.Options{Hub: hub})
	if err != nil {
		b.Fatal(err)
	}
	defer dir.Close()
	s := presence.Stream{Patterns: []string{"room.1", "orders.>"}, Subject: "alice"}
	b.ReportAllocs()
	for b.Loop() {
		dir.Join(s)()
	}
}
