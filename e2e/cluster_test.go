package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// nodeSpec says where one node listens. Addresses stay the same across
// restarts; every start is a new incarnation with a new member name.
type nodeSpec struct {
	Name   string // the harness's name: n1, n2, …
	NS     string // network namespace to run in; "" means the test's own
	Host   string
	HTTP   int
	Gossip int
}

func (s nodeSpec) httpAddr() string   { return net.JoinHostPort(s.Host, strconv.Itoa(s.HTTP)) }
func (s nodeSpec) gossipAddr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Gossip)) }
func (s nodeSpec) url() string        { return "http://" + s.httpAddr() }

// cluster runs rumor processes and asks them about themselves.
type cluster struct {
	tb     testing.TB
	bin    string
	dir    string // node logs
	specs  []nodeSpec
	args   []string // serve flags added for every node
	env    []string
	client *http.Client

	mu    sync.Mutex
	procs []*proc // the running process of each node, or nil
	all   []*proc // every process started, for the logs
}

// proc is one process of a node: one incarnation.
type proc struct {
	node    int
	inc     int
	cmd     *exec.Cmd
	logPath string
	started time.Time
	done    chan struct{}
	err     error  // Wait's result, once done is closed
	self    string // its member name, once it answered /cluster
}

// clusterOptions are what a scenario adds to the defaults.
type clusterOptions struct {
	Args      []string          // more `rumor serve` flags
	Transport http.RoundTripper // how the test reaches the nodes; nil means directly
}

// newCluster prepares a cluster of specs (nothing is started). Cleanup
// kills whatever still runs, fails the test on a data race or panic in any
// node's log, and prints the logs when the test failed.
func newCluster(tb testing.TB, specs []nodeSpec, o clusterOptions) *cluster {
	tb.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RUMOR_") && !strings.HasPrefix(kv, "POD_IP=") {
			env = append(env, kv)
		}
	}
	// The key goes by environment, the rest by flags: both paths are used.
	env = append(env, "RUMOR_GOSSIP_KEY="+base64.StdEncoding.EncodeToString(key))
	// Presence stays on, as in production: its events (rumor.census,
	// rumor.presence.*) take sequence numbers of every origin, which the
	// checker tells from gaps (check_test.go).
	tr := o.Transport
	if tr == nil {
		tr = &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	}
	c := &cluster{
		tb:     tb,
		bin:    rumorBinary(tb),
		dir:    logDir(tb),
		specs:  specs,
		env:    env,
		client: &http.Client{Transport: tr, Timeout: 3 * time.Second},
		procs:  make([]*proc, len(specs)),
	}
	c.args = append([]string{
		"--cluster-label", fmt.Sprintf("e2e-%d-%s", os.Getpid(), tb.Name()),
		"--rejoin-interval", "2s",
		"--drain-timeout", "5s",
		"--log-level", "debug",
		"--log-format", "json",
	}, o.Args...)
	tb.Cleanup(c.cleanup)
	return c
}

