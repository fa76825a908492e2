package main

import (
	"strings"
	"testing"
	"time"
)

// TestBenchMercure: with --mercure the workload goes through the Mercure
// face (form publishes on one node, topic streams on the others), and
// every update reaches every subscriber of its topic, once, in order.
func TestBenchMercure(t *testing.T) {
	res, err := runBenchJSON(t, "--cluster", "1", "--mercure", "--subscribers", "12", "--channels", "3", "--publishers", "2", "--count", "300")
	if err != nil {
		t.Fatal(err)
	}
	wantClean(t, res, 300, 12*100)
	if testing.Short() {
		return
	}
	t.Cleanup(func() { waitGoroutines(t, "hashicorp/memberlist.", 5*time.Second) })
	res, err = runBenchJSON(t, "--cluster", "3", "--cross-node", "--mercure", "--subscribers", "10", "--channels", "2", "--publishers", "2", "--count", "200", "--rate", "2000")
	if err != nil {
		t.Fatal(err)
	}
	wantClean(t, res, 200, 10*100)
}

// TestBenchMercureRefusals: the flags that do not go together.
func TestBenchMercureRefusals(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--bare", "--mercure"}, "the bare loop has no Mercure face"},
		{[]string{"--cluster", "1", "--mercure", "--envelope"}, "the Mercure face has no envelope"},
		{[]string{"--cluster", "1", "--mercure", "--ack", "local"}, "the Mercure face has no ack"},
		{[]string{"--server", "http://127.0.0.1:1", "--mercure-token", "x"}, "a Mercure token without the Mercure face"},
	} {
		_, err := runBenchJSON(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("rumor bench %s: %v, want %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}
