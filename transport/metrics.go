package transport

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	ackLatency   prometheus.Histogram
	repaired     prometheus.Counter
	reconnects   prometheus.Counter
	authFailures prometheus.Counter
	rejected     prometheus.Counter
	forged       prometheus.Counter
	joinFailures prometheus.Counter
}

func newMetrics(c *Cluster, reg prometheus.Registerer) *metrics {
	m := &metrics{
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rumor_relay_ack_latency_seconds",
			Help:    "Time from publish to a peer's acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		repaired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rumor_relay_repairs_fetched_total",
			Help: "Events fetched from peers by digest repair or catch-up that were missing here.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rumor_relay_reconnects_total",
			Help: "Relay links that went down and were redialled.",
		}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rumor_relay_handshake_failures_total",
			Help: "Relay connections refused for a wrong key, label or protocol.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rumor_relay_records_rejected_total",
			Help: "Relay connections closed because a sealed record did not authenticate: altered, cut, replayed or reflected on the way.",
		}),
		forged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rumor_relay_forged_origins_total",
			Help: "Relay connections closed because a peer that passed the handshake sent an event of another origin.",
		}),
		joinFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rumor_cluster_join_failures_total",
			Help: "Join attempts, at start and on every rejoin, whose seeds named peers of which none could be joined while this node had no peer.",
		}),
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.ackLatency, m.repaired, m.reconnects, m.authFailures, m.rejected, m.forged, m.joinFailures)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rumor_cluster_isolated",
		Help: "1 while this node's seeds name peers of which none can be joined (past the join timeout): an island serving only its own events.",
	}, func() float64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.isolated != "" {
			return 1
		}
		return 0
	}))
	for _, state := range []string{"alive", "suspect", "dead", "left"} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "rumor_cluster_members",
			Help:        "Cluster members by state, as this node sees them.",
			ConstLabels: prometheus.Labels{"state": state},
		}, func() float64 {
			if c.ml == nil {
				return 0
			}
			n := 0
			for _, m := range c.Members() {
				if m.State == state {
					n++
				}
			}
			return float64(n)
		}))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rumor_relay_queue_depth",
		Help: "Frames queued to peers and not yet written.",
	}, func() float64 { q, _ := c.pending(); return float64(q) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rumor_relay_unacked_events",
		Help: "Events sent to peers and not yet acknowledged, summed over peers.",
	}, func() float64 { _, u := c.pending(); return float64(u) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rumor_relay_connected_peers",
		Help: "Peers with a live relay link.",
	}, func() float64 { return float64(c.connectedPeers()) }))
	return m
}

// connectedPeers counts the peers with a live relay link.
func (c *Cluster) connectedPeers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.links {
		if l.up.Load() {
			n++
		}
	}
	return n
}

func (c *Cluster) pending() (queued, unacked int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.links {
		q, u := l.pending()
		queued += q
		unacked += u
	}
	return queued, unacked
}

// sealFailed counts and reports a relay connection closed for a record that
// did not open: someone on the path altered, cut, replayed or reflected
// traffic, or the network corrupted it past TCP's checksum. The link
// redials and resends as after any other failure.
func (c *Cluster) sealFailed(err error, peer string) {
	if !errors.Is(err, errSeal) {
		return
	}
	c.metrics.rejected.Inc()
	c.log.Warn("relay record rejected: connection closed", "peer", peer, "err", err)
}