// logDir is where node logs go: $RUMOR_E2E_LOGDIR/<test> to keep them,
// else a directory removed after the test.
func logDir(tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv("RUMOR_E2E_LOGDIR"); d != "" {
		dir := filepath.Join(d, strings.ReplaceAll(tb.Name(), "/", "_"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		return dir
	}
	return tb.TempDir()
}

func (c *cluster) cleanup() {
	c.mu.Lock()
	running := make([]*proc, 0, len(c.procs))
	for _, p := range c.procs {
		if p != nil {
			running = append(running, p)
		}
	}
	c.mu.Unlock()
	for _, p := range running {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	if t, ok := c.client.Transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
	c.mu.Lock()
	all := append([]*proc(nil), c.all...)
	c.mu.Unlock()
	for _, p := range all {
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			c.tb.Errorf("node log: %v", err)
			continue
		}
		for _, bad := range []string{"WARNING: DATA RACE", "panic: ", "fatal error: "} {
			if i := bytes.Index(b, []byte(bad)); i >= 0 {
				c.tb.Errorf("%s (%s): %q in its log:\n%s", c.specs[p.node].Name, filepath.Base(p.logPath), bad, b[i:min(len(b), i+4000)])
			}
		}
	}
	if c.tb.Failed() {
		for _, p := range all {
			c.tb.Logf("==== %s ====\n%s", p.logPath, tail(p.logPath, 120))
		}
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 4*n {
			lines = append(lines[:0], lines[len(lines)-n:]...)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// start starts node i, which must not be running.
func (c *cluster) start(i int) *proc {
	c.tb.Helper()
	s := c.specs[i]
	var join []string
	for j, o := range c.specs {
		if j != i {
			join = append(join, o.gossipAddr())
		}
	}
	args := append([]string{"serve",
		"--node-name", s.Name,
		"--http-addr", s.httpAddr(),
		"--gossip-addr", s.gossipAddr(),
		"--join", strings.Join(join, ","),
	}, c.args...)
	name, argv := c.bin, args
	if s.NS != "" {
		name, argv = "ip", append([]string{"netns", "exec", s.NS, c.bin}, args...)
	}
	c.mu.Lock()
	if c.procs[i] != nil {
		c.mu.Unlock()
		c.tb.Fatalf("start %s: already running", s.Name)
	}
	inc := 1
	for _, p := range c.all {
		if p.node == i {
			inc++
		}
	}
	c.mu.Unlock()
	logPath := filepath.Join(c.dir, fmt.Sprintf("%s.%d.log", s.Name, inc))
	f, err := os.Create(logPath)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(name, argv...)
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = f, f
	// The node dies with the test binary, however that ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.tb.Fatalf("start %s: %v", s.Name, err)
	}
	p := &proc{node: i, inc: inc, cmd: cmd, logPath: logPath, started: time.Now(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs[i] = p
	c.all = append(c.all, p)
	c.mu.Unlock()
	return p
}

// running returns node i's current process, or nil.
func (c *cluster) running(i int) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[i]
}

// kill sends SIGKILL to node i and waits for the process to be gone. It
// returns when the signal was sent.
func (c *cluster) kill(i int) time.Time {
	c.tb.Helper()
	p := c.running(i)
	if p == nil {
		c.tb.Fatalf("kill %s: not running", c.specs[i].Name)
	}
	at := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.tb.Fatalf("kill %s: %v", c.specs[i].Name, err)
	}
	<-p.done
	c.mu.Lock()
	c.procs[i] = nil
	c.mu.Unlock()
	return at
}

// stop sends SIGTERM to node i, waits for a graceful exit and fails the
// test unless it exits 0 within the drain timeout and a margin.
func (c *cluster) stop(i int) time.Duration {
	c.tb.Helper()
	p := c.running(i)
	if p == nil {
		c.tb.Fatalf("stop %s: not running", c.specs[i].Name)
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.tb.Fatalf("stop %s: %v", c.specs[i].Name, err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		c.tb.Errorf("stop %s: still running 15s after SIGTERM (drain timeout 5s); killed", c.specs[i].Name)
	}
	took := time.Since(start)
	if p.err != nil {
		c.tb.Errorf("stop %s: exit after SIGTERM: %v; log tail:\n%s", c.specs[i].Name, p.err, tail(p.logPath, 20))
	}
	c.mu.Lock()
	c.procs[i] = nil
	c.mu.Unlock()
	return took
}

// get fetches path from node i and decodes its JSON answer into v.
func (c *cluster) get(i int, path string, v any) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.specs[i].url()+path, nil)
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			return resp.StatusCode, fmt.Errorf("GET %s: %w: %q", path, err, b)
		}
	}
	return resp.StatusCode, nil
}

// member is one entry of GET /cluster.
type member struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	HTTP  string `json:"http"`
	State string `json:"state"`
}

type clusterView struct {
	Self    string   `json:"self"`
	Members []member `json:"members"`
}

func (c *cluster) view(i int) (clusterView, error) {
	var v clusterView
	code, err := c.get(i, "/cluster", &v)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET /cluster: %d", code)
	}
	return v, err
}

// waitReady waits until node i's /readyz answers 200 and records its member
// name. It fails the test if the process exits or timeout passes first.
func (c *cluster) waitReady(i int, timeout time.Duration) time.Duration {
	c.tb.Helper()
	p := c.running(i)
	if p == nil {
		c.tb.Fatalf("wait for %s: not running", c.specs[i].Name)
	}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			c.tb.Fatalf("%s exited while starting: %v; log tail:\n%s", c.specs[i].Name, p.err, tail(p.logPath, 30))
		default:
		}
		var st struct {
			Status string `json:"status"`
			Error  string `json:"error"`
		}
		code, err := c.get(i, "/readyz", &st)
		if err == nil && code == http.StatusOK {
			v, err := c.view(i)
			if err == nil {
				c.mu.Lock()
				p.self = v.Self
				c.mu.Unlock()
				return time.Since(p.started)
			}
		}
		last = fmt.Sprintf("%d %s %s %v", code, st.Status, st.Error, err)
		time.Sleep(100 * time.Millisecond)
	}
	c.tb.Fatalf("%s not ready after %v: last answer %s", c.specs[i].Name, timeout, last)
	return 0
}

