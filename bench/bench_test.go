package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestPayloadRoundTrip(t *testing.T) {
	for _, s := range []stamp{
		{run: 0xdeadbeef, pub: 3, ch: 17, seq: 1, sent: time.Now().UnixNano()},
		{run: 0, pub: 0, ch: 0, seq: 1<<64 - 1, sent: 0},
		{run: 1<<32 - 1, pub: MaxPublishers - 1, ch: MaxChannels - 1, seq: 42, sent: 1<<63 - 1},
	} {
		for _, size := range []int{MinSize, 200, 4096} {
			p := appendPayload(nil, s, size)
			if len(p) != max(size, len(appendPayload(nil, s, 0))) {
				t.Errorf("appendPayload(%+v, %d) is %d bytes", s, size, len(p))
			}
			if strings.ContainsAny(string(p), "\r\n") {
				t.Errorf("payload %q has a line break", p)
			}
			got, ok := parsePayload(string(p))
			if !ok || got != s {
				t.Errorf("parsePayload(%q) = %+v, %v; want %+v", p, got, ok, s)
			}
		}
	}
	if n := len(appendPayload(nil, stamp{run: 1<<32 - 1, pub: MaxPublishers, ch: MaxChannels, seq: MaxCount, sent: 1<<63 - 1}, 0)); n > MinSize {
		t.Errorf("the largest stamp is %d bytes, more than MinSize %d", n, MinSize)
	}
}

func TestPayloadRejects(t *testing.T) {
	good := string(appendPayload(nil, stamp{run: 7, pub: 1, ch: 2, seq: 3, sent: 4}, 80))
	for _, in := range []string{
		"",
		"hello",
		"rb1 ",
		"rb1 7 1 2 3 4",        // no space after the last field
		"rb1 7 1 2 3 4 xxy",    // padding that is not x
		"rb1 7 1 2 -3 4 xx",    // a sign
		"rb1 zz 1 2 3 4 xx",    // not hex
		"rb1 7 1 2 3 4 xx\nxx", // two lines
		"rb2" + good[3:],       // another format
		"rb1 7 1 2 3 4  xx",    // an empty field
		"rb1 7 1 2 3 9999999999999999999999 xx",
		good[:len(good)-1] + "\n", // a line break in the padding
	} {
		if s, ok := parsePayload(in); ok {
			t.Errorf("parsePayload(%q) = %+v, want a rejection", in, s)
		}
	}
}

func FuzzParsePayload(f *testing.F) {
	f.Add(string(appendPayload(nil, stamp{run: 7, pub: 1, ch: 2, seq: 3, sent: 4}, 80)))
	f.Add("rb1 1 2 3 4 5 ")
	f.Fuzz(func(t *testing.T, in string) {
		s, ok := parsePayload(in)
		if !ok {
			return
		}
		// Whatever parses is a stamp and padding: writing it back with the
		// same length gives the same bytes, unless the numbers had leading
		// zeros.
		out := string(appendPayload(nil, s, len(in)))
		if s2, ok := parsePayload(out); !ok || s2 != s {
			t.Fatalf("parsePayload(appendPayload(%+v)) = %+v, %v", s, s2, ok)
		}
	})
}

func TestHistogram(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatal("an empty histogram reports values")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var vals []time.Duration
	for range 100_000 {
		// Log-uniform from 1ns to about 10s.
		v := time.Duration(1 << rng.IntN(34))
		v += time.Duration(rng.Int64N(int64(v)))
		vals = append(vals, v)
		h.Record(v)
	}
	h.Record(-time.Second) // counts as 0
	vals = append(vals, 0)
	slices.Sort(vals)
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
		exact := vals[max(int(q*float64(len(vals))+0.5), 1)-1]
		got := h.Quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/subCount+1 {
			t.Errorf("Quantile(%v) = %v, want %v to %v", q, got, exact, exact+exact/subCount)
		}
	}
	if h.Max() != vals[len(vals)-1] {
		t.Errorf("Max = %v, want %v", h.Max(), vals[len(vals)-1])
	}
	if h.Count() != uint64(len(vals)) {
		t.Errorf("Count = %d, want %d", h.Count(), len(vals))
	}
	var sum Histogram
	sum.Add(&h)
	sum.Add(&h)
	if sum.Count() != 2*h.Count() || sum.Quantile(0.99) != h.Quantile(0.99) || sum.Max() != h.Max() {
		t.Errorf("Add: count %d, p99 %v, max %v; want %d, %v, %v", sum.Count(), sum.Quantile(0.99), sum.Max(), 2*h.Count(), h.Quantile(0.99), h.Max())
	}
}

