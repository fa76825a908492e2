package transport

// Benchmarks of the data plane and of failure detection on loopback. They
// run only with -bench (the normal test run only compiles them); the
// commands and the numbers are in docs/BENCHMARKS.md.
//
// Every cluster benchmark has a single-node reference run in the same
// process: a hub with no relay, so that results can be read as ratios on a
// shared, noisy machine. Latency is measured at the subscriber (Subscribe
// and a Drain loop on the receiving node) from the event's Born time, which
// the origin sets in Publish; in one process every node reads the same
// clock.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rumorhq/rumor/broker"
)

const (
	benchChannel = "bench"
	benchPayload = 200 // bytes of data per event
)

// benchNode is one in-process member for benchmarks: the shape of the
// tests' node, with memberlist's LAN or Local timings, no logging unless
// watched, and a crash (Shutdown without Leave) as its only way to stop.
type benchNode struct {
	name  string // unique member name, with the random suffix
	hub   *broker.Hub
	c     *Cluster
	stall *benchStallHub // what the cluster sees as the hub, with benchOpts.stall
	logs  *benchLogWatch // with benchOpts.watch
}

// benchStallHub lets a benchmark freeze a node's data plane, as a long GC
// pause, a CPU-starved container or a paused VM would: until the given
// time, Deliver (the relay readers) and Tick (the watermarks, heartbeats
// included) wait.
type benchStallHub struct {
	*broker.Hub
	until atomic.Int64 // Unix nanoseconds
	cost  atomic.Int64 // nanoseconds of CPU each Deliver burns first: a slower node
}

func (h *benchStallHub) freeze(d time.Duration) { h.until.Store(time.Now().Add(d).UnixNano()) }

func (h *benchStallHub) wait() {
	if d := time.Until(time.Unix(0, h.until.Load())); d > 0 {
		time.Sleep(d)
	}
}

func (h *benchStallHub) Deliver(e *broker.Event) bool {
	h.wait()
	if d := time.Duration(h.cost.Load()); d > 0 {
		for t := time.Now(); time.Since(t) < d; {
		}
	}
	return h.Hub.Deliver(e)
}

func (h *benchStallHub) Tick() {
	h.wait()
	h.Hub.Tick()
}

// benchOpts are what benchmarks vary about a node.
type benchOpts struct {
	local bool // memberlist's Local config rather than LAN
	queue int  // broker.Options.QueueSize; 0 means the default
	stall bool // the cluster sees the hub through a benchStallHub
	watch bool // the node logs Info and above to a benchLogWatch
}

func startBenchNode(tb testing.TB, name string, o benchOpts, join ...string) *benchNode {
	tb.Helper()
	origin := broker.NewOrigin()
	var logs *benchLogWatch
	var logger *slog.Logger
	if o.watch {
		logs = &benchLogWatch{}
		logger = slog.New(logs)
	}
	c, err := New(Config{
		NodeName: name,
		BindAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:1",
		Join:     join,
		Origin:   origin,
		Local:    o.local,
		Label:    "bench",
		Key:      []byte("0123456789abcdef"),
		Logger:   logger,
	})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	hub := broker.NewHub(broker.Options{Origin: origin, Relay: c, QueueSize: o.queue})
	n := &benchNode{hub: hub, c: c, logs: logs}
	var h Hub = hub
	if o.stall {
		n.stall = &benchStallHub{Hub: hub}
		h = n.stall
	}
	if err := c.Start(context.Background(), h); err != nil {
		hub.Close()
		tb.Fatalf("Start: %v", err)
	}
	n.name = c.Self()
	tb.Cleanup(n.crash)
	return n
}

// crash stops the node without telling anyone: peers must detect it. It is
// safe to call more than once.
func (n *benchNode) crash() {
	_ = n.c.Shutdown()
	n.hub.Close()
}

