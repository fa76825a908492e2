package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The clients of the namespace tests run their TCP connections from inside
// a client namespace the test created: the test binary re-executes itself
// there (`ip netns exec NS e2e.test` with forwardEnv set) as a forwarder
// that accepts connections on a Unix socket, reads the TCP address the
// client wants on the first line, and connects to it from inside the
// namespace. So nothing in the root namespace ever dials a namespace's
// address (which would leave by the default route), while the workload,
// the probes and the checker stay in the test process.
const (
	forwardEnv    = "RUMOR_E2E_FORWARD"     // the Unix socket to listen on
	forwardNetEnv = "RUMOR_E2E_FORWARD_NET" // the only prefix it connects to
)

// forwardMain is the forwarder's main. It exits when its standard input
// closes (the test ended) or on a signal.
func forwardMain(sock string) int {
	allowed, err := netip.ParsePrefix(os.Getenv(forwardNetEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "forwarder: %s: %v\n", forwardNetEnv, err)
		return 2
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintf(os.Stderr, "forwarder: %v\n", err)
		return 1
	}
	defer ln.Close()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		ln.Close()
	}()
	fmt.Println("ready")
	for {
		conn, err := ln.Accept()
		if err != nil {
			return 0
		}
		go forward(conn, allowed)
	}
}

// forward serves one client: "host:port\n" in, "+\n" or "-error\n" out,
// then bytes both ways until either side closes.
func forward(conn net.Conn, allowed netip.Prefix) {
	defer conn.Close()
	br := bufio.NewReaderSize(conn, 256)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil {
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	addr := strings.TrimSpace(line)
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !allowed.Contains(ap.Addr()) {
		fmt.Fprintf(conn, "-%s is not in %s\n", addr, allowed)
		return
	}
	up, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		fmt.Fprintf(conn, "-%v\n", err)
		return
	}
	defer up.Close()
	if _, err := io.WriteString(conn, "+\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, br); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, up); done <- struct{}{} }()
	<-done
	// Closing both ends the other copy.
	conn.Close()
	up.Close()
	<-done
}

// forwarder is a running forwarder process.
type forwarder struct {
	sock string
}

// startForwarder runs the forwarder in namespace ns, allowed to connect to
// prefix only, and stops it in tb.Cleanup.
func startForwarder(tb testing.TB, ns string, prefix netip.Prefix) *forwarder {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	sock := tb.TempDir() + "/fwd.sock"
	cmd := exec.Command("ip", "netns", "exec", ns, exe)
	cmd.Env = append(os.Environ(), forwardEnv+"="+sock, forwardNetEnv+"="+prefix.String())
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start forwarder in %s: %v", ns, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = cmd.Wait()
	}()
	tb.Cleanup(func() {
		stdin.Close()
		t := time.AfterFunc(5*time.Second, func() { _ = cmd.Process.Kill() })
		wg.Wait()
		t.Stop()
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("said %q", line)
		}
		ready <- err
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case err := <-ready:
		if err != nil {
			tb.Fatalf("forwarder in %s: %v", ns, err)
		}
	case <-time.After(20 * time.Second):
		tb.Fatalf("forwarder in %s: not ready after 20s", ns)
	}
	return &forwarder{sock: sock}
}

// DialContext connects to addr through the forwarder.
func (f *forwarder) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", f.sock)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	if _, err := io.WriteString(conn, addr+"\n"); err != nil {
		conn.Close()
		return nil, err
	}
	// Read the answer byte by byte: what follows it belongs to the caller.
	var line []byte
	var b [1]byte
	for len(line) < 512 {
		if _, err := conn.Read(b[:]); err != nil {
			conn.Close()
			return nil, fmt.Errorf("dial %s through the namespace: %w", addr, err)
		}
		if b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	_ = conn.SetDeadline(time.Time{})
	if len(line) == 0 || line[0] != '+' {
		conn.Close()
		return nil, fmt.Errorf("dial %s through the namespace: %w", addr, errors.New(strings.TrimPrefix(string(line), "-")))
	}
	return conn, nil
}

// transport returns an HTTP transport whose connections start inside the
// forwarder's namespace.
func (f *forwarder) transport() *http.Transport {
	return &http.Transport{DialContext: f.DialContext, MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second}
}
