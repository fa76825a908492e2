package web

import (
	"math"

	dto "github.com/prometheus/client_model/go"
)

// nodeStats is what the UI charts of one node: cumulative counters and
// gauges read from the node's own metrics registry, so the relay's series,
// which transport registers there, are included without web knowing
// transport. The browser turns successive readings into rates and windowed
// percentiles; nothing here keeps history.
type nodeStats struct {
	Published uint64            `json:"published"` // rumor_events_published_total
	Delivered uint64            `json:"delivered"` // rumor_events_delivered_total
	Refused   map[string]uint64 `json:"refused"`   // rumor_streams_rejected_total by reason
	Latency   *buckets          `json:"latency,omitempty"`
	Relay     *relayStats       `json:"relay,omitempty"` // nil for a single node
}

// buckets is a cumulative histogram: Counts[i] observations at or under
// Bounds[i] seconds, Count in all (the +Inf bucket).
type buckets struct {
	Bounds []float64 `json:"bounds"`
	Counts []uint64  `json:"counts"`
	Count  uint64    `json:"count"`
}

// relayStats are this node's links to its peers, summed over them.
type relayStats struct {
	Peers      int      `json:"peers"`                // rumor_peers: peers the delivery order waits for
	Connected  int      `json:"connected"`            // rumor_relay_connected_peers
	Queued     int      `json:"queued"`               // rumor_relay_queue_depth
	Unacked    int      `json:"unacked"`              // rumor_relay_unacked_events
	AckLatency *buckets `json:"ackLatency,omitempty"` // rumor_relay_ack_latency_seconds
	Links      []Link   `json:"links,omitempty"`      // per peer, when the Cluster is a LinkReporter
}

// Link is this node's relay link to one peer, for the UI's link matrix.
type Link struct {
	Peer    string  `json:"peer"`    // the peer's member name
	Up      bool    `json:"up"`      // the relay connection is open
	Queued  int     `json:"queued"`  // frames waiting to be written to the peer
	Unacked int     `json:"unacked"` // events sent and not yet acknowledged
	Oldest  float64 `json:"oldest"`  // seconds since the oldest unacknowledged event was published; 0 when none
	LastAck float64 `json:"lastAck"` // seconds since the peer last acknowledged; 0 before it first did
}

// LinkReporter is a Cluster that can also say how its relay link to each
// peer is. The UI shows them as a matrix; without it, only the sums.
type LinkReporter interface {
	Links() []Link
}

// stats reads this node's nodeStats from its registry.
func (h *Handler) stats() *nodeStats {
	fams, err := h.opts.Registry.Gather()
	if err != nil && len(fams) == 0 {
		return nil
	}
	st := &nodeStats{Refused: map[string]uint64{}}
	var relay relayStats
	hasRelay := false
	for _, f := range fams {
		ms := f.GetMetric()
		switch f.GetName() {
		case "rumor_events_published_total":
			st.Published = sumCounter(ms)
		case "rumor_events_delivered_total":
			st.Delivered = sumCounter(ms)
		case "rumor_streams_rejected_total":
			for _, m := range ms {
				st.Refused[label(m, "reason")] += uint64(m.GetCounter().GetValue())
			}
		case "rumor_delivery_latency_seconds":
			st.Latency = histogram(ms)
		case "rumor_peers":
			relay.Peers, hasRelay = int(sumGauge(ms)), true
		case "rumor_relay_connected_peers":
			relay.Connected, hasRelay = int(sumGauge(ms)), true
		case "rumor_relay_queue_depth":
			relay.Queued, hasRelay = int(sumGauge(ms)), true
		case "rumor_relay_unacked_events":
			relay.Unacked, hasRelay = int(sumGauge(ms)), true
		case "rumor_relay_ack_latency_seconds":
			relay.AckLatency, hasRelay = histogram(ms), true
		}
	}
	if hasRelay && h.opts.Cluster != nil {
		if lr, ok := h.opts.Cluster.(LinkReporter); ok {
			relay.Links = lr.Links()
		}
		st.Relay = &relay
	}
	return st
}

func sumCounter(ms []*dto.Metric) uint64 {
	var n float64
	for _, m := range ms {
		n += m.GetCounter().GetValue()
	}
	return uint64(n)
}

func sumGauge(ms []*dto.Metric) float64 {
	var n float64
	for _, m := range ms {
		n += m.GetGauge().GetValue()
	}
	return n
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// histogram sums the series of a histogram family into one.
func histogram(ms []*dto.Metric) *buckets {
	var b *buckets
	for _, m := range ms {
		hg := m.GetHistogram()
		if hg == nil {
			continue
		}
		if b == nil {
			b = &buckets{}
			for _, bk := range hg.GetBucket() {
				if !math.IsInf(bk.GetUpperBound(), 1) {
					b.Bounds = append(b.Bounds, bk.GetUpperBound())
					b.Counts = append(b.Counts, 0)
				}
			}
		}
		for i, bk := range hg.GetBucket() {
			if i < len(b.Counts) {
				b.Counts[i] += bk.GetCumulativeCount()
			}
		}
		b.Count += hg.GetSampleCount()
	}
	return b
}