// startBenchCluster starts n nodes that join the first and waits until every
// node has n members, is ready, and its order waits for n-1 peers.
func startBenchCluster(tb testing.TB, n int, o benchOpts) []*benchNode {
	tb.Helper()
	nodes := []*benchNode{startBenchNode(tb, "b1", o)}
	seed := nodes[0].c.GossipAddr()
	for i := 2; i <= n; i++ {
		nodes = append(nodes, startBenchNode(tb, fmt.Sprintf("b%d", i), o, seed))
	}
	deadline := time.Now().Add(60 * time.Second) // a loaded machine gossips slowly
	for _, nd := range nodes {
		for nd.c.Ready() != nil || len(nd.c.ml.Members()) != n || nd.hub.Stats().Peers != n-1 {
			if time.Now().After(deadline) {
				tb.Fatalf("%s not ready with %d nodes after 60s: ready=%v members=%d peers=%d",
					nd.name, n, nd.c.Ready(), len(nd.c.ml.Members()), nd.hub.Stats().Peers)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nodes
}

// benchLogWatch is a slog handler that records when a message containing
// a watched text was first logged at Info or above.
type benchLogWatch struct {
	mu    sync.Mutex
	text  string
	first time.Time
}

func (w *benchLogWatch) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (w *benchLogWatch) WithAttrs([]slog.Attr) slog.Handler           { return w }
func (w *benchLogWatch) WithGroup(string) slog.Handler                { return w }

func (w *benchLogWatch) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.text != "" && w.first.IsZero() && strings.Contains(r.Message, w.text) {
		w.first = time.Now()
	}
	return nil
}

// watch starts watching for text, forgetting what was seen before.
func (w *benchLogWatch) watch(text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.text, w.first = text, time.Time{}
}

func (w *benchLogWatch) seen() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first
}

// benchReceiver is a subscriber with its own Drain loop that records, per
// event, the time from publish (Born) to the moment Drain returned it.
type benchReceiver struct {
	sub  *broker.Subscription
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu   sync.Mutex
	lat  []time.Duration
	last time.Time // when the latest event arrived
	err  error     // why the subscription ended, if it did
}

func startBenchReceiver(tb testing.TB, hub *broker.Hub, capHint int) *benchReceiver {
	tb.Helper()
	pat, err := broker.ParsePattern(benchChannel)
	if err != nil {
		tb.Fatal(err)
	}
	sub, err := hub.Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{pat}})
	if err != nil {
		tb.Fatalf("Subscribe: %v", err)
	}
	r := &benchReceiver{
		sub:  sub,
		stop: make(chan struct{}),
		done: make(chan struct{}),
		lat:  make([]time.Duration, 0, capHint),
	}
	go r.run()
	tb.Cleanup(r.close)
	return r
}

func (r *benchReceiver) run() {
	defer close(r.done)
	var buf []*broker.Event
	for {
		select {
		case <-r.stop:
			return
		case <-r.sub.Ready():
		}
		var err error
		buf, err = r.sub.Drain(buf[:0])
		now := time.Now()
		r.mu.Lock()
		for _, e := range buf {
			r.lat = append(r.lat, now.Sub(e.Born))
		}
		if len(buf) > 0 {
			r.last = now
		}
		r.err = err
		r.mu.Unlock()
		clear(buf)
		if err != nil {
			return
		}
	}
}

// close stops the Drain loop and unsubscribes. Safe to call more than once.
func (r *benchReceiver) close() {
	r.once.Do(func() {
		close(r.stop)
		<-r.done
		r.sub.Close()
	})
}

func (r *benchReceiver) state() (n int, last time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lat), r.last, r.err
}

// benchWaitReceived waits until every receiver holds want events, one of them
// ended, or timeout passed. It returns how many events are missing in all
// and when the last one arrived.
func benchWaitReceived(recvs []*benchReceiver, want int, timeout time.Duration) (missing int, last time.Time) {
	deadline := time.Now().Add(timeout)
	for {
		missing, last = 0, time.Time{}
		ended := false
		for _, r := range recvs {
			n, l, err := r.state()
			missing += want - n
			if l.After(last) {
				last = l
			}
			ended = ended || err != nil
		}
		if missing == 0 || ended || time.Now().After(deadline) {
			return missing, last
		}
		time.Sleep(time.Millisecond)
	}
}

// benchLoad is what a publisher does.
type benchLoad struct {
	rate    int         // events per second, paced on an absolute schedule; 0 means as fast as possible
	ack     broker.Ack  // AckPeer or AckLocal
	workers int         // concurrent publishers; 1 publishes from the benchmark loop itself
	before  func(i int) // if set, called before the i-th event (from 0) is published
}

func (ld benchLoad) ackName() string {
	if ld.ack == broker.AckPeer {
		return "peer"
	}
	return "local"
}

