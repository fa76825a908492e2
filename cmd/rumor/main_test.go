package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	flag.Parse() // for testing.Short
	if !testing.Short() {
		// The binary builds while the in-process tests run; with -short
		// the tests that run it skip.
		go binary.build()
	}
	goleak.VerifyTestMain(runThenWait{m}, goleak.Cleanup(func(code int) {
		binary.cleanup()
		os.Exit(code) // goleak.Cleanup replaces its own exit: without this, a leak would not fail the run
	}),
		// r3labs/sse/v2 (TestR3labsClient) leaks its read loop on every
		// Unsubscribe: it sends the stream's end to a channel nobody reads
		// any more. One more reason rumor subscribe does not use it.
		goleak.IgnoreAnyFunction("github.com/r3labs/sse/v2.(*Client).readLoop"))
}

// runThenWait runs the tests, then waits for the binary's build, so that
// goleak does not see the build's goroutine when no test needed it.
type runThenWait struct{ m *testing.M }

func (r runThenWait) Run() int {
	code := r.m.Run()
	if !testing.Short() {
		binary.build()
	}
	settleMemberlist(5 * time.Second)
	return code
}

// settleMemberlist waits, up to limit, until no memberlist goroutine runs.
// After Shutdown returns, a probe memberlist started before it (probeNode)
// may still wait out its probe interval, about a second, longer than goleak
// retries; one that is still there after limit is a leak goleak reports.
func settleMemberlist(limit time.Duration) {
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		n := runtime.Stack(buf, true)
		if !bytes.Contains(buf[:n], []byte("github.com/hashicorp/memberlist.")) {
			return
		}
	}
}

// clusterScenario skips a test that forms a cluster of several nodes with
// -short: gossip takes a second or two to form one. go test ./... runs it.
func clusterScenario(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("forms a multi-node cluster: not with -short")
	}
}

// waitFor polls cond until it holds, for at most 15 s: the one way these
// tests wait for something that happens on another goroutine or process.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after 15s waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// env is a getenv for run: the variables of the map, nothing else.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// output is a writer that tests can wait on: run's stdout and stderr.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newOutput() *output { return &output{changed: make(chan struct{})} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	close(o.changed)
	o.changed = make(chan struct{})
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until ok accepts what was written so far, for at most 15s.
func (o *output) waitFor(tb testing.TB, what string, ok func(string) bool) string {
	tb.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		s, ch := o.buf.String(), o.changed
		o.mu.Unlock()
		if ok(s) {
			return s
		}
		select {
		case <-ch:
		case <-deadline.C:
			tb.Fatalf("timed out waiting for %s; output so far:\n%s", what, s)
		}
	}
}

// waitContains waits until the output contains want.
func (o *output) waitContains(tb testing.TB, want string) string {
	tb.Helper()
	return o.waitFor(tb, "output containing "+want, func(s string) bool { return strings.Contains(s, want) })
}

// logLine finds the first JSON log line whose msg is msg.
func logLine(s, msg string) (map[string]any, bool) {
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			return m, true
		}
	}
	return nil, false
}

// running is a command started with run in the background.
type running struct {
	out    *output // stdout
	errOut *output // stderr
	cancel context.CancelFunc
	done   chan struct{} // closed when run returned
	err    error         // run's result, once done is closed
}

// start runs args in the background; the test's cleanup stops it.
func start(tb testing.TB, getenv func(string) string, args ...string) *running {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{out: newOutput(), errOut: newOutput(), cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = run(ctx, args, getenv, r.out, r.errOut)
		close(r.done)
	}()
	tb.Cleanup(func() { r.stop(tb) })
	return r
}

// stop cancels the command's context and returns run's result, failing the
// test if run does not return within 20s.
func (r *running) stop(tb testing.TB) error {
	tb.Helper()
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(20 * time.Second):
		tb.Errorf("run did not return 20s after its context ended; stdout:\n%s\nstderr:\n%s", r.out, r.errOut)
		return errors.New("run did not return")
	}
}

// startServe runs `rumor serve` on a free loopback port with JSON logs
// and returns it with its URL, learnt from the "listening" log line.
func startServe(tb testing.TB, args ...string) (*running, string) {
	tb.Helper()
	return startServeWith(tb, "http", args...)
}

// get fetches url and returns status and body.
func get(tb testing.TB, url string) (int, string) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// binary is the rumor binary, built once for the tests that run it as a
// process, the way a container does.
var binary builtBinary

type builtBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// testVersion is what the test binary's `rumor version` must print: the
// Dockerfile sets the version the same way.
const testVersion = "v0.0.0-rumortest"

// get returns the binary's path, waiting for its build. With -short the
// test skips: building and running processes is for the full run.
func (b *builtBinary) get(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("builds and runs the rumor binary as a process: not with -short")
	}
	b.build()
	if b.err != nil {
		tb.Fatalf("build rumor: %v", b.err)
	}
	return b.path
}

// build builds the binary once; later calls wait for the first.
func (b *builtBinary) build() {
	b.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			b.err = err
			return
		}
		b.dir, b.err = os.MkdirTemp("", "rumor-bin-")
		if b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "rumor")
		cmd := exec.Command(goTool, "build", "-ldflags=-X main.buildVersion="+testVersion, "-o", b.path, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
}

func (b *builtBinary) cleanup() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}
