package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rumorhq/rumor/bench"
)

// runBenchJSON runs `rumor bench --json --quiet args...` and decodes the
// result; err is run's.
func runBenchJSON(t *testing.T, args ...string) (*bench.Result, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(t.Context(), append([]string{"bench", "--json", "--quiet"}, args...), env(nil), &out, &errOut)
	if out.Len() == 0 {
		return nil, fmt.Errorf("no result (%v); stderr:\n%s", err, errOut.String())
	}
	var res bench.Result
	if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil {
		t.Fatalf("bench --json printed %q: %v", out.String(), jerr)
	}
	return &res, err
}

// wantClean fails unless res delivered every event to every subscriber
// of its channel, once and in order.
func wantClean(t *testing.T, res *bench.Result, published, deliveries uint64) {
	t.Helper()
	if res.Published != published || res.Delivered != deliveries || res.Expected != deliveries || res.Latency.Count != deliveries || !res.OK() {
		t.Errorf("bench result: %+v\nwant %d published, %d delivered and expected, nothing lost, duplicated or out of order", res, published, deliveries)
	}
	if res.Latency.P50 <= 0 || res.Latency.P99 < res.Latency.P50 || res.Latency.Max < res.Latency.P99 {
		t.Errorf("latency percentiles %+v are not ordered", res.Latency)
	}
}

func TestBenchBare(t *testing.T) {
	res, err := runBenchJSON(t, "--bare", "--subscribers", "20", "--channels", "2", "--publishers", "3", "--count", "300")
	if err != nil {
		t.Fatal(err)
	}
	wantClean(t, res, 300, 20*150)
}

func TestBenchSingleNode(t *testing.T) {
	res, err := runBenchJSON(t, "--cluster", "1", "--subscribers", "20", "--channels", "3", "--publishers", "4", "--count", "300", "--size", "1KiB")
	if err != nil {
		t.Fatal(err)
	}
	// 3 channels of 100 events; 20 subscribers: 7, 7 and 6 on them.
	wantClean(t, res, 300, 20*100)
	if res.Size != 1024 {
		t.Errorf("size = %d, want 1024", res.Size)
	}
}

// TestBenchCrossNode: with --cross-node every event is published on one
// node and received on the others.
func TestBenchCrossNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	// memberlist's last probe can outlive Shutdown by a probe interval.
	t.Cleanup(func() { waitGoroutines(t, "hashicorp/memberlist.", 5*time.Second) })
	res, err := runBenchJSON(t, "--cluster", "3", "--cross-node", "--subscribers", "10", "--publishers", "2", "--count", "100", "--rate", "1000")
	if err != nil {
		t.Fatal(err)
	}
	wantClean(t, res, 100, 10*100)
}

// TestBenchEnvelope: with --envelope every stream asks for ?envelope=json
// and each event must name the subscriber's channel, across nodes.
func TestBenchEnvelope(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	t.Cleanup(func() { waitGoroutines(t, "hashicorp/memberlist.", 5*time.Second) })
	res, err := runBenchJSON(t, "--cluster", "3", "--cross-node", "--envelope", "--subscribers", "12", "--channels", "4", "--publishers", "2", "--count", "200", "--rate", "2000")
	if err != nil {
		t.Fatal(err)
	}
	wantClean(t, res, 200, 12*50)
	if res.Misrouted != 0 || res.Foreign != 0 {
		t.Errorf("misrouted %d, foreign %d; want every event enveloped with its subscriber's channel", res.Misrouted, res.Foreign)
	}
}

// sseServer is a server whose streams put rumor bench's parser to the
// test: every event is encoded another way (CRLF, CR, a type, comments,
// retry: lines, field values without a space, an id-only block, bytes
// written one at a time), the stream starts with a byte order mark, and
// every fresh stream is cut off in the middle of its third event, so that
// the bench must drop that half event, reconnect with Last-Event-ID and get
// it whole from the resumed stream.
type sseServer struct {
	mu     sync.Mutex
	events []string // data, by id-1
	more   chan struct{}
	cuts   int
}

func newSSEServer() *sseServer { return &sseServer{more: make(chan struct{})} }

