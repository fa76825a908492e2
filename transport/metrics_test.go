package transport

import (
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// Every metric is registered on the node's own registry and the gauges
// read the live state.
func TestMetricsRegistered(t *testing.T) {
	regA := newRegistry()
	nodes := startClusterWith(t, 2, func(i int) nodeOpts {
		if i == 0 {
			return nodeOpts{reg: regA}
		}
		return nodeOpts{reg: newRegistry()}
	})
	a, b := nodes[0], nodes[1]
	publish(t, a.hub, broker.AckPeer, "x", "one")
	for _, name := range []string{
		"rumor_relay_ack_latency_seconds",
		"rumor_relay_repairs_fetched_total",
		"rumor_relay_reconnects_total",
		"rumor_relay_handshake_failures_total",
		"rumor_relay_records_rejected_total",
		"rumor_relay_queue_depth",
		"rumor_relay_unacked_events",
		"rumor_relay_connected_peers",
	} {
		if _, ok := gather(t, regA, name); !ok {
			t.Errorf("metric %s is not registered", name)
		}
	}
	for state, want := range map[string]float64{"alive": 2, "suspect": 0, "dead": 0, "left": 0} {
		if got, ok := gather(t, regA, "rumor_cluster_members", "state", state); !ok || got != want {
			t.Errorf("rumor_cluster_members{state=%q} = %v (registered %v), want %v", state, got, ok, want)
		}
	}
	if got, _ := gather(t, regA, "rumor_relay_connected_peers"); got != 1 {
		t.Errorf("rumor_relay_connected_peers = %v, want 1", got)
	}
	if got, _ := gather(t, regA, "rumor_relay_ack_latency_seconds"); got < 1 {
		t.Errorf("rumor_relay_ack_latency_seconds has %v observations after an acknowledged publish, want at least 1", got)
	}
	if got, _ := gather(t, regA, "rumor_relay_unacked_events"); got != 0 {
		t.Errorf("rumor_relay_unacked_events = %v after the ack, want 0", got)
	}

	b.crash()
	waitFor(t, "rumor_relay_connected_peers to drop to 0", 5*time.Second, func() bool {
		got, _ := gather(t, regA, "rumor_relay_connected_peers")
		return got == 0
	})
	waitFor(t, "rumor_relay_reconnects_total to count the redials", 5*time.Second, func() bool {
		got, _ := gather(t, regA, "rumor_relay_reconnects_total")
		return got >= 1
	})
}
