package main

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// `rumor dev` is a real cluster: an event published on node 1 reaches a
// subscriber on node 3, and every node lists the others with their HTTP
// addresses.
func TestDevCluster(t *testing.T) {
	clusterScenario(t)
	dev := start(t, env(nil), "dev", "--nodes", "3", "--http-port", "0", "--log-level", "warn")
	banner := dev.out.waitContains(t, "Ctrl-C stops the cluster")
	var urls []string
	for _, m := range regexp.MustCompile(`(?m)^\s+n(\d)\s+(http://\S+)`).FindAllStringSubmatch(banner, -1) {
		urls = append(urls, m[2])
	}
	if len(urls) != 3 {
		t.Fatalf("rumor dev printed %d node URLs, want 3:\n%s", len(urls), banner)
	}
	for _, want := range []string{"curl -N " + urls[2] + "/channels/demo", "curl -d 'hello' " + urls[0] + "/channels/demo", urls[0] + "/"} {
		if !strings.Contains(banner, want) {
			t.Errorf("rumor dev does not print %q:\n%s", want, banner)
		}
	}
	waitForCluster(t, urls)
	if strings.Contains(dev.out.String(), "NOT ENCRYPTED") {
		t.Errorf("rumor dev runs without a gossip key:\n%s", dev.out)
	}

	sub := start(t, env(nil), "subscribe", "--server", urls[2], "--retry", "10ms", "demo")
	waitForSubscriber(t, urls[2], "demo")
	id := publishVia(t, urls[0], "demo", "hello from n1")
	sub.out.waitContains(t, "id: "+id+"\ndata: hello from n1\n\n")

	began := time.Now()
	if err := dev.stop(t); err != nil {
		t.Errorf("rumor dev returned %v after SIGINT, want nil", err)
	}
	// Three nodes, each within its 5s drain timeout.
	if took := time.Since(began); took > 15*time.Second {
		t.Errorf("rumor dev took %v to stop", took)
	}
	if err := sub.stop(t); err != nil {
		t.Errorf("subscribe returned %v, want nil", err)
	}
}