// TestBuckets: every value falls in a bucket whose bounds hold it, and
// buckets are in order.
func TestBuckets(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<20 + 12345, 1 << 40, 1<<62 + 1} {
		i := bucket(v)
		if i < prev || i >= nBuckets {
			t.Errorf("bucket(%d) = %d after %d (of %d)", v, i, prev, nBuckets)
		}
		prev = i
		if upper(i) < v || (i > 0 && upper(i-1) >= v) {
			t.Errorf("value %d in bucket %d of bounds (%d, %d]", v, i, upper(i-1), upper(i))
		}
	}
}

// TestSeqs checks the range set against a map, over random arrivals with
// losses, duplicates and reordering.
func TestSeqs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		var x seqs
		seen := map[uint64]bool{}
		var highest uint64
		for range 300 {
			s := uint64(rng.IntN(400) + 1)
			want := inOrder
			switch {
			case seen[s]:
				want = duplicate
			case s < highest:
				want = outOfOrder
			}
			if got := x.add(s); got != want {
				t.Fatalf("add(%d) = %v, want %v; set %v", s, got, want, x.r)
			}
			seen[s] = true
			highest = max(highest, s)
		}
		for s := uint64(0); s <= 401; s++ {
			if x.has(s) != seen[s] {
				t.Fatalf("has(%d) = %v, want %v", s, x.has(s), seen[s])
			}
		}
		for _, upto := range []uint64{0, 1, 57, 200, 400, 1000} {
			var want uint64
			for s := range seen {
				if s <= upto {
					want++
				}
			}
			if got := x.count(upto); got != want {
				t.Fatalf("count(%d) = %d, want %d", upto, got, want)
			}
		}
		for i := 1; i < len(x.r); i++ {
			if x.r[i-1].hi+1 >= x.r[i].lo {
				t.Fatalf("ranges %v and %v overlap or touch", x.r[i-1], x.r[i])
			}
		}
	}
}

func TestSeqsInOrderStaysOneRange(t *testing.T) {
	var x seqs
	for s := uint64(1); s <= 100_000; s++ {
		x.add(s)
	}
	if len(x.r) != 1 || x.count(100_000) != 100_000 {
		t.Errorf("100,000 in-order arrivals: %d ranges, count %d", len(x.r), x.count(100_000))
	}
}

func TestParseStatus(t *testing.T) {
	r, err := parseStatus("Name:\trumor\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\nThreads:\t9\n")
	if err != nil || r.RSS != 10<<20 || r.HWM != 20<<20 {
		t.Errorf("parseStatus = %+v, %v; want 10 MiB and 20 MiB", r, err)
	}
	if _, err := parseStatus("Name:\tx\n"); err == nil {
		t.Error("parseStatus without VmRSS: no error")
	}
	if _, err := parseStatus("VmRSS:\t12 MB\n"); err == nil {
		t.Error("parseStatus with a unit other than kB: no error")
	}
}

func TestParseMetrics(t *testing.T) {
	m, ok := parseMetrics(`# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 42
go_memstats_heap_inuse_bytes 1.2345678e+07
go_memstats_stack_inuse_bytes 524288
go_memstats_heap_alloc_bytes 9e+06
process_resident_memory_bytes 3.3554432e+07
process_cpu_seconds_total 12.34
rumor_streams{node="a"} 7
`)
	want := Sample{RSS: 32 << 20, HeapInuse: 12345678, HeapAlloc: 9000000, StackInuse: 512 << 10, Goroutines: 42, CPUSeconds: 12.34}
	if !ok || m != want {
		t.Errorf("parseMetrics = %+v, %v; want %+v", m, ok, want)
	}
	if _, ok := parseMetrics("up 1\n"); ok {
		t.Error("parseMetrics without memory metrics: found")
	}
}

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	cpu, err := parseStat("4242 (rumor (x) y) S 1 4242 4242 0 -1 4194560 9000 0 0 0 1234 566 0 0 20 0 9 0 100 1000000 2000 18446744073709551615\n")
	if err != nil || cpu != 18 {
		t.Errorf("parseStat = %v, %v; want 18 seconds", cpu, err)
	}
	if _, err := parseStat("4242 (rumor) S 1 2"); err == nil {
		t.Error("parseStat of a short line: no error")
	}
	if cpu, err := readCPU(os.Getpid()); err != nil || cpu <= 0 {
		t.Errorf("readCPU(self) = %v, %v", cpu, err)
	}
}