func (s *sseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.events = append(s.events, string(b))
		close(s.more)
		s.more = make(chan struct{})
		s.mu.Unlock()
		io.WriteString(w, `{"id":"x"}`)
		return
	}
	s.mu.Lock()
	next := len(s.events) // a fresh stream is live only
	s.mu.Unlock()
	resumed := r.Header.Get("Last-Event-ID") != ""
	if resumed {
		id, err := strconv.Atoi(r.Header.Get("Last-Event-ID"))
		if err != nil {
			http.Error(w, "bad id", http.StatusBadRequest)
			return
		}
		next = id
	}
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	io.WriteString(w, "\uFEFF: hello\r\n\r\n")
	rc.Flush()
	sent := 0
	for {
		s.mu.Lock()
		more := s.more
		pending := s.events[next:]
		s.mu.Unlock()
		for _, data := range pending {
			next++
			id := strconv.Itoa(next)
			frames := []string{
				"id: " + id + "\r\ndata: " + data + "\r\n\r\n",
				": a comment\nretry: 1000\nid:" + id + "\ndata:" + data + "\n\n",
				"id: " + id + "\revent: order\rdata: " + data + "\r\r",
				"id: " + strconv.Itoa(next-1) + "\n\n: an id-only block is no event\nid: " + id + "\ndata: " + data + "\n\n",
			}
			frame := frames[next%len(frames)]
			sent++
			if sent == 3 && !resumed {
				io.WriteString(w, frame[:len(frame)/2]) // the stream ends in the middle of an event
				s.mu.Lock()
				s.cuts++
				s.mu.Unlock()
				return
			}
			if next%5 == 0 {
				for i := range len(frame) { // a byte at a time
					io.WriteString(w, frame[i:i+1])
					rc.Flush()
				}
			} else {
				io.WriteString(w, frame)
			}
		}
		rc.Flush()
		select {
		case <-more:
		case <-r.Context().Done():
			return
		}
	}
}

// TestBenchNotFooled: however the stream is encoded and wherever it is cut
// off, every event counts once.
func TestBenchNotFooled(t *testing.T) {
	s := newSSEServer()
	srv := httptest.NewServer(s)
	defer srv.Close()
	res, err := runBenchJSON(t, "--server", srv.URL, "--metrics=false", "--subscribers", "5", "--publishers", "2", "--count", "60", "--rate", "600")
	if err != nil {
		t.Fatal(err)
	}
	wantClean(t, res, 60, 5*60)
	if res.Reconnects != 5 || s.cuts != 5 || res.Foreign != 0 {
		t.Errorf("reconnects %d, cuts %d, foreign %d; want every one of the 5 streams cut and resumed, nothing foreign", res.Reconnects, s.cuts, res.Foreign)
	}
}