// waitForCluster waits until every node is ready and lists every node
// alive with its HTTP address, or its admin address if it has one: urls
// are where the nodes serve /cluster.
func waitForCluster(tb testing.TB, urls []string) {
	tb.Helper()
	var want []string
	for _, u := range urls {
		want = append(want, strings.TrimPrefix(u, "http://"))
	}
	slices.Sort(want)
	var last string
	for range 300 {
		ok := true
		for _, u := range urls {
			code, _ := get(tb, u+"/readyz")
			_, body := get(tb, u+"/cluster")
			var c struct {
				Members []struct{ HTTP, Admin, State string }
			}
			_ = json.Unmarshal([]byte(body), &c)
			var got []string
			for _, m := range c.Members {
				if m.State == "alive" {
					got = append(got, cmp.Or(m.Admin, m.HTTP))
				}
			}
			slices.Sort(got)
			if code != http.StatusOK || !slices.Equal(got, want) {
				ok, last = false, u+"/cluster: "+body
			}
		}
		if ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("the cluster did not form within 15s; last answer %s, want every member alive at %v", last, want)
}

// waitForSubscriber waits until channel has a subscriber on the node.
func waitForSubscriber(tb testing.TB, url, channel string) {
	tb.Helper()
	waitFor(tb, "a subscriber on "+channel+" at "+url, func() bool {
		_, body := get(tb, url+"/channels")
		var c struct {
			Channels []struct {
				Name        string
				Subscribers int
			}
		}
		_ = json.Unmarshal([]byte(body), &c)
		for _, ch := range c.Channels {
			if ch.Name == channel && ch.Subscribers > 0 {
				return true
			}
		}
		return false
	})
}

// Node i of `rumor dev --http-port P` serves HTTP on P+i-1.
func TestDevPorts(t *testing.T) {
	clusterScenario(t)
	for attempt := 0; ; attempt++ {
		base := freePorts(t, 2)
		dev := start(t, env(nil), "dev", "--nodes", "2", "--http-port", strconv.Itoa(base), "--log-level", "error")
		var banner string
		for range 600 {
			if banner = dev.out.String(); strings.Contains(banner, "Ctrl-C stops the cluster") {
				break
			}
			select {
			case <-dev.done:
			case <-time.After(50 * time.Millisecond):
				continue
			}
			// Someone took one of the ports since we checked: pick again.
			if attempt < 3 && strings.Contains(dev.err.Error(), "address already in use") {
				break
			}
			t.Fatalf("rumor dev --http-port %d: %v", base, dev.err)
		}
		if !strings.Contains(banner, "Ctrl-C stops the cluster") {
			if attempt < 3 {
				continue
			}
			t.Fatalf("rumor dev --http-port %d printed no banner:\n%s", base, banner)
		}
		for i := range 2 {
			want := "http://127.0.0.1:" + strconv.Itoa(base+i)
			if !strings.Contains(banner, "n"+strconv.Itoa(i+1)+"   "+want) {
				t.Errorf("rumor dev --http-port %d does not list n%d at %s:\n%s", base, i+1, want, banner)
			}
			if code, _ := get(t, want+"/healthz"); code != http.StatusOK {
				t.Errorf("GET %s/healthz = %d, want 200", want, code)
			}
		}
		return
	}
}

// freePorts finds n consecutive free ports on 127.0.0.1 and returns the
// first. They are free when checked; the caller must cope with losing one.
func freePorts(tb testing.TB, n int) int {
	tb.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		base := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ok := base+n-1 <= 65535
		for i := 1; i < n && ok; i++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	tb.Fatalf("found no %d consecutive free ports", n)
	return 0
}

// TestDevStreamsPerClient: --max-streams-per-client reaches every node
// of rumor dev (a load test from one address lifts it with 0).
func TestDevStreamsPerClient(t *testing.T) {
	if err := run(context.Background(), []string{"dev", "--max-streams-per-client", "-1"}, env(nil), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "--max-streams-per-client -1") {
		t.Errorf("rumor dev --max-streams-per-client -1: %v, want an error naming the flag", err)
	}
	dev := start(t, env(nil), "dev", "--nodes", "1", "--http-port", "0", "--log-level", "warn", "--max-streams-per-client", "1")
	banner := dev.out.waitContains(t, "Ctrl-C stops the cluster")
	m := regexp.MustCompile(`(?m)^\s+n1\s+(http://\S+)`).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("no node URL in:\n%s", banner)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m[1]+"/channels/a", nil)
	first, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Body.Close()
	code, body := get(t, m[1]+"/channels/b")
	if code != http.StatusOK || !strings.Contains(body, "too many streams from your address") {
		t.Errorf("second stream from one address: %d %q, want 200 with the per-client refusal", code, body)
	}
	cancel()
	if err := dev.stop(t); err != nil {
		t.Errorf("rumor dev: %v", err)
	}
}