// benchDrive publishes one 200-byte event per b.Loop iteration on pub and waits
// until every receiver has all of them (at most timeout). The timer runs
// until then, so ns/op and allocs/op cover the whole pipeline. It reports
// p50-ms, p99-ms and max-ms of publish→receive over all receivers;
// pub-p50-ms and pub-p99-ms of the Publish call itself; events/s from the
// first publish to the last receive (when nothing was lost); cpu-us/event,
// the process's CPU time (every node, the publisher and the receivers) per
// event; writes/event, its write system calls per event (each relay flush is
// one); lost (events receivers never got) and cut (receivers cut off as
// slow). Loss is
// reported, not failed on, so that a run that misses a target still shows
// its numbers.
func benchDrive(b *testing.B, pub *broker.Hub, ld benchLoad, recvs []*benchReceiver, timeout time.Duration) {
	b.Helper()
	b.ReportAllocs()
	msg := []broker.Message{{Channel: benchChannel, Data: bytes.Repeat([]byte("x"), benchPayload)}}
	ctx := context.Background()
	var (
		published atomic.Int64
		firstErr  atomic.Pointer[error]
		mu        sync.Mutex
		calls     []time.Duration // how long each Publish call took
	)
	publish := func() {
		t := time.Now()
		_, _, err := pub.Publish(ctx, msg, ld.ack)
		d := time.Since(t)
		if err != nil {
			firstErr.CompareAndSwap(nil, &err)
			return
		}
		published.Add(1)
		mu.Lock()
		calls = append(calls, d)
		mu.Unlock()
	}
	jobs := make(chan struct{}, 4096)
	var wg sync.WaitGroup
	if ld.workers > 1 {
		for range ld.workers {
			wg.Go(func() {
				for range jobs {
					publish()
				}
			})
		}
	}
	var interval time.Duration
	if ld.rate > 0 {
		interval = time.Second / time.Duration(ld.rate)
	}
	var (
		start time.Time
		cpu0  time.Duration
		sysw0 int64
	)
	i := 0
	for b.Loop() {
		if i == 0 {
			start, cpu0, sysw0 = time.Now(), benchCPU(), benchWrites()
		} else if interval > 0 {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
		}
		if ld.before != nil {
			ld.before(i)
		}
		i++
		if ld.workers > 1 {
			jobs <- struct{}{}
		} else {
			publish()
		}
	}
	b.StartTimer() // delivery of what is in flight counts too
	close(jobs)
	wg.Wait()
	n := int(published.Load())
	missing, last := benchWaitReceived(recvs, n, timeout)
	cpu, sysw := benchCPU()-cpu0, benchWrites()-sysw0
	b.StopTimer()
	if p := firstErr.Load(); p != nil {
		b.Errorf("Publish: %v", *p)
	}
	cut := 0
	for _, r := range recvs {
		got, _, err := r.state()
		if err != nil {
			cut++
		}
		if got != n || err != nil {
			b.Logf("receiver got %d of %d events (subscription error: %v)", got, n, err)
		}
	}
	var all []time.Duration
	for _, r := range recvs {
		r.close()
		all = append(all, r.lat...)
	}
	benchReportLatency(b, "", all)
	benchReportLatency(b, "pub-", calls)
	if elapsed := last.Sub(start); missing == 0 && n > 0 && elapsed > 0 {
		b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	}
	b.ReportMetric(float64(missing), "lost")
	b.ReportMetric(float64(cut), "cut")
	if n > 0 && cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-us/event")
	}
	if n > 0 && sysw0 >= 0 && sysw >= 0 {
		b.ReportMetric(float64(sysw)/float64(n), "writes/event")
	}
}

// benchWrites returns how many write system calls this process has made
// (Linux's /proc/self/io syscw: socket writes, each relay flush one), or -1.
func benchWrites() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// benchCPU returns the CPU time (user and system) this process has used. On
// a shared machine it is steadier than wall time: other processes' load
// delays the benchmark but adds little to what it consumes.
func benchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchReportLatency reports the nearest-rank p50 and p99 and the maximum of
// samples in milliseconds, under names prefixed with prefix.
func benchReportLatency(b *testing.B, prefix string, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	b.ReportMetric(benchMillis(benchPercentile(samples, 0.50)), prefix+"p50-ms")
	b.ReportMetric(benchMillis(benchPercentile(samples, 0.99)), prefix+"p99-ms")
	if prefix == "" {
		b.ReportMetric(benchMillis(samples[len(samples)-1]), "max-ms")
	}
}

