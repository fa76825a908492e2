package main

// The binary as a container runs it: configured only by RUMOR_* variables,
// JSON logs on stdout, SIGTERM → a clean exit 0 within the drain timeout,
// and all of that as PID 1.
//
// These tests are parallel: they start after the in-process tests, which
// run while TestMain builds the binary.

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// containerEnv is a container's environment: no flags, only variables.
func containerEnv() []string {
	return []string{
		"PATH=/usr/bin:/bin",
		"RUMOR_HTTP_ADDR=127.0.0.1:0",
		"RUMOR_LOG_FORMAT=json",
		"RUMOR_NODE_NAME=ctr",
		"RUMOR_DRAIN_TIMEOUT=4s",
		"RUMOR_HISTORY_SIZE=10",
	}
}

// proc is a started rumor process and its JSON log lines.
type proc struct {
	cmd     *exec.Cmd
	lines   chan map[string]any // every stdout line, parsed
	bad     chan string         // stdout lines that are not JSON
	exited  chan struct{}       // closed once the process exited
	waitErr error               // cmd.Wait's result, once exited is closed
}

func startProc(tb testing.TB, cmd *exec.Cmd) *proc {
	tb.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %v: %v", cmd.Args, err)
	}
	p := &proc{cmd: cmd, lines: make(chan map[string]any, 1000), bad: make(chan string, 100), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				p.bad <- sc.Text()
				continue
			}
			p.lines <- m
		}
		close(p.lines)
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	tb.Cleanup(func() {
		// Only our own process, by pid, if the test left it running.
		_ = cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
		}
		if tb.Failed() && stderr.Len() > 0 {
			tb.Logf("stderr of %v:\n%s", cmd.Args, stderr.String())
		}
	})
	return p
}

// waitLog returns the first log line with msg, failing after 15s.
func (p *proc) waitLog(tb testing.TB, msg string) map[string]any {
	tb.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case m, ok := <-p.lines:
			if !ok {
				tb.Fatalf("rumor exited before logging %q", msg)
			}
			if m["msg"] == msg {
				return m
			}
		case line := <-p.bad:
			tb.Errorf("a stdout line is not JSON: %q", line)
		case <-deadline:
			tb.Fatalf("no %q log line within 15s", msg)
		}
	}
}

// drainLogs checks that the rest of stdout is JSON and has a "stopped" line.
func (p *proc) drainLogs(tb testing.TB) {
	tb.Helper()
	stopped := false
	for m := range p.lines {
		stopped = stopped || m["msg"] == "stopped"
	}
	select {
	case line := <-p.bad:
		tb.Errorf("a stdout line is not JSON: %q", line)
	default:
	}
	if !stopped {
		tb.Error(`no "stopped" log line`)
	}
}

// waitExit waits for the process to exit and returns its exit code.
func (p *proc) waitExit(tb testing.TB, within time.Duration) int {
	tb.Helper()
	select {
	case <-p.exited:
		err := p.waitErr
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			return ee.ExitCode()
		}
		if err != nil {
			tb.Fatalf("wait: %v", err)
		}
		return 0
	case <-time.After(within):
		tb.Fatalf("rumor did not exit within %v of SIGTERM", within)
		return -1
	}
}

