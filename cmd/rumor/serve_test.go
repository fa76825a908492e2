package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// publishVia publishes with `rumor publish` and returns the event's id.
func publishVia(tb testing.TB, server, channel, data string) string {
	tb.Helper()
	var out bytes.Buffer
	if err := run(tb.Context(), []string{"publish", "--server", server, channel, data}, env(nil), &out, io.Discard); err != nil {
		tb.Fatalf("rumor publish %s %q: %v", channel, data, err)
	}
	var ans struct{ ID, Channel string }
	if err := json.Unmarshal(out.Bytes(), &ans); err != nil || ans.ID == "" || ans.Channel != channel {
		tb.Fatalf("rumor publish printed %q, want {\"id\":..., \"channel\":%q}", out.String(), channel)
	}
	return ans.ID
}

// rawStream opens GET path as a plain HTTP client, waits for the preamble
// (retry: and a comment, then a blank line) and returns what arrives after
// it, once the server ends the stream.
func rawStream(tb testing.TB, url string) <-chan string {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s: %s", url, resp.Status)
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			tb.Fatalf("reading the preamble of %s: %v", url, err)
		}
		if line == "\n" {
			break
		}
	}
	rest := make(chan string, 1)
	go func() {
		defer resp.Body.Close()
		b, _ := io.ReadAll(br)
		rest <- string(b)
	}()
	return rest
}