func TestBareFrame(t *testing.T) {
	for _, tt := range []struct{ data, want string }{
		{"hello", "id: 7\ndata: hello\n\n"},
		{"a\nb", "id: 7\ndata: a\ndata: b\n\n"},
		{"a\r\nb\rc\n", "id: 7\ndata: a\ndata: b\ndata: c\ndata: \n\n"},
	} {
		if got := string(appendBareFrame(nil, 7, []byte(tt.data))); got != tt.want {
			t.Errorf("appendBareFrame(%q) = %q, want %q", tt.data, got, tt.want)
		}
	}
}

// lfReader is a test EventReader for servers that end lines with LF only
// (Bare does): id:, data:, comments, a blank line dispatches. cmd/rumor's
// tests run the bench with the full reader.
type lfReader struct {
	r      *bufio.Reader
	lastID string
}

func newLFReader(r io.Reader, _ int) EventReader { return &lfReader{r: bufio.NewReader(r)} }

func (l *lfReader) LastID() string { return l.lastID }

func (l *lfReader) Retry() time.Duration { return 0 }
func (l *lfReader) Comment() string      { return "" }

func (l *lfReader) Next() (Event, error) {
	var ev Event
	var data []string
	hasID := false
	for {
		line, err := l.r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return Event{}, io.EOF
			}
			return Event{}, err
		}
		line = strings.TrimSuffix(line, "\n")
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch {
		case line == "":
			if hasID {
				l.lastID = ev.ID
			}
			if data != nil {
				ev.Data = strings.Join(data, "\n")
				return ev, nil
			}
			ev, hasID = Event{}, false
		case field == "id":
			ev.ID, hasID = value, true
		case field == "data":
			data = append(data, value)
		}
	}
}

// testConfig is a small run against url.
func testConfig(url string) Config {
	return Config{
		SubURLs: []string{url}, PubURLs: []string{url},
		Subscribers: 10, Channels: 3, Publishers: 4, Count: 400, Size: 100,
		Duration: 20 * time.Second, ConnectTimeout: 10 * time.Second, Drain: 10 * time.Second, Hold: 0,
		Prefix: "test", MaxEventBytes: 1 << 20, NewReader: newLFReader,
	}
}