// selves returns the member names of the running nodes that answered.
func (c *cluster) selves() map[int]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int]string{}
	for i, p := range c.procs {
		if p != nil && p.self != "" {
			out[i] = p.self
		}
	}
	return out
}

// converged reports whether every running node sees every running node
// alive, and if not, the first view that disagrees.
func (c *cluster) converged() (bool, string) {
	selves := c.selves()
	for i := range selves {
		v, err := c.view(i)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", c.specs[i].Name, err)
		}
		for j, name := range selves {
			if state(v, name) != "alive" {
				return false, fmt.Sprintf("%s sees %s (%s) as %q", c.specs[i].Name, c.specs[j].Name, name, state(v, name))
			}
		}
	}
	return true, ""
}

// waitConverged waits until converged and returns how long that took.
func (c *cluster) waitConverged(timeout time.Duration) time.Duration {
	c.tb.Helper()
	start := time.Now()
	var why string
	for time.Since(start) < timeout {
		var ok bool
		if ok, why = c.converged(); ok {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.tb.Fatalf("cluster did not converge in %v: %s", timeout, why)
	return 0
}

// state is name's state in v: alive, suspect, dead, left, or "" when v
// does not list it.
func state(v clusterView, name string) string {
	for _, m := range v.Members {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

// waitSeen polls observer's /cluster until name's state satisfies ok and
// returns when it first did; zero time if timeout passed.
func (c *cluster) waitSeen(observer int, name string, ok func(state string) bool, timeout time.Duration) time.Time {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if v, err := c.view(observer); err == nil && ok(state(v, name)) {
			return time.Now()
		}
		time.Sleep(25 * time.Millisecond)
	}
	return time.Time{}
}

// targets is the cluster as the workload reaches it.
func (c *cluster) targets() []target {
	out := make([]target, len(c.specs))
	for i, s := range c.specs {
		out[i] = target{Name: s.Name, URL: s.url()}
	}
	return out
}

// startAll starts every node and waits until all are ready and see each
// other alive.
func (c *cluster) startAll() {
	c.tb.Helper()
	for i := range c.specs {
		c.start(i)
	}
	for i := range c.specs {
		c.waitReady(i, 30*time.Second)
	}
	c.waitConverged(30 * time.Second)
}

// loopbackSpecs returns n node specs on 127.a.b.1…n with free ports. The
// random second and third octet keep parallel runs on one machine apart.
func loopbackSpecs(tb testing.TB, n int) []nodeSpec {
	tb.Helper()
	var b [2]byte
	_, _ = rand.Read(b[:])
	a, bb := 1+int(b[0])%250, 1+int(b[1])%250
	specs := make([]nodeSpec, n)
	for i := range specs {
		host := fmt.Sprintf("127.%d.%d.%d", a, bb, i+1)
		taken := map[int]bool{}
		specs[i] = nodeSpec{Name: fmt.Sprintf("n%d", i+1), Host: host, HTTP: freePort(tb, host, taken), Gossip: freePort(tb, host, taken)}
	}
	return specs
}

// freePort returns a port free for both TCP and UDP on host (gossip uses
// both) and not in taken, and adds it there: a port closed after the check
// can be handed out again at once, and a node given the same port for
// HTTP and gossip fails to start (seen once in CI).
func freePort(tb testing.TB, host string, taken map[int]bool) int {
	tb.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			tb.Fatalf("find a free port on %s: %v", host, err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		ln.Close()
		if err == nil {
			pc.Close()
			if !taken[port] {
				taken[port] = true
				return port
			}
		}
	}
	tb.Fatalf("no port free for TCP and UDP on %s", host)
	return 0
}

// logLine is one line of a node's JSON log.
type logLine struct {
	Time  time.Time
	Msg   string
	Attrs map[string]any
}

// firstLog returns the first line of p's log at or after since that
// matches, and whether there was one.
func firstLog(p *proc, since time.Time, match func(l logLine) bool) (time.Time, bool) {
	f, err := os.Open(p.logPath)
	if err != nil {
		return time.Time{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var attrs map[string]any
		if json.Unmarshal(sc.Bytes(), &attrs) != nil {
			continue
		}
		ts, _ := attrs["time"].(string)
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || t.Before(since) {
			continue
		}
		msg, _ := attrs["msg"].(string)
		if match(logLine{Time: t, Msg: msg, Attrs: attrs}) {
			return t, true
		}
	}
	return time.Time{}, false
}

// waitLog polls p's log until a line after since matches, for at most
// timeout.
func waitLog(p *proc, since time.Time, timeout time.Duration, match func(l logLine) bool) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for {
		if t, ok := firstLog(p, since, match); ok {
			return t, true
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(100 * time.Millisecond)
	}
}