// benchPercentile returns the nearest-rank q-quantile of sorted samples.
func benchPercentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func benchMillis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchReference publishes on a hub with no relay to subs local subscribers:
// the single-node reference for the cluster runs.
func benchReference(b *testing.B, ld benchLoad, o benchOpts, subs int, timeout time.Duration) {
	hub := broker.NewHub(broker.Options{QueueSize: o.queue})
	b.Cleanup(hub.Close)
	var recvs []*benchReceiver
	for range subs {
		recvs = append(recvs, startBenchReceiver(b, hub, 1<<16))
	}
	benchDrive(b, hub, ld, recvs, timeout)
	b.ReportMetric(0, "late") // one hub has one order
}

// benchCluster publishes on the first of n nodes to one subscriber on each
// other node (on the origin itself when n is 1). With originSub, the origin
// also has a subscriber, whose latencies are reported as origin-p50-ms and
// origin-p99-ms: the origin too holds its events until its peers'
// watermarks pass them.
func benchCluster(b *testing.B, n int, ld benchLoad, o benchOpts, originSub bool, timeout time.Duration) {
	nodes := startBenchCluster(b, n, o)
	var recvs []*benchReceiver
	for _, nd := range nodes[1:] {
		recvs = append(recvs, startBenchReceiver(b, nd.hub, 1<<16))
	}
	if n == 1 {
		recvs = append(recvs, startBenchReceiver(b, nodes[0].hub, 1<<16))
	}
	var local *benchReceiver
	if originSub && n > 1 {
		local = startBenchReceiver(b, nodes[0].hub, 1<<16)
	}
	benchDrive(b, nodes[0].hub, ld, recvs, timeout)
	if local != nil {
		local.close()
		benchReportLatency(b, "origin-", local.lat)
	}
	benchReportOrder(b, nodes)
}

// benchReportOrder reports late: events that reached a node after it had
// released a larger id, so that its subscribers saw them out of the cluster
// order. It also logs each node's relay reconnects, which cause them.
func benchReportOrder(b *testing.B, nodes []*benchNode) {
	late := 0
	for _, nd := range nodes {
		st := nd.hub.Stats()
		late += int(st.Late)
		if st.Late+st.Dropped+st.GapsAbandoned > 0 {
			b.Logf("%s: late %d, dropped %d, slow disconnects %d, gaps abandoned %d, relay reconnects %v",
				nd.name, st.Late, st.Dropped, st.SlowDisconnects, st.GapsAbandoned, benchCounter(nd.c.metrics.reconnects))
		}
	}
	b.ReportMetric(float64(late), "late")
}

func benchCounter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return math.NaN()
	}
	return m.GetCounter().GetValue()
}

// BenchmarkLatency measures publish→receive at 1,000 events/s: the
// reference hub, then clusters of 1, 3 and 5 nodes publishing with AckPeer
// and with AckLocal. One iteration is one event.
func BenchmarkLatency(b *testing.B) {
	const rate = 1000
	timeout := 10 * time.Second
	o := benchOpts{} // memberlist LAN, as in production
	b.Run("ref", func(b *testing.B) {
		benchReference(b, benchLoad{rate: rate, ack: broker.AckLocal, workers: 1}, o, 1, timeout)
	})
	for _, n := range []int{1, 3, 5} {
		for _, ld := range []benchLoad{
			{rate: rate, ack: broker.AckPeer, workers: 4}, // a publish waits about a round trip: keep the rate open-loop
			{rate: rate, ack: broker.AckLocal, workers: 1},
		} {
			b.Run(fmt.Sprintf("nodes=%d/ack=%s", n, ld.ackName()), func(b *testing.B) {
				benchCluster(b, n, ld, o, true, timeout)
			})
		}
	}
}

// BenchmarkThroughput publishes as fast as it can from one origin to two
// peers (the reference: to two subscribers of one hub). events/s counts from
// the first publish until both receivers hold every event. Subscriber
// queues are raised to 1M events so that the run measures the relay, not
// whether a starved subscriber goroutine gets a core in time (with the
// default 1,024 an unpaced publisher cuts subscribers off as slow even on
// the reference hub).
func BenchmarkThroughput(b *testing.B) {
	timeout := 60 * time.Second
	o := benchOpts{queue: 1 << 20}
	b.Run("ref", func(b *testing.B) {
		benchReference(b, benchLoad{ack: broker.AckLocal, workers: 1}, o, 2, timeout)
	})
	for _, ld := range []benchLoad{
		{ack: broker.AckLocal, workers: 1},
		{ack: broker.AckPeer, workers: 1},
		{ack: broker.AckPeer, workers: 16},
	} {
		b.Run(fmt.Sprintf("nodes=3/ack=%s/pubs=%d", ld.ackName(), ld.workers), func(b *testing.B) {
			benchCluster(b, 3, ld, o, false, timeout)
		})
	}
}