func serveBare(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeBare(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeBare: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// TestRunBare: a run against the bare loop gets every event to every
// subscriber of its channel, once, in order, and measures each delivery.
func TestRunBare(t *testing.T) {
	url := serveBare(t)
	cfg := testConfig(url)
	cfg.Servers = []Probe{{MetricsURL: url + "/metrics", GCURL: url + "/debug/pprof/heap?gc=1"}}
	var progress strings.Builder
	cfg.Progress, cfg.ProgressEvery = &syncWriter{w: &progress}, 10*time.Millisecond
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// 400 events over 3 channels: 134, 133, 133; 10 subscribers: 4, 3, 3.
	const want = 4*134 + 3*133 + 3*133
	if res.Published != 400 || res.Delivered != want || res.Expected != want || res.Latency.Count != want || !res.OK() {
		t.Errorf("run = %+v\nwant 400 published, %d delivered, nothing wrong", res, want)
	}
	if res.Latency.P50 <= 0 || res.Latency.P50 > res.Latency.P99 || res.Latency.P99 > res.Latency.Max {
		t.Errorf("latency %+v is not ordered", res.Latency)
	}
	if res.DeliveryRate <= 0 || res.PublishRate <= 0 {
		t.Errorf("rates: deliveries %v/s, publishes %v/s", res.DeliveryRate, res.PublishRate)
	}
	if res.Memory == nil || res.Memory.After.HeapInuse == 0 || res.Memory.After.Goroutines == 0 || res.Memory.Error != "" {
		t.Errorf("memory = %+v, want readings from /metrics", res.Memory)
	}
	if res.ServerCPU <= 0 || res.ServerCPUPerDelivery <= 0 {
		t.Errorf("server CPU %vs, %vµs/delivery; want the time read from /metrics", res.ServerCPU, res.ServerCPUPerDelivery)
	}
	if !strings.Contains(res.Summary(), "lost 0 dup 0 out-of-order 0") {
		t.Errorf("Summary() = %q", res.Summary())
	}
}

// TestRunRate: at a rate, the publishers keep the schedule, and the run
// takes about as long as it says.
func TestRunRate(t *testing.T) {
	cfg := testConfig(serveBare(t))
	cfg.Count, cfg.Rate = 100, 1000
	start := time.Now()
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 90*time.Millisecond || res.PublishSeconds < 0.09 {
		t.Errorf("100 events at 1000/s took %v (publishing %vs), want about 100ms", took, res.PublishSeconds)
	}
	if !res.OK() || res.Published != 100 {
		t.Errorf("run = %+v", res)
	}
}

// TestRunDuration: the publish phase ends after Duration even though
// Count is far away, and the run reports what was published.
func TestRunDuration(t *testing.T) {
	cfg := testConfig(serveBare(t))
	cfg.Count, cfg.Rate, cfg.Duration = MaxCount, 200, 100*time.Millisecond
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Published == 0 || res.Published > 30 || !res.OK() {
		t.Errorf("run for 100ms at 200/s published %d: %+v", res.Published, res)
	}
}

// TestRunIdle: with no events, the run holds the streams and reads the
// memory before and after them.
func TestRunIdle(t *testing.T) {
	url := serveBare(t)
	cfg := testConfig(url)
	cfg.Count, cfg.Subscribers, cfg.Hold = 0, 50, 10*time.Millisecond
	cfg.Servers = []Probe{{MetricsURL: url + "/metrics", GCURL: url + "/debug/pprof/heap?gc=1"}}
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := res.Memory
	if res.Connected != 50 || m == nil || m.After.Goroutines < m.Before.Goroutines+50 || m.GoPerStream <= 0 {
		t.Errorf("idle run: %d connected, memory %+v", res.Connected, m)
	}
	if !strings.Contains(res.Summary(), "idle") || !strings.Contains(res.Summary(), "/stream") {
		t.Errorf("Summary() = %q", res.Summary())
	}
}

// TestRunConnectFails: a server that does not answer streams is an error,
// not a result, and the run stops within the connect timeout.
func TestRunConnectFails(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusNotFound)
	}))
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.ConnectTimeout = 200 * time.Millisecond
	_, err := Run(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "0 of 10 subscribers connected") || !strings.Contains(err.Error(), "404") {
		t.Errorf("Run against a 404 server = %v, want a connect error naming the status", err)
	}
}

// TestRunPublishErrors: failed publishes are counted, are not expected,
// and are not counted as lost.
func TestRunPublishErrors(t *testing.T) {
	bare := NewBare()
	defer bare.Close()
	n := 0
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			mu.Lock()
			n++
			fail := n%5 == 0
			mu.Unlock()
			if fail {
				http.Error(w, `{"error":"overloaded"}`, http.StatusServiceUnavailable)
				return
			}
		}
		bare.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Channels, cfg.Publishers = 1, 1
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.PublishErrors != 80 || res.Published != 320 || res.Lost != 0 || res.Expected != 3200 || res.Delivered != 3200 ||
		!strings.Contains(res.FirstPublishError, "503") {
		t.Errorf("run = %+v\nwant 80 failed, 320 published, 3200 delivered and expected, nothing lost", res)
	}
}

// TestRunCounts: a server that loses, duplicates, reorders and misroutes
// events, and slips in foreign ones, is caught exactly.
func TestRunCounts(t *testing.T) {
	f := newFaultyServer(func(sub int, ev string, seq uint64) []string {
		switch {
		case sub == 0 && seq == 3: // lost for subscriber 0
			return nil
		case seq == 5: // duplicated for everyone
			return []string{ev, ev}
		case seq == 7: // held until after 8
			return []string{"hold"}
		case seq == 8:
			return []string{ev, "release"}
		case seq == 9:
			return []string{ev, "data: not a bench event\n\n"}
		}
		return []string{ev}
	})
	srv := httptest.NewServer(f)
	defer srv.Close()
	defer f.close()
	cfg := testConfig(srv.URL)
	cfg.Subscribers, cfg.Channels, cfg.Publishers, cfg.Count, cfg.Drain = 3, 1, 1, 10, 300*time.Millisecond
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Lost != 1 || res.SubscribersLosing != 1 || res.MaxLostPerSubscriber != 1 ||
		res.Duplicated != 3 || res.SubscribersDuplicated != 3 ||
		res.OutOfOrder != 3 || res.SubscribersOutOfOrder != 3 ||
		res.Foreign != 3 || res.Delivered != 29 || res.Expected != 30 || res.OK() {
		t.Errorf("run = %+v\nwant 1 lost, 3 duplicated, 3 out of order, 3 foreign, 29 of 30 delivered", res)
	}
}

