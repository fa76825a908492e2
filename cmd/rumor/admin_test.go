package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// adminURL is the admin_url of a node's "listening" log line.
func adminURL(tb testing.TB, r *running) string {
	tb.Helper()
	m, _ := logLine(r.out.String(), "listening")
	u, _ := m["admin_url"].(string)
	if !strings.HasPrefix(u, "http://127.0.0.1:") {
		tb.Fatalf("listening log has admin_url %q, want http://127.0.0.1:PORT", u)
	}
	return u
}

// Two `rumor serve` nodes with --admin-addr: the public port serves
// streams, publishing, health and rumor.js, and nothing that lists
// channels, members or metrics; the admin port serves those (and pprof),
// and its cluster view reaches the peer through the peer's admin port.
func TestServeAdminListener(t *testing.T) {
	clusterScenario(t)
	key := "--gossip-key=" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	var nodes []*running
	var urls, admins []string
	seed := ""
	for i := range 2 {
		args := []string{"--node-name", "n" + strconv.Itoa(i+1), "--admin-addr", "127.0.0.1:0", "--pprof",
			"--gossip-addr", "127.0.0.1:0", key, "--cluster-label", "admin"}
		if seed != "" {
			args = append(args, "--join", seed)
		}
		r, url := startServe(t, args...)
		nodes, urls, admins = append(nodes, r), append(urls, url), append(admins, adminURL(t, r))
		if seed == "" {
			m, _ := logLine(r.out.String(), "listening")
			seed, _ = m["gossip"].(string)
		}
	}
	waitForCluster(t, admins)

	for _, path := range []string{"/channels", "/cluster", "/node", "/cluster/channels", "/metrics", "/", "/debug/pprof/"} {
		if code, _ := get(t, urls[0]+path); code != http.StatusNotFound {
			t.Errorf("public GET %s = %d, want 404 (it is on the admin port)", path, code)
		}
		if code, _ := get(t, admins[0]+path); code != http.StatusOK {
			t.Errorf("admin GET %s = %d, want 200", path, code)
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/rumor.js"} {
		if code, _ := get(t, urls[0]+path); code != http.StatusOK {
			t.Errorf("public GET %s = %d, want 200", path, code)
		}
	}

	// Streams and publishing stay on the public port.
	sub := start(t, env(nil), "subscribe", "--server", urls[1], "demo")
	waitForSubscriber(t, admins[1], "demo")
	id := publishVia(t, urls[0], "demo", "public")
	sub.out.waitContains(t, "id: "+id+"\ndata: public\n\n")

	// The first node's cluster view asks the second at its admin address.
	var view struct {
		Nodes []struct {
			Name, HTTP, Admin string
			OK                bool
		}
		Channels []struct {
			Name  string
			Nodes map[string]int
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := get(t, admins[0]+"/cluster/channels")
		view.Nodes, view.Channels = nil, nil
		_ = json.Unmarshal([]byte(body), &view)
		// rumor's own channels (presence's rumor.census and
		// rumor.presence.demo) are not what this test looks at.
		view.Channels = slices.DeleteFunc(view.Channels, func(c struct {
			Name  string
			Nodes map[string]int
		}) bool {
			return broker.Reserved(c.Name)
		})
		// n1 lists "demo" too (it holds the event, with no subscriber):
		// what counts is n2's subscriber, once the view's cache of n2's
		// answer (taken before it subscribed) has expired.
		// rumor's own presence channels are listed too.
		demo := slices.IndexFunc(view.Channels, func(c struct {
			Name  string
			Nodes map[string]int
		}) bool {
			return c.Name == "demo"
		})
		if len(view.Nodes) == 2 && view.Nodes[0].OK && view.Nodes[1].OK && demo >= 0 && view.Channels[demo].Nodes[view.Nodes[1].Name] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster view never showed both nodes answering and the subscriber on n2: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, n := range view.Nodes {
		if want := strings.TrimPrefix(admins[i], "http://"); n.Admin != want {
			t.Errorf("cluster view: %s at admin %q, want %q", n.Name, n.Admin, want)
		}
	}
	sub.stop(t)
	for i := len(nodes) - 1; i >= 0; i-- {
		if err := nodes[i].stop(t); err != nil {
			t.Errorf("node %d returned %v after SIGINT, want nil", i+1, err)
		}
	}
}

// --admin-addr must be a host:port other than --http-addr and --gossip-addr.
func TestServeAdminAddrChecked(t *testing.T) {
	for _, args := range [][]string{
		{"--http-addr", "127.0.0.1:8080", "--admin-addr", "127.0.0.1:8080"},
		{"--http-addr", "127.0.0.1:0", "--admin-addr", "localhost"},
		{"--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:7946", "--gossip-addr", "127.0.0.1:7946"},
	} {
		err := run(t.Context(), append([]string{"serve"}, args...), env(nil), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--admin-addr") {
			t.Errorf("serve %v = %v, want an --admin-addr error", args, err)
		}
	}
}

// --http-addr and --gossip-addr on one port is a clear error, not a bind
// failure half-way through the start.
func TestServeSamePortRefused(t *testing.T) {
	err := run(t.Context(), []string{"serve", "--http-addr", "127.0.0.1:7946", "--gossip-addr", "127.0.0.1:7946"}, env(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `--http-addr and --gossip-addr are both "127.0.0.1:7946"`) {
		t.Errorf("serve with one port for HTTP and gossip = %v, want it named", err)
	}
}