func TestBinaryContainer(t *testing.T) {
	t.Parallel()
	bin := binary.get(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = containerEnv()
	p := startProc(t, cmd)
	started := p.waitLog(t, "starting")
	if started["version"] != testVersion {
		t.Errorf("starting log has version %v, want %s (set with -ldflags -X main.buildVersion)", started["version"], testVersion)
	}
	listening := p.waitLog(t, "listening")
	url, _ := listening["url"].(string)
	if !strings.HasPrefix(url, "http://127.0.0.1:") || listening["node"] != "ctr" {
		t.Fatalf("listening log = %v, want the url on 127.0.0.1 and node ctr", listening)
	}

	// Publish with the binary, data from stdin; a stream on the node sees it.
	tail := rawStream(t, url+"/channels/box")
	pub := exec.Command(bin, "publish", "box")
	pub.Env = []string{"RUMOR_SERVER=" + url}
	pub.Stdin = strings.NewReader("from\nstdin")
	if out, err := pub.Output(); err != nil || !strings.Contains(string(out), `"channel":"box"`) {
		t.Errorf("rumor publish box < stdin = %q, %v; want the JSON answer", out, err)
	}

	began := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.waitExit(t, 8*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if took := time.Since(began); took > 4*time.Second {
		t.Errorf("exit took %v, over RUMOR_DRAIN_TIMEOUT=4s", took)
	}
	p.drainLogs(t)
	if rest := <-tail; !strings.Contains(rest, "data: from\ndata: stdin\n\n") || !strings.Contains(rest, "\nretry: ") {
		t.Errorf("the stream got %q, want the event from stdin, then a retry: at shutdown", rest)
	}
}

func TestBinaryVersion(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(binary.get(t), "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "rumor "+testVersion+" (go") {
		t.Errorf("rumor version = %q, %v; want rumor %s (go...)", out, err, testVersion)
	}
}

// A bad configuration exits non-zero with every problem on stderr.
func TestBinaryBadConfig(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binary.get(t), "serve")
	cmd.Env = append(containerEnv(), "RUMOR_HEARTBEAT=often", "RUMOR_LOG_LEVEL=loud")
	out, err := cmd.CombinedOutput()
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() == 0 {
		t.Errorf("rumor serve with bad variables: %v, want a non-zero exit", err)
	}
	for _, want := range []string{`RUMOR_HEARTBEAT="often"`, `--log-level "loud"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not mention %s:\n%s", want, out)
		}
	}
}

// As PID 1 the kernel delivers only the signals a process handles: rumor
// must handle SIGTERM itself. unshare puts it in a new PID namespace.
func TestBinaryPID1(t *testing.T) {
	t.Parallel()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare not found: cannot run rumor as PID 1 here")
	}
	if out, err := exec.Command(unshare, "--fork", "--pid", "--mount-proc", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot create a PID namespace here (%v: %s)", err, strings.TrimSpace(string(out)))
	}
	bin := binary.get(t)
	cmd := exec.Command(unshare, "--fork", "--pid", "--mount-proc", bin, "serve")
	cmd.Env = containerEnv()
	p := startProc(t, cmd)
	started := p.waitLog(t, "starting")
	if pid, _ := started["pid"].(float64); pid != 1 {
		t.Fatalf("rumor logged pid %v, want 1", started["pid"])
	}
	listening := p.waitLog(t, "listening")
	url, _ := listening["url"].(string)
	if code, _ := get(t, url+"/healthz"); code != 200 {
		t.Errorf("GET /healthz = %d, want 200", code)
	}
	// SIGTERM goes to rumor itself (the child of unshare), as the
	// container runtime sends it to PID 1.
	child := childOf(t, cmd.Process.Pid, bin)
	began := time.Now()
	if err := syscall.Kill(child, syscall.SIGTERM); err != nil {
		t.Fatalf("kill -TERM %d: %v", child, err)
	}
	if code := p.waitExit(t, 8*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM to PID 1 = %d, want 0", code)
	}
	if took := time.Since(began); took > 4*time.Second {
		t.Errorf("exit took %v, over RUMOR_DRAIN_TIMEOUT=4s", took)
	}
	p.drainLogs(t)
}

// childOf finds the pid of the child of parent that runs exe.
func childOf(tb testing.TB, parent int, exe string) int {
	tb.Helper()
	for range 100 {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if err != nil {
				continue
			}
			// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
			fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
			if len(fields) < 2 || fields[1] != strconv.Itoa(parent) {
				continue
			}
			if target, _ := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); target == exe {
				return pid
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("no child of %d runs %s", parent, exe)
	return 0
}

// /debug/pprof/cmdline never shows a secret given as a flag: the real
// process's command line, redacted, in both flag forms.
func TestBinaryPprofHidesSecrets(t *testing.T) {
	t.Parallel()
	const secret, key = "a-secret-of-thirty-two-bytes-or-more!", "MDEyMzQ1Njc4OWFiY2RlZg=="
	cmd := exec.Command(binary.get(t), "serve", "--pprof", "--auth-hmac-secret", secret, "--gossip-key="+key)
	cmd.Env = containerEnv()
	p := startProc(t, cmd)
	url, _ := p.waitLog(t, "listening")["url"].(string)
	resp, err := http.Get(url + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got := string(b)
	if resp.StatusCode != http.StatusOK || !strings.Contains(got, "--pprof") {
		t.Fatalf("GET /debug/pprof/cmdline = %d %q, want the command line", resp.StatusCode, got)
	}
	if strings.Contains(got, secret) || strings.Contains(got, key) {
		t.Errorf("GET /debug/pprof/cmdline = %q: it shows a secret", got)
	}
	if !strings.Contains(got, "--auth-hmac-secret\x00REDACTED") || !strings.Contains(got, "--gossip-key=REDACTED") {
		t.Errorf("GET /debug/pprof/cmdline = %q, want the secrets' flags with REDACTED values", got)
	}
}
