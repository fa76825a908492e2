package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSubscribeMovesOnKill: `rumor subscribe` given both nodes of a
// cluster keeps printing after kill -9 of the node it streams from: it
// moves to the other one and resumes with Last-Event-ID, so no event is
// missed or printed twice.
func TestSubscribeMovesOnKill(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test")
	}
	c := newCluster(t, loopbackSpecs(t, 2), clusterOptions{})
	c.startAll()

	cmd := exec.Command(c.bin, "subscribe", "--json", "--retry", "100ms",
		"--server", c.specs[0].url(), "--server", c.specs[1].url(), "demo")
	cmd.Env = c.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer // read once the process is gone
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type printed struct{ ID, Event, Data string }
	lines := make(chan printed, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var p printed
			if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
				t.Errorf("subscribe --json printed %q: %v", sc.Text(), err)
			}
			lines <- p
		}
		close(lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // our own process, by pid
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("subscribe's stderr:\n%s", stderr.String())
		}
	})

	publish := func(data string) {
		t.Helper()
		// ack=local: the survivor alone must take it before memberlist
		// has noticed the kill.
		resp, err := c.client.Post(c.specs[1].url()+"/channels/demo?ack=local", "text/plain", strings.NewReader(data))
		if err != nil {
			t.Fatalf("publish %q: %v", data, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("publish %q: %s", data, resp.Status)
		}
	}
	next := func(within time.Duration) (printed, bool) {
		select {
		case p, ok := <-lines:
			return p, ok
		case <-time.After(within):
			return printed{}, false
		}
	}

	// Until the stream on n1 is open, a publish may come before it: probe
	// until one is printed.
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("subscribe printed nothing within 10s of probes")
		}
		publish(fmt.Sprintf("probe-%d", i))
		if _, ok := next(100 * time.Millisecond); ok {
			break
		}
	}
	var want []string
	for i := range 5 {
		want = append(want, fmt.Sprintf("before-%d", i))
		publish(want[len(want)-1])
	}
	var got []string
	seen := map[string]bool{}
	read := func(n int) {
		t.Helper()
		for len(got) < n {
			p, ok := next(20 * time.Second)
			if !ok {
				t.Fatalf("subscribe printed %q, then nothing for 20s; want %q", got, want)
			}
			if strings.HasPrefix(p.Data, "probe-") {
				continue // probes published while the first was on its way
			}
			if seen[p.ID] {
				t.Errorf("event %s (%q) printed twice", p.ID, p.Data)
			}
			seen[p.ID] = true
			got = append(got, p.Data)
		}
	}
	read(5)
	c.kill(0)
	for i := range 5 {
		want = append(want, fmt.Sprintf("after-%d", i))
		publish(want[len(want)-1])
	}
	read(10)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("subscribe printed %q, want %q", got, want)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	<-done
	_ = cmd.Wait()
	if on := "on " + c.specs[1].url(); !strings.Contains(stderr.String(), on) {
		t.Errorf("subscribe's stderr does not say it resumed %s:\n%s", on, stderr.String())
	}
}
