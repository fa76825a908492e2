package main

// Real `rumor serve` processes forming one cluster on loopback: what a
// user runs, stopped, frozen and signalled as an orchestrator would.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binNode is one `rumor serve` process of a test cluster.
type binNode struct {
	*proc
	name   string
	url    string // HTTP base URL
	gossip string // gossip address, as logged
}

// clusterKey is the gossip key the test clusters share.
var clusterKey = base64.StdEncoding.EncodeToString([]byte("cluster-key-0123"))

// startBinNode starts `rumor serve` named name, joining join (if set), with
// env added to a container's environment, and waits until it listens.
func startBinNode(tb testing.TB, name, join string, env ...string) *binNode {
	tb.Helper()
	cmd := exec.Command(binary.get(tb), "serve")
	cmd.Env = append([]string{
		"PATH=/usr/bin:/bin",
		"RUMOR_HTTP_ADDR=127.0.0.1:0",
		"RUMOR_GOSSIP_ADDR=127.0.0.1:0",
		"RUMOR_GOSSIP_KEY=" + clusterKey,
		"RUMOR_LOG_FORMAT=json",
		"RUMOR_NODE_NAME=" + name,
		"RUMOR_DRAIN_TIMEOUT=5s",
		"RUMOR_JOIN=" + join,
	}, env...)
	p := startProc(tb, cmd)
	l := p.waitLog(tb, "listening")
	n := &binNode{proc: p, name: name}
	n.url, _ = l["url"].(string)
	n.gossip, _ = l["gossip"].(string)
	if n.url == "" || n.gossip == "" {
		tb.Fatalf("%s logged %v, want its url and gossip address", name, l)
	}
	return n
}

// startBinCluster starts n nodes that join the first and waits until every
// node is ready and sees every other alive.
func startBinCluster(tb testing.TB, n int) []*binNode {
	tb.Helper()
	nodes := []*binNode{startBinNode(tb, "n1", "")}
	for i := 2; i <= n; i++ {
		nodes = append(nodes, startBinNode(tb, fmt.Sprintf("n%d", i), nodes[0].gossip))
	}
	var urls []string
	for _, nd := range nodes {
		urls = append(urls, nd.url)
	}
	waitForCluster(tb, urls)
	return nodes
}

// signal sends sig to the node's process.
//
// After SIGSTOP it waits until every thread of the process is stopped:
// kill(2) returns once the signal is queued, and the process's other
// threads run on until the one it was delivered to gets a CPU and starts
// the group stop, which on a loaded machine can take milliseconds, long
// enough to take in and acknowledge an event.
func (n *binNode) signal(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	if err := n.cmd.Process.Signal(sig); err != nil {
		tb.Fatalf("kill -%v %s: %v", sig, n.name, err)
	}
	if sig != syscall.SIGSTOP {
		return
	}
	pid := n.cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for !allStopped(pid) {
		if time.Now().After(deadline) {
			tb.Fatalf("kill -STOP %s: its threads did not all stop within 10s", n.name)
		}
		time.Sleep(time.Millisecond)
	}
}

// allStopped reports whether every thread of pid is in state T (stopped).
func allStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
		if err != nil {
			return false
		}
		// pid (comm) state ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}

// publishAck publishes data on channel at server with `rumor publish --ack
// ack` and sends the answer's id, or the error, on the returned channel.
func publishAck(tb testing.TB, server, ack, channel, data string) <-chan publishResult {
	done := make(chan publishResult, 1)
	go func() {
		var out bytes.Buffer
		err := run(tb.Context(), []string{"publish", "--server", server, "--ack", ack, "--timeout", "20s", channel, data}, env(nil), &out, io.Discard)
		var ans struct{ ID string }
		if err == nil {
			err = json.Unmarshal(out.Bytes(), &ans)
		}
		done <- publishResult{ans.ID, err}
	}()
	return done
}

type publishResult struct {
	id  string
	err error
}

// TestBinaryAckAll: `rumor publish --ack all` answers only once every live
// member holds the event, so an event published after that answer, on
// another node, reaches a subscriber after it. A member that is frozen
// (SIGSTOP) but not declared dead holds the answer back.
func TestBinaryAckAll(t *testing.T) {
	t.Parallel()
	nodes := startBinCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	sub := start(t, env(nil), "subscribe", "--server", n3.url, "--retry", "10ms", "orders")
	waitForSubscriber(t, n3.url, "orders")

	n3.signal(t, syscall.SIGSTOP)
	t.Cleanup(func() { _ = n3.cmd.Process.Signal(syscall.SIGCONT) })
	created := publishAck(t, n1.url, "all", "orders", "created")
	// n2 acknowledges: an ack=peer publish on n1 answers...
	if r := <-publishAck(t, n1.url, "peer", "orders", "peer"); r.err != nil {
		t.Fatalf("publish --ack peer while n3 is frozen: %v", r.err)
	}
	// ...but ack=all waits for the frozen n3.
	select {
	case r := <-created:
		t.Fatalf("publish --ack all answered (%v, %v) while n3 was frozen", r.id, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	n3.signal(t, syscall.SIGCONT)
	r := <-created
	if r.err != nil {
		t.Fatalf("publish --ack all after n3 thawed: %v", r.err)
	}
	// Published after the answer, on another node: every subscriber gets
	// it after "created".
	paid := publishVia(t, n2.url, "orders", "paid")
	out := sub.out.waitContains(t, "id: "+paid+"\ndata: paid\n\n")
	if i, j := strings.Index(out, "id: "+r.id+"\ndata: created\n\n"), strings.Index(out, "data: paid\n"); i < 0 || i > j {
		t.Errorf("the subscriber on n3 got paid before created (ack=all):\n%s", out)
	}
}

// TestBinaryClusterStopsTogether: SIGTERM to every node at once, as when a
// whole deployment is deleted, is a clean exit 0 for each. A leave with
// nobody left to hear it is not an error.
func TestBinaryClusterStopsTogether(t *testing.T) {
	t.Parallel()
	for try := range 2 { // one try failed only about half the time before the fix
		nodes := startBinCluster(t, 3)
		began := time.Now()
		for _, n := range nodes {
			n.signal(t, syscall.SIGTERM)
		}
		for _, n := range nodes {
			if code := n.waitExit(t, 10*time.Second); code != 0 {
				t.Errorf("try %d: %s exited %d after SIGTERM to every node, want 0", try, n.name, code)
			}
			for m := range n.lines {
				if m["msg"] == "shutdown" {
					t.Errorf("try %d: %s logged a failed shutdown: %v", try, n.name, m)
				}
			}
		}
		if took := time.Since(began); took > 6*time.Second {
			t.Errorf("try %d: the nodes took %v to stop, over RUMOR_DRAIN_TIMEOUT=5s", try, took)
		}
	}
}
