package web

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rumorhq/rumor/broker"
)

// metrics are web's own metrics; the hub's counters are read from
// Hub.Stats at scrape time, because the broker knows no Prometheus.
type metrics struct {
	handler         http.Handler // GET /metrics
	streamsRejected *prometheus.CounterVec
	streamsEnded    *prometheus.CounterVec
	publishErrors   *prometheus.CounterVec
	publishDuration prometheus.Histogram
	deliveryLatency prometheus.Histogram
}

// newMetrics registers web's metrics with reg. It fails if they are
// already registered there (two Handlers sharing one registry); the go and
// process collectors may have been registered by someone else and are
// skipped then.
func newMetrics(reg *prometheus.Registry, h *Handler) (*metrics, error) {
	m := &metrics{
		streamsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rumor_streams_rejected_total",
			Help: "Streams answered with a retry: and ended at once: over the stream limit, draining, or the hub closed.",
		}, []string{"reason"}),
		streamsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rumor_streams_ended_total",
			Help: "Streams that ended, by reason: client, write (failed or timed out), slow (cut off for falling behind), shutdown, closed.",
		}, []string{"reason"}),
		publishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rumor_publish_errors_total",
			Help: "Publish requests that failed, by reason: bad_request, too_large, overload, draining, peer_ack, unavailable, internal.",
		}, []string{"reason"}),
		publishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rumor_publish_duration_seconds",
			Help:    "Time to handle a publish request, from routing to the answer.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		deliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rumor_delivery_latency_seconds",
			Help:    "Time from an event's publish (its origin's clock) to its write on a local stream, per delivered event.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	for _, r := range []string{rejectLimit, rejectDraining, endClosed} {
		m.streamsRejected.WithLabelValues(r)
	}
	for _, r := range []string{endClient, endWrite, endSlow, endShutdown, endClosed} {
		m.streamsEnded.WithLabelValues(r)
	}
	for _, r := range []string{publishBadRequest, publishTooLarge, publishOverload, publishDraining, publishPeerAck, publishUnavailable, publishInternal} {
		m.publishErrors.WithLabelValues(r)
	}

	hub := h.hub
	counter := func(name, help string, f func(broker.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rumor_" + name, Help: help},
			func() float64 { return float64(f(hub.Stats())) })
	}
	gauge := func(name, help string, f func(broker.Stats) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rumor_" + name, Help: help},
			func() float64 { return float64(f(hub.Stats())) })
	}
	if err := register(reg,
		m.streamsRejected, m.streamsEnded, m.publishErrors, m.publishDuration, m.deliveryLatency,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rumor_streams_open", Help: "Open SSE streams on this node."},
			func() float64 { return float64(h.openStreams()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rumor_publishes_in_flight", Help: "Publish requests being handled (reading their bodies or waiting for a peer's ack); at most --max-publishes."},
			func() float64 { return float64(h.inflight.Load()) }),
		gauge("subscribers", "Hub subscriptions on this node.",
			func(s broker.Stats) int64 { return int64(s.Subscribers) }),
		counter("events_published_total", "Events published on this node.",
			func(s broker.Stats) uint64 { return s.Published }),
		counter("events_received_total", "Events received from peers and stored here.",
			func(s broker.Stats) uint64 { return s.Received }),
		counter("events_delivered_total", "Events queued to local subscribers.",
			func(s broker.Stats) uint64 { return s.Delivered }),
		counter("events_dropped_total", "Events not queued because a subscriber's queue was full.",
			func(s broker.Stats) uint64 { return s.Dropped }),
		counter("slow_disconnects_total", "Subscribers cut off for falling a whole queue behind.",
			func(s broker.Stats) uint64 { return s.SlowDisconnects }),
		counter("duplicates_dropped_total", "Events from peers that were already here.",
			func(s broker.Stats) uint64 { return s.Duplicates }),
		counter("late_events_total", "Events that arrived after an id written here had claimed them (see docs/API.md, Resume); 0 in normal operation.",
			func(s broker.Stats) uint64 { return s.Late }),
		counter("gaps_abandoned_total", "Missing sequence numbers given up on.",
			func(s broker.Stats) uint64 { return s.GapsAbandoned }),
		gauge("pending_events", "Events held behind a gap in their origin's sequence, waiting for resend or repair.",
			func(s broker.Stats) int64 { return int64(s.Pending) }),
		gauge("history_events", "Events retained in history.",
			func(s broker.Stats) int64 { return int64(s.HistoryEvents) }),
		gauge("history_bytes", "Bytes retained in history.",
			func(s broker.Stats) int64 { return s.HistoryBytes }),
		gauge("subscriber_bytes", "Bytes of events streams hold, queued or being written; each stream at most --queue-bytes, over it cut off as slow.",
			func(s broker.Stats) int64 { return s.SubscriberBytes }),
		gauge("channels", "Active channels: with retained events or subscribers.",
			func(s broker.Stats) int64 { return int64(s.Channels) }),
		gauge("peers", "Peers whose relay link is up (their watermarks bound the ids written here); delivery waits for none.",
			func(s broker.Stats) int64 { return int64(s.Peers) }),
	); err != nil {
		return nil, err
	}
	if a := h.opts.Auth; a != nil {
		// rumor_auth_key_reloads_total, for keys that rotate.
		if err := register(reg, a.Collectors()...); err != nil {
			return nil, err
		}
	}
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		var dup prometheus.AlreadyRegisteredError
		if err := reg.Register(c); err != nil && !errors.As(err, &dup) {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m, nil
}

// register registers cs with reg and says which could not be.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	var errs []error
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	return nil
}

// observePublish records a publish request that started at start.
func (m *metrics) observePublish(start time.Time) {
	m.publishDuration.Observe(time.Since(start).Seconds())
}

// observeDelivery records the latency of events written at now. A peer's
// clock may run ahead of ours; such events count as instant.
func (m *metrics) observeDelivery(evs []*broker.Event, now time.Time) {
	for _, e := range evs {
		m.deliveryLatency.Observe(max(now.Sub(e.Born), 0).Seconds())
	}
}