// faultyServer passes published events to its streams through a fault
// function of the subscriber index, the SSE frame and the sequence
// number. The function returns frames to send; "hold" keeps the event
// back, "release" sends what was held.
type faultyServer struct {
	fault func(sub int, ev string, seq uint64) []string
	mu    sync.Mutex
	subs  []chan string
	done  chan struct{}
}

func newFaultyServer(fault func(int, string, uint64) []string) *faultyServer {
	return &faultyServer{fault: fault, done: make(chan struct{})}
}

func (f *faultyServer) close() { close(f.done) }

func (f *faultyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		body, _ := io.ReadAll(r.Body)
		st, _ := parsePayload(string(body))
		frame := fmt.Sprintf("id: %d\ndata: %s\n\n", st.seq, body)
		f.mu.Lock()
		for i, ch := range f.subs {
			ch <- frame + "\x00" + fmt.Sprint(st.seq) + "\x00" + fmt.Sprint(i)
		}
		f.mu.Unlock()
		io.WriteString(w, `{"id":"x"}`)
		return
	}
	ch := make(chan string, 1000)
	f.mu.Lock()
	sub := len(f.subs)
	f.subs = append(f.subs, ch)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush()
	var held []string
	for {
		select {
		case <-r.Context().Done():
			return
		case <-f.done:
			return
		case m := <-ch:
			parts := strings.Split(m, "\x00")
			var seq uint64
			fmt.Sscan(parts[1], &seq)
			for _, out := range f.fault(sub, parts[0], seq) {
				switch out {
				case "hold":
					held = append(held, parts[0])
				case "release":
					for _, h := range held {
						io.WriteString(w, h)
					}
					held = nil
				default:
					io.WriteString(w, out)
				}
			}
			http.NewResponseController(w).Flush()
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestValidate(t *testing.T) {
	c := Config{SubURLs: []string{"https://x"}, PubURLs: []string{"ftp://y"}, Subscribers: -1, Channels: 0, Publishers: 1000,
		Count: -1, Size: 10, Rate: -1, Duration: 0, ConnectTimeout: 2 * time.Hour, Drain: -1, Ack: "all", Prefix: "a/b"}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate of a bad config = nil")
	}
	for _, want := range []string{`"https://x"`, `"ftp://y"`, "subscribers -1", "channels 0", "publishers 1000", "count -1",
		"size 10", "rate -1", "duration 0s", "connect timeout 2h0m0s", "drain -1ns", `ack "all"`, `prefix "a/b"`, "no event reader"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v\nwant it to mention %s", err, want)
		}
	}
	good := testConfig("http://127.0.0.1:1")
	if err := good.Validate(); err != nil {
		t.Errorf("Validate of a good config = %v", err)
	}
}

// TestRunBareCluster: three bare loops relaying to each other, publishing
// on the first and subscribing on the second, deliver every event once and
// in order: the bare cluster fault.sh measures as the floor of rumor-3.
func TestRunBareCluster(t *testing.T) {
	var relayAddrs []string
	var urls []string
	start := func(relayTo []string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var rln net.Listener
		if relayTo == nil {
			if rln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			relayAddrs = append(relayAddrs, rln.Addr().String())
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ServeBareRelay(ctx, ln, rln, relayTo) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("ServeBareRelay: %v", err)
			}
		})
		urls = append(urls, "http://"+ln.Addr().String())
	}
	start(nil)
	start(nil)
	start(relayAddrs) // the publishing node dials both before it serves
	cfg := testConfig(urls[1])
	cfg.PubURLs = []string{urls[2]}
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	const want = 4*134 + 3*133 + 3*133
	if res.Published != 400 || res.Delivered != want || res.Expected != want || !res.OK() {
		t.Errorf("run = %+v\nwant 400 published, %d delivered, nothing wrong", res, want)
	}
}