// TestBenchLossExits: lost and duplicated events are reported and make
// the command fail.
func TestBenchLossExits(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			io.WriteString(w, `{"id":"x"}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		<-r.Context().Done() // delivers nothing
	}))
	defer srv.Close()
	res, err := runBenchJSON(t, "--server", srv.URL, "--metrics=false", "--subscribers", "2", "--count", "10", "--drain", "100ms")
	if err == nil || !strings.Contains(err.Error(), "20 events lost") {
		t.Errorf("bench against a server that delivers nothing: %v, want an error counting 20 lost", err)
	}
	if res == nil || res.Lost != 20 || res.SubscribersLosing != 2 || res.Delivered != 0 {
		t.Errorf("result %+v, want 20 lost by 2 subscribers", res)
	}
}

// TestBenchIdleMemory: an idle run reads the server's memory from /proc
// and /metrics before and after the streams open.
func TestBenchIdleMemory(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- bench.ServeBare(ctx, ln) }()
	defer func() { cancel(); <-served }()
	res, err := runBenchJSON(t, "--server", "http://"+ln.Addr().String(), "--subscribers", "30", "--count", "0", "--hold", "0s",
		"--pid", strconv.Itoa(os.Getpid()), "--server-gc")
	if err != nil {
		t.Fatal(err)
	}
	m := res.Memory
	if res.Connected != 30 || m == nil || m.Before.RSS == 0 || m.After.HWM == 0 || m.After.HeapInuse == 0 || m.GoPerStream == 0 || m.Error != "" {
		t.Errorf("idle run: %+v, memory %+v", res, m)
	}
}

func TestBenchBareCommand(t *testing.T) {
	r := start(t, env(nil), "bench", "bare", "--http-addr", "127.0.0.1:0")
	out := r.out.waitContains(t, "bare fan-out loop on http://")
	url := regexp.MustCompile(`http://[0-9.:]+`).FindString(out)
	if code, _ := get(t, url+"/metrics"); code != http.StatusOK {
		t.Errorf("GET %s/metrics = %d", url, code)
	}
	if err := r.stop(t); err != nil {
		t.Errorf("bench bare: %v", err)
	}
}

func TestBenchUsage(t *testing.T) {
	err := run(t.Context(), []string{"bench", "--subscribers", "-1", "--size", "1", "--rate", "-5", "--cluster", "2", "--bare",
		"--duration", "0s", "--ack", "sometimes", "extra"}, env(nil), io.Discard, io.Discard)
	if err == nil {
		t.Fatal("bench with bad flags: no error")
	}
	for _, want := range []string{"unexpected arguments", "subscribers -1", "size 1", "rate -5", "pick one", "duration 0s", `ack "sometimes"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("bench with bad flags = %v\nwant it to mention %s", err, want)
		}
	}
	var help bytes.Buffer
	if err := run(t.Context(), []string{"help", "bench"}, env(nil), &help, io.Discard); err != nil || !strings.Contains(help.String(), "--subscribers") {
		t.Errorf("help bench = %v, %q", err, help.String())
	}
}

// TestBenchOpenFiles: a run that would need more sockets than the
// process may open is refused before it starts, and told what to do.
func TestBenchOpenFiles(t *testing.T) {
	limit, err := bench.OpenFileLimit()
	if err != nil || limit > bench.MaxSubscribers {
		t.Skipf("open-file limit %d (%v): no run within the bench's limits exceeds it", limit, err)
	}
	subs := strconv.FormatUint(limit/2+1, 10)
	err = run(t.Context(), []string{"bench", "--bare", "--subscribers", subs}, env(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "run the server as its own process") {
		t.Errorf("bench --bare --subscribers %s with an open-file limit of %d = %v, want a refusal", subs, limit, err)
	}
}

// TestBenchStops: a server that never answers the streams cannot keep
// the bench running past its connect timeout.
func TestBenchStops(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // accepted, never answered
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	start := time.Now()
	err = run(t.Context(), []string{"bench", "--quiet", "--server", "http://" + ln.Addr().String(), "--metrics=false", "--subscribers", "3", "--connect-timeout", "300ms"}, env(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "0 of 3 subscribers connected within 300ms") {
		t.Errorf("bench against a silent server = %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("bench took %v to give up", took)
	}
}

// TestBenchSummarize: `rumor bench summarize` prints a results file as
// markdown, and --held answers for a rung of row 4.
func TestBenchSummarize(t *testing.T) {
	file := t.TempDir() + "/results.jsonl"
	const results = `{"row":"4","point":"1000","target":"bare","rep":1,"exit":0,"result":{"subscribers":100,"connected":100,"channels":1,"publishers":32,"size":200,"rate":1000,"publishSeconds":10,"publishRate":1000,"delivered":1,"deliverySeconds":1,"deliveryRate":100000,"latency":{"count":1,"p99":9}}}
{"row":"4","point":"1000","target":"rumor","rep":1,"exit":0,"result":{"subscribers":100,"connected":100,"channels":1,"publishers":32,"size":200,"rate":1000,"publishSeconds":10,"publishRate":900,"delivered":1,"deliverySeconds":1,"deliveryRate":90000,"latency":{"count":1,"p99":9}}}
`
	if err := os.WriteFile(file, []byte(results), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"bench", "summarize", file}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if want := "| 1,000 (held: bare) | p99 ms | 9.00 | 9.00 | 1.00 |"; !strings.Contains(out.String(), want) {
		t.Errorf("bench summarize printed\n%s\nwant a line %q", out.String(), want)
	}
	out.Reset()
	if err := run(t.Context(), []string{"bench", "summarize", "--held", "1000", file}, env(nil), &out, io.Discard); err != nil || out.String() != "bare\n" {
		t.Errorf("bench summarize --held 1000 = %q, %v; want bare", out.String(), err)
	}
	if err := run(t.Context(), []string{"bench", "summarize", "--held", "1500", file}, env(nil), io.Discard, io.Discard); err == nil {
		t.Error("bench summarize --held 1500: no error, but no target ran that rung")
	}
	if err := run(t.Context(), []string{"bench", "summarize"}, env(nil), io.Discard, io.Discard); err == nil {
		t.Error("bench summarize without a file: no error")
	}
}

// TestBenchProbes: every server is probed, paired with its PID in order,
// so a cluster's memory and CPU time are summed over its nodes.
func TestBenchProbes(t *testing.T) {
	got := probes([]string{"http://a", "http://b/"}, nil, []int{11, 12, 13}, true, true)
	want := []bench.Probe{
		{PID: 11, MetricsURL: "http://a/metrics", GCURL: "http://a/debug/pprof/heap?gc=1"},
		{PID: 12, MetricsURL: "http://b/metrics", GCURL: "http://b/debug/pprof/heap?gc=1"},
		{PID: 13},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("probes = %+v\nwant %+v", got, want)
	}
	// With --admin-url, /metrics and the forced GC are read on the admin ports.
	got = probes([]string{"http://a", "http://b"}, []string{"http://a:9090/"}, nil, true, true)
	want = []bench.Probe{
		{MetricsURL: "http://a:9090/metrics", GCURL: "http://a:9090/debug/pprof/heap?gc=1"},
		{MetricsURL: "http://b/metrics", GCURL: "http://b/debug/pprof/heap?gc=1"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("probes with an admin URL = %+v\nwant %+v", got, want)
	}
	if got := probes([]string{"http://a", "http://b"}, nil, nil, false, false); len(got) != 0 {
		t.Errorf("probes without PIDs or metrics = %+v, want none", got)
	}
	if _, err := parsePIDs("12,x"); err == nil {
		t.Error(`parsePIDs("12,x"): no error`)
	}
	if isTerminal(&bytes.Buffer{}) || isTerminal(io.Discard) {
		t.Error("a buffer is not a terminal")
	}
	f, err := os.Create(t.TempDir() + "/stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is not a terminal")
	}
}

// TestBenchRefused: against `rumor serve` with its per-client stream limit
// (2 here, 100 by default) the streams over it are refused. The bench
// counts them apart from lost events, waits for the retry: (capped by
// --max-retry) instead of hammering, and names the fix.
func TestBenchRefused(t *testing.T) {
	_, url := startServe(t, "--max-streams-per-client", "2")
	began := time.Now()
	var out, errOut bytes.Buffer
	err := run(t.Context(), []string{"bench", "--json", "--quiet", "--url", url, "--metrics=false",
		"--subscribers", "5", "--count", "100", "--rate", "200", "--max-retry", "200ms", "--drain", "200ms"}, env(nil), &out, &errOut)
	took := time.Since(began)
	if err == nil || !strings.Contains(err.Error(), "--max-streams-per-client 0") || !strings.Contains(err.Error(), "3 of 5 subscribers were refused") {
		t.Errorf("bench over the per-client limit: %v, want the refused subscribers and the fix named", err)
	}
	if !strings.Contains(errOut.String(), "--url is deprecated") {
		t.Errorf("bench --url: stderr %q, want a deprecation note", errOut.String())
	}
	var res bench.Result
	if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil {
		t.Fatalf("bench --json printed %q: %v", out.String(), jerr)
	}
	if res.Lost != 0 || res.SubscribersRefused != 3 || res.Unserved != 300 || res.Delivered != 200 {
		t.Errorf("result: lost %d, refused subscribers %d, unserved %d, delivered %d; want 0 lost, 3 refused with 300 unserved, 200 delivered",
			res.Lost, res.SubscribersRefused, res.Unserved, res.Delivered)
	}
	if !strings.Contains(res.FirstRefusal, "too many streams from your address") {
		t.Errorf("first refusal %q, want rumor's reason", res.FirstRefusal)
	}
	// Each refused subscriber waits at least half of the 200ms cap.
	if limit := uint64(3 * (took/(100*time.Millisecond) + 2)); res.Refused < 3 || res.Refused > limit {
		t.Errorf("%d streams refused in %v, want 3 to %d: the bench must wait for retry:", res.Refused, took, limit)
	}
}