// The real `rumor serve`, publish and subscribe, as a user runs them: the
// subscriber resumes after an id, gets the rest live, and a shutdown ends
// the streams with a retry: and returns nil within the drain timeout.
func TestServeEndToEnd(t *testing.T) {
	srv, url := startServe(t)
	if code, body := get(t, url+"/readyz"); code != http.StatusOK {
		t.Fatalf("GET /readyz = %d %s, want 200", code, body)
	}
	idA := publishVia(t, url, "demo", "first")
	idB := publishVia(t, url, "demo", "second\nline")

	sub := start(t, env(map[string]string{"RUMOR_SERVER": url}), "subscribe", "--last-event-id", idA, "--retry", "10ms", "demo")
	sub.out.waitContains(t, "data: line\n\n")
	idC := publishVia(t, url, "demo", "third")
	sub.out.waitContains(t, "data: third\n\n")
	if got, want := sub.out.String(), "id: "+idB+"\ndata: second\ndata: line\n\nid: "+idC+"\ndata: third\n\n"; got != want {
		t.Errorf("subscribe --last-event-id %s printed %q, want %q", idA, got, want)
	}

	tail := rawStream(t, url+"/channels/demo")
	began := time.Now()
	if err := srv.stop(t); err != nil {
		t.Errorf("serve returned %v after SIGINT, want nil", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("shutdown took %v, over the 5s drain timeout", took)
	}
	select {
	case rest := <-tail:
		if !strings.HasPrefix(rest, "retry: ") {
			t.Errorf("the open stream ended with %q, want a retry: line", rest)
		}
	case <-time.After(10 * time.Second):
		t.Error("the open stream did not end after shutdown")
	}
	sub.errOut.waitContains(t, "stream ended; resuming after "+idC)
	if err := sub.stop(t); err != nil {
		t.Errorf("subscribe returned %v after its context ended, want nil", err)
	}
	logs := srv.out.String()
	for _, msg := range []string{"starting", "listening", "shutting down", "draining", "stopped"} {
		if _, ok := logLine(logs, msg); !ok {
			t.Errorf("no %q log line in:\n%s", msg, logs)
		}
	}
}

func TestServePprof(t *testing.T) {
	_, url := startServe(t, "--pprof")
	if code, body := get(t, url+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("with --pprof, GET /debug/pprof/ = %d, want 200 and the profile index", code)
	}
	if code, _ := get(t, url+"/healthz"); code != http.StatusOK {
		t.Errorf("with --pprof, GET /healthz = %d, want 200 (the API behind it)", code)
	}
	_, plain := startServe(t)
	if _, body := get(t, plain+"/debug/pprof/"); strings.Contains(body, "goroutine") {
		t.Error("without --pprof, /debug/pprof/ serves the profiles")
	}
}

// A bad configuration stops serve before it listens, with every problem.
func TestServeRejectsBadConfig(t *testing.T) {
	var out bytes.Buffer
	err := run(t.Context(), []string{"serve", "--http-addr", "127.0.0.1:0", "--heartbeat", "soon"}, env(map[string]string{"RUMOR_ACK": "every"}), &out, &out)
	if err == nil || !strings.Contains(err.Error(), `--heartbeat="soon"`) || !strings.Contains(err.Error(), `--ack "every"`) {
		t.Errorf("serve with a bad --heartbeat and RUMOR_ACK = %v, want both named", err)
	}
	if err != nil && strings.Contains(err.Error(), "--heartbeat must be positive") {
		t.Errorf("serve reports the bad --heartbeat twice: %v", err)
	}
	if strings.Contains(out.String(), "listening") {
		t.Errorf("serve listened despite a bad configuration:\n%s", out.String())
	}
}

// A port that is taken is an error, not a hang.
func TestServeListenError(t *testing.T) {
	_, url := startServe(t)
	addr := strings.TrimPrefix(url, "http://")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := run(ctx, []string{"serve", "--http-addr", addr}, env(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "listen on "+addr) {
		t.Errorf("serve on a taken port = %v, want a listen error", err)
	}
}

// Three `rumor serve` nodes joined with --gossip-addr and --join, as the
// README's local cluster runs them (on ports the system picks): an event
// published on the first reaches a subscriber on the third.
func TestServeCluster(t *testing.T) {
	clusterScenario(t)
	key := "--gossip-key=" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	var nodes []*running
	var urls []string
	seed := ""
	for i := range 3 {
		args := []string{"--node-name", "n" + strconv.Itoa(i+1), "--gossip-addr", "127.0.0.1:0", key, "--cluster-label", "readme"}
		if seed != "" {
			args = append(args, "--join", seed)
		}
		r, url := startServe(t, args...)
		nodes, urls = append(nodes, r), append(urls, url)
		if seed == "" {
			m, _ := logLine(r.out.String(), "listening")
			seed, _ = m["gossip"].(string)
			if !strings.HasPrefix(seed, "127.0.0.1:") {
				t.Fatalf("the listening log of a clustered node has gossip %q, want 127.0.0.1:PORT", seed)
			}
		}
	}
	waitForCluster(t, urls)
	sub := start(t, env(nil), "subscribe", "--server", urls[2], "demo")
	waitForSubscriber(t, urls[2], "demo")
	id := publishVia(t, urls[0], "demo", "across")
	sub.out.waitContains(t, "id: "+id+"\ndata: across\n\n")
	sub.stop(t)
	for i := len(nodes) - 1; i >= 0; i-- {
		if err := nodes[i].stop(t); err != nil {
			t.Errorf("node %d returned %v after SIGINT, want nil", i+1, err)
		}
	}
	if strings.Contains(nodes[0].out.String(), "NOT ENCRYPTED") {
		t.Error("a node with --gossip-key warns that gossip is not encrypted")
	}
}

// Without a key, a clustered node warns loudly.
func TestServeWarnsWithoutGossipKey(t *testing.T) {
	r, _ := startServe(t, "--gossip-addr", "127.0.0.1:0")
	m, ok := logLine(r.out.String(), "GOSSIP IS NOT ENCRYPTED: anyone who can reach the gossip port can join this cluster and read or inject events; set --gossip-key or --gossip-key-file")
	if !ok || m["level"] != "WARN" {
		t.Errorf("no warning about unencrypted gossip in:\n%s", r.out)
	}
}

// A node whose --join names a peer it cannot join (here: another gossip
// key) is loud about it: an ERROR naming the likely cause, /readyz 503
// saying it is isolated, and rumor_cluster_isolated 1 on /metrics. The
// seed, alone, is ready.
func TestServeIsolatedNodeIsLoud(t *testing.T) {
	clusterScenario(t)
	keyOf := func(b byte) string {
		return "--gossip-key=" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32))
	}
	seedNode, seedURL := startServe(t, "--node-name", "seed", "--gossip-addr", "127.0.0.1:0", keyOf(1))
	m, _ := logLine(seedNode.out.String(), "listening")
	seed, _ := m["gossip"].(string)
	island, url := startServe(t, "--node-name", "island", "--gossip-addr", "127.0.0.1:0", keyOf(2), "--join", seed, "--join-timeout", "300ms")

	out := island.out.waitContains(t, `"isolated: no peer could be joined`)
	line, _ := logLine(out, "isolated: no peer could be joined; this node serves only its own events")
	if line["level"] != "ERROR" || !strings.Contains(fmt.Sprint(line["likely_cause"]), "--gossip-key") {
		t.Errorf("isolation log = %v, want an ERROR whose likely_cause names --gossip-key", line)
	}
	if code, body := get(t, url+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "isolated") {
		t.Errorf("GET /readyz on the island = %d %s, want 503 saying isolated", code, body)
	}
	if _, body := get(t, url+"/metrics"); !strings.Contains(body, "\nrumor_cluster_isolated 1\n") {
		t.Errorf("/metrics of the island lacks rumor_cluster_isolated 1")
	}
	if code, body := get(t, seedURL+"/readyz"); code != http.StatusOK {
		t.Errorf("GET /readyz on the seed, alone = %d %s, want 200", code, body)
	}
	if _, body := get(t, seedURL+"/metrics"); !strings.Contains(body, "\nrumor_cluster_isolated 0\n") {
		t.Errorf("/metrics of the seed lacks rumor_cluster_isolated 0")
	}
}