// `rumor dev` takes the serve settings that make sense for a local
// cluster, as flags or RUMOR_* variables, refuses with a reason those it
// sets itself, and its log lines name each key once.
func TestDevServeSettings(t *testing.T) {
	err := run(context.Background(), []string{"dev", "--http-addr", ":9000", "--gossip-key=x", "--history-size", "-1"}, env(nil), io.Discard, io.Discard)
	for _, want := range []string{"--http-addr is not a rumor dev setting: use --host and --http-port", "--gossip-key is not a rumor dev setting"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("rumor dev with serve-only flags: %v, want %q", err, want)
		}
	}
	var help strings.Builder
	if err := run(context.Background(), []string{"dev", "-h"}, env(nil), &help, io.Discard); err != nil || !strings.Contains(help.String(), "--cors-origins list (env RUMOR_CORS_ORIGINS") || strings.Contains(help.String(), "--http-addr") {
		t.Errorf("rumor dev -h = %v, want the serve settings it takes, without --http-addr:\n%s", err, help.String())
	}

	dev := start(t, env(map[string]string{"RUMOR_MAX_STREAMS_PER_CLIENT": "1", "RUMOR_LOG_FORMAT": "json"}),
		"dev", "--nodes", "1", "--http-port", "0", "--cors-origins", "https://app.example")
	banner := dev.out.waitContains(t, "Ctrl-C stops the cluster")
	m := regexp.MustCompile(`(?m)^\s+n1\s+(http://\S+)`).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("no URL of n1 in:\n%s", banner)
	}
	req, _ := http.NewRequest(http.MethodGet, m[1]+"/channels", nil)
	req.Header.Set("Origin", "https://app.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Errorf("--cors-origins on rumor dev: n1 answers Access-Control-Allow-Origin %q, want https://app.example", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sreq, _ := http.NewRequestWithContext(ctx, http.MethodGet, m[1]+"/channels/a", nil)
	first, err := http.DefaultClient.Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Body.Close()
	if code, body := get(t, m[1]+"/channels/b"); code != http.StatusOK || !strings.Contains(body, "too many streams from your address") {
		t.Errorf("RUMOR_MAX_STREAMS_PER_CLIENT=1 on rumor dev: second stream = %d %q, want the per-client refusal", code, body)
	}
	cancel()
	if err := dev.stop(t); err != nil {
		t.Errorf("rumor dev: %v", err)
	}
	lines := 0
	for line := range strings.Lines(dev.out.String()) {
		if !strings.HasPrefix(line, "{") {
			continue // the banner
		}
		lines++
		if dup := duplicateKey(line); dup != "" {
			t.Errorf("log line repeats the key %q: %s", dup, line)
		}
	}
	if lines == 0 {
		t.Errorf("RUMOR_LOG_FORMAT=json on rumor dev: no JSON log line in:\n%s", dev.out)
	}
}

// duplicateKey returns a top-level key that a JSON object names twice.
func duplicateKey(line string) string {
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil {
		return ""
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		key, _ := tok.(string)
		if seen[key] {
			return key
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}

// TestCheck: `rumor check` against a 2-node `rumor dev` finds both members
// ready and an event crossing from one to the other; against a node that
// is not there it fails naming what it asked.
func TestCheck(t *testing.T) {
	clusterScenario(t)
	clusterScenario(t)
	dev := start(t, env(nil), "dev", "--nodes", "2", "--http-port", "0", "--log-level", "warn")
	banner := dev.out.waitContains(t, "Ctrl-C stops the cluster")
	m := regexp.MustCompile(`(?m)^\s+n1\s+(http://\S+)`).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("no URL of n1 in:\n%s", banner)
	}
	var out strings.Builder
	if err := run(t.Context(), []string{"check", "--server", m[1], "--min-members", "2"}, env(nil), &out, io.Discard); err != nil {
		t.Fatalf("rumor check: %v\n%s", err, out.String())
	}
	for _, want := range []string{"2 of 2 members alive", "every live member is ready", "received on"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("rumor check printed %q, want %q", out.String(), want)
		}
	}
	if err := run(t.Context(), []string{"check", "--server", m[1], "--min-members", "3"}, env(nil), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "2 members alive, want at least 3") {
		t.Errorf("rumor check --min-members 3 on 2 nodes: %v", err)
	}
	dev.stop(t)
	if err := run(t.Context(), []string{"check", "--server", m[1], "--timeout", "2s"}, env(nil), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "check: members:") {
		t.Errorf("rumor check on a stopped cluster: %v, want a failure to get the members", err)
	}
}

// TestCheckAuth: against a node that requires tokens, rumor check signs
// its own from the node's HMAC secret file (or takes one from a file), and
// without one it fails saying why.
func TestCheckAuth(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "hmac")
	if err := os.WriteFile(secret, []byte(strings.Repeat("k", 40)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, url := startServe(t, "--auth-hmac-secret-file", secret)
	var out strings.Builder
	if err := run(t.Context(), []string{"check", "--server", url, "--hmac-secret-file", secret}, env(nil), &out, io.Discard); err != nil || !strings.Contains(out.String(), "received on") {
		t.Errorf("rumor check --hmac-secret-file: %v\n%s", err, out.String())
	}
	err := run(t.Context(), []string{"check", "--server", url}, env(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("rumor check without a token against auth: %v, want the 401 named", err)
	}
}