// BenchmarkSustained holds 20,000 events/s of 200 bytes from one origin to
// two peers, with default options, and checks that nothing is lost; it
// reports the latency at that rate.
func BenchmarkSustained(b *testing.B) {
	const rate = 20_000
	timeout := 30 * time.Second
	o := benchOpts{} // memberlist LAN, as in production
	b.Run("ref", func(b *testing.B) {
		benchReference(b, benchLoad{rate: rate, ack: broker.AckLocal, workers: 1}, o, 2, timeout)
	})
	for _, ld := range []benchLoad{
		{rate: rate, ack: broker.AckLocal, workers: 1},
		{rate: rate, ack: broker.AckPeer, workers: 16},
	} {
		b.Run(fmt.Sprintf("nodes=3/ack=%s", ld.ackName()), func(b *testing.B) {
			benchCluster(b, 3, ld, o, false, timeout)
		})
	}
}

// BenchmarkCrashDetect crashes one node of three (Shutdown without Leave)
// and reports the medians over its iterations of: relay-s, until both
// survivors' order stopped waiting for it (its relay connections closed);
// suspect-s, until the first survivor's probe failed and it suspected the
// node (memberlist logs "Suspect … has failed"; Members never shows
// "suspect"); dead-s, until both survivors list it as dead. With
// memberlist's LAN and Local configs. One iteration is one cluster, started,
// crashed and torn down.
func BenchmarkCrashDetect(b *testing.B) {
	for _, cfg := range []struct {
		name  string
		local bool
	}{{"lan", false}, {"local", true}} {
		b.Run("config="+cfg.name, func(b *testing.B) {
			var relay, suspect, dead []time.Duration
			for b.Loop() {
				r, s, d := benchCrashOnce(b, cfg.local)
				relay, suspect, dead = append(relay, r), append(suspect, s), append(dead, d)
			}
			for _, m := range []struct {
				unit string
				d    []time.Duration
			}{{"relay-s", relay}, {"suspect-s", suspect}, {"dead-s", dead}} {
				slices.Sort(m.d)
				b.ReportMetric(benchPercentile(m.d, 0.5).Seconds(), m.unit)
			}
		})
	}
}

func benchCrashOnce(b *testing.B, local bool) (relay, suspect, dead time.Duration) {
	b.Helper()
	goroutines := runtime.NumGoroutine()
	nodes := startBenchCluster(b, 3, benchOpts{local: local, watch: true})
	victim, survivors := nodes[2], nodes[:2]
	for _, nd := range survivors {
		nd.logs.watch("Suspect " + victim.name + " ")
	}
	victim.crash()
	t0 := time.Now()
	var relayAt, deadAt [2]time.Duration
	deadline := t0.Add(60 * time.Second)
	for {
		done := true
		for i, nd := range survivors {
			since := time.Since(t0)
			if relayAt[i] == 0 && nd.hub.Stats().Peers == len(survivors)-1 {
				relayAt[i] = since
			}
			if deadAt[i] == 0 {
				for _, m := range nd.c.Members() {
					if m.Name == victim.name && m.State != "alive" && m.State != "suspect" {
						if m.State != "dead" {
							b.Errorf("%s lists the crashed node as %q, want dead", nd.name, m.State)
						}
						deadAt[i] = since
					}
				}
			}
			done = done && relayAt[i] > 0 && deadAt[i] > 0
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("crash not detected within 60s: relay %v, dead %v", relayAt, deadAt)
		}
		time.Sleep(2 * time.Millisecond)
	}
	for i, nd := range survivors {
		relay, dead = max(relay, relayAt[i]), max(dead, deadAt[i])
		if at := nd.logs.seen(); !at.IsZero() && (suspect == 0 || at.Sub(t0) < suspect) {
			suspect = at.Sub(t0)
		}
	}
	// Tear down, then wait (untimed, at most 5s) for memberlist's probe
	// goroutines, which outlive Shutdown by up to a probe interval, so
	// that iterations do not overlap and goleak finds none at the end.
	b.StopTimer()
	for _, nd := range nodes {
		nd.crash()
	}
	for end := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > goroutines && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	b.StartTimer()
	return relay, suspect, dead
}

