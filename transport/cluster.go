// Package transport joins rumor nodes into a cluster with
// hashicorp/memberlist and carries events between them: membership and
// failure detection over memberlist's gossip, and a one-hop data plane (a
// persistent, framed TCP stream from every node to every other on the
// gossip port) with sequence numbers, acknowledgements, watermarks for the
// cluster-wide order, and digest-driven repair.
//
// It does not fan out to subscribers or keep history: it hands every event
// to the broker through one door (Hub.Deliver) and asks the broker what it
// holds. cmd wires it; web never sees it.
package transport

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rumorhq/rumor/broker"
)

// Hub is what the cluster needs from the broker. *broker.Hub implements it.
type Hub interface {
	Origin() uint64
	Deliver(e *broker.Event) bool
	PeerUp(origin, watermark uint64)
	Advance(origin, watermark uint64)
	PeerDown(origin uint64)
	Tick()
	Digest() broker.Digest
	Missing(d broker.Digest, limit int, minAge time.Duration) []*broker.Event
}

var _ Hub = (*broker.Hub)(nil)

// Config configures a Cluster. Zero values mean the documented defaults.
type Config struct {
	NodeName       string        // base name; a random suffix is appended per process start. "" means the hostname
	BindAddr       string        // host:port for gossip (UDP and TCP) and the event relay (TCP); "" means ":7946"
	AdvertiseAddr  string        // host or host:port peers reach us at; "" means derived from BindAddr or the first private IP
	HTTPAddr       string        // the HTTP address peers and UIs can reach this node's API at (host:port), shown in /cluster
	Join           []string      // seeds: host:port or DNS names (re-resolved on every rejoin)
	RejoinInterval time.Duration // how often seeds are re-resolved and re-joined; 0 means 30s, negative disables
	Label          string        // cluster label: nodes with another label never talk to us
	Key            []byte        // gossip and relay key, 16, 24 or 32 bytes; nil means unencrypted
	Origin         uint64        // the hub's origin, advertised to peers
	Registerer     prometheus.Registerer
	Logger         *slog.Logger
}

// Member is one node as this node sees it.
type Member struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`  // gossip address
	HTTP  string `json:"http"`  // HTTP API address
	State string `json:"state"` // alive, suspect, dead or left
	Self  bool   `json:"self,omitempty"`
}

// Cluster is this node's membership in a rumor cluster and its relay to
// the other nodes. It implements broker.Relay.
type Cluster struct {
	cfg Config
	log *slog.Logger
	hub Hub
}

var _ broker.Relay = (*Cluster)(nil)

// New checks cfg and prepares a cluster; Start joins it.
func New(cfg Config) (*Cluster, error) {
	return &Cluster{cfg: cfg}, nil
}

// Start listens on the bind address, joins the seeds in the background
// (retrying with backoff while none answers) and starts relaying with hub.
func (c *Cluster) Start(ctx context.Context, hub Hub) error { panic("TODO") }

// Self returns this node's unique member name.
func (c *Cluster) Self() string { panic("TODO") }

// Members lists every known member with its state, self included.
func (c *Cluster) Members() []Member { panic("TODO") }

// Changes returns a channel that receives a value (without blocking the
// cluster; values may coalesce) whenever membership changes.
func (c *Cluster) Changes() <-chan struct{} { panic("TODO") }

// Ready returns nil once the node has joined (or is deliberately alone) and
// caught up with its peers' retained history, and an error saying why not
// otherwise.
func (c *Cluster) Ready() error { panic("TODO") }

// Send implements broker.Relay.
func (c *Cluster) Send(e *broker.Event) { panic("TODO") }

// Watermark implements broker.Relay.
func (c *Cluster) Watermark(w uint64) { panic("TODO") }

// Acked implements broker.Relay.
func (c *Cluster) Acked(ctx context.Context, e *broker.Event) error { panic("TODO") }

// Flush waits until every peer has acknowledged everything sent, or ctx ends.
func (c *Cluster) Flush(ctx context.Context) error { panic("TODO") }

// Leave tells the cluster this node is leaving, waiting up to timeout.
// Call Shutdown after it.
func (c *Cluster) Leave(timeout time.Duration) error { panic("TODO") }

// Shutdown closes every connection and stops the cluster's goroutines. It is
// safe to call more than once.
func (c *Cluster) Shutdown() error { panic("TODO") }