// BenchmarkPeerStall publishes 20,000 events/s on node 1 to a subscriber on
// node 2 and, after half a second, freezes node 3's data plane for the given
// time. Node 2 holds node 1's events until node 3's watermark passes them,
// then releases them all at once; cut counts the subscribers on node 2 cut
// off as slow, lost the events they missed. With the default QueueSize of
// 1,024 a stall longer than 1,024/20,000 s (51 ms) cuts them though they
// drain as fast as ever; queue=65536 is the control. Run it with -benchtime
// of at least 20000x (1s); the numbers in docs/BENCHMARKS.md used 40000x.
func BenchmarkPeerStall(b *testing.B) {
	const rate = 20_000
	for _, c := range []struct {
		stall time.Duration
		queue int
	}{{20 * time.Millisecond, 0}, {100 * time.Millisecond, 0}, {100 * time.Millisecond, 1 << 16}} {
		queue := "default"
		if c.queue > 0 {
			queue = fmt.Sprint(c.queue)
		}
		b.Run(fmt.Sprintf("stall=%v/queue=%s", c.stall, queue), func(b *testing.B) {
			nodes := startBenchCluster(b, 3, benchOpts{stall: true, queue: c.queue})
			recvs := []*benchReceiver{startBenchReceiver(b, nodes[1].hub, 1<<16)}
			stalled := false
			benchDrive(b, nodes[0].hub, benchLoad{rate: rate, ack: broker.AckLocal, workers: 1, before: func(i int) {
				if i == rate/2 {
					nodes[2].stall.freeze(c.stall)
					stalled = true
				}
			}}, recvs, 30*time.Second)
			benchReportOrder(b, nodes)
			if !stalled {
				b.Fatalf("ran %d events, fewer than the %d before the stall: raise -benchtime", b.N, rate/2)
			}
		})
	}
}

// BenchmarkSlowPeer publishes 30,000 events/s on node 1 while node 3 can
// only take about 25,000 (each Deliver burns 40 µs), so node 3's relay
// reader always has a backlog. It reports ack-gap-ms, the longest time node
// 1 saw its unacknowledged events to node 3 without an ack; reconnects, the
// relay links redialled; and late, events delivered out of the cluster
// order. Subscriber queues are raised to 1M so that only the relay is
// measured. Run it with -benchtime of at least 150000x (5 s).
func BenchmarkSlowPeer(b *testing.B) {
	nodes := startBenchCluster(b, 3, benchOpts{stall: true, queue: 1 << 20})
	nodes[2].stall.cost.Store(int64(40 * time.Microsecond))
	recvs := []*benchReceiver{startBenchReceiver(b, nodes[1].hub, 1<<16)}
	stop, done := make(chan struct{}), make(chan time.Duration)
	go func() { done <- benchAckGap(nodes[0].c, nodes[2].name, stop) }()
	benchDrive(b, nodes[0].hub, benchLoad{rate: 30_000, ack: broker.AckLocal, workers: 1}, recvs, 60*time.Second)
	close(stop)
	b.ReportMetric(benchMillis(<-done), "ack-gap-ms")
	var reconnects float64
	for _, nd := range nodes {
		reconnects += benchCounter(nd.c.metrics.reconnects)
	}
	b.ReportMetric(reconnects, "reconnects")
	benchReportOrder(b, nodes)
}

// benchAckGap samples c's link to the named peer every 5 ms until stop and
// returns the longest time the link held unacknowledged events without its
// ack advancing.
func benchAckGap(c *Cluster, peer string, stop <-chan struct{}) time.Duration {
	var (
		acked   uint64
		since   time.Time
		longest time.Duration
	)
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return longest
		case <-t.C:
		}
		c.mu.Lock()
		l := c.links[peer]
		c.mu.Unlock()
		if l == nil {
			continue
		}
		now := time.Now()
		_, unacked := l.pending()
		switch a := l.acked.Load(); {
		case unacked == 0 || a != acked || since.IsZero():
			acked, since = a, now
		default:
			longest = max(longest, now.Sub(since))
		}
	}
}
