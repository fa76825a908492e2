package transport

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rumorhq/rumor/broker"
)

// testKey and testLabel are what every test cluster shares unless a test
// says otherwise.
var (
	testKey   = []byte("0123456789abcdef")
	testLabel = "test"
)

// fastTiming shrinks the data plane's timers so that failure and repair
// tests take fractions of a second. repairInterval stays well under
// stallTimeout: a dialler's reader hears from the listener at least once
// per repair round.
func fastTiming(t *timing) {
	t.dialTimeout = time.Second
	t.stallTimeout = time.Second
	t.heartbeat = 20 * time.Millisecond
	t.watermarkIdle = 100 * time.Millisecond
	t.repairInterval = 100 * time.Millisecond
	t.repairMinAge = 50 * time.Millisecond
	t.ackTimeout = 5 * time.Second
}

// quickRepair is every test node's timing unless its test says otherwise:
// the production timings but for the repair round. A node turns ready
// after its first conclusive digest round (repairMinAge, then up to one
// repairInterval), which with the defaults costs each test that starts a
// cluster about a second of waiting.
func quickRepair(t *timing) {
	t.repairInterval = 100 * time.Millisecond
	t.repairMinAge = 50 * time.Millisecond
}

// nodeOpts varies one test node. The zero value is a node of the shared
// test cluster with production timings but quickRepair's.
type nodeOpts struct {
	join   []string
	config func(*Config)
	timing func(*timing)
	hub    func(*broker.Options)
	// relay wraps the cluster as the hub's relay: what the hub sends goes
	// through it (a test hook for links that lose frames).
	relay func(*Cluster) broker.Relay
	// wrap wraps the hub the cluster sees (a test hook for what the
	// cluster calls on the broker).
	wrap func(*broker.Hub) Hub
	reg  *prometheus.Registry
	log  slog.Handler
	// memberlist adjusts the node's memberlist configuration (see
	// fastDetection).
	memberlist func(*memberlist.Config)
	// network, when set, replaces TCP and UDP (memnet_test.go): the
	// test runs in a synctest bubble. inMemory sets it for every node of
	// its test.
	network *memNet
}

// fastDetection shortens memberlist's failure detection for tests that
// wait for a member to be declared dead: probes every 200 ms instead of
// every second, so suspicion (a multiple of the probe interval) ends in
// about a second, not five. Only tests of what memberlist alone shows
// (a member declared dead, rejoining) need it.
func fastDetection(c *memberlist.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
}

// node is one in-process cluster member for tests.
type node struct {
	name    string
	hub     *broker.Hub
	c       *Cluster
	crashed atomic.Bool
}

func startNode(tb testing.TB, name string, join ...string) *node {
	tb.Helper()
	return startNodeWith(tb, name, nodeOpts{join: join})
}

func startNodeWith(tb testing.TB, name string, o nodeOpts) *node {
	tb.Helper()
	origin := broker.NewOrigin()
	logger := testLogger(name, o.log)
	cfg := Config{
		NodeName: name,
		BindAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:1",
		Join:     o.join,
		Origin:   origin,
		Local:    true,
		Label:    testLabel,
		Key:      testKey,
		Logger:   logger,
	}
	if o.reg != nil {
		cfg.Registerer = o.reg
	}
	if o.config != nil {
		o.config(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	quickRepair(&c.timing)
	if o.timing != nil {
		o.timing(&c.timing)
	}
	c.tuneMemberlist = o.memberlist
	if o.network == nil {
		if n, ok := bubbleNets.Load(tb); ok {
			o.network = n.(*memNet)
		}
	}
	if o.network != nil {
		c.network = o.network
	}
	var relay broker.Relay = c
	if o.relay != nil {
		relay = o.relay(c)
	}
	hopts := broker.Options{Origin: origin, Relay: relay, Logger: logger}
	if o.hub != nil {
		o.hub(&hopts)
	}
	hub := broker.NewHub(hopts)
	var h Hub = hub
	if o.wrap != nil {
		h = o.wrap(hub)
	}
	if err := c.Start(context.Background(), h); err != nil {
		hub.Close()
		tb.Fatalf("Start: %v", err)
	}
	n := &node{name: name, hub: hub, c: c}
	tb.Cleanup(n.crash)
	return n
}

// crash stops the node the way a crash looks to its peers: no Leave.
func (n *node) crash() {
	n.crashed.Store(true)
	_ = n.c.Shutdown()
	n.hub.Close()
}

// testLogger logs to h, else to stderr with -v, else nowhere.
func testLogger(name string, h slog.Handler) *slog.Logger {
	switch {
	case h != nil:
		return slog.New(h)
	case testing.Verbose():
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	default:
		return nil
	}
}

func waitFor(tb testing.TB, what string, timeout time.Duration, ok func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startCluster starts n nodes that join the first and waits until each
// is ready, sees every member and orders by every peer.
func startCluster(tb testing.TB, n int) []*node {
	tb.Helper()
	return startClusterWith(tb, n, func(int) nodeOpts { return nodeOpts{} })
}

func startClusterWith(tb testing.TB, n int, opts func(i int) nodeOpts) []*node {
	tb.Helper()
	first := startNodeWith(tb, "n1", opts(0))
	nodes := []*node{first}
	for i := 1; i < n; i++ {
		o := opts(i)
		o.join = append(o.join, first.c.GossipAddr())
		nodes = append(nodes, startNodeWith(tb, fmt.Sprintf("n%d", i+1), o))
	}
	waitConverged(tb, nodes...)
	return nodes
}

// waitConverged waits until every node is ready, sees exactly these
// nodes alive and orders by every other one.
func waitConverged(tb testing.TB, nodes ...*node) {
	tb.Helper()
	for _, nd := range nodes {
		waitFor(tb, nd.name+" ready with every peer", 10*time.Second, func() bool {
			return nd.c.Ready() == nil && alive(nd.c) == len(nodes) && nd.hub.Stats().Peers == len(nodes)-1 && nd.c.connectedPeers() == len(nodes)-1
		})
	}
}

// alive counts the members c sees alive.
func alive(c *Cluster) int {
	n := 0
	for _, m := range c.Members() {
		if m.State == "alive" {
			n++
		}
	}
	return n
}

// linkTo returns c's link to the named member, or nil.
func linkTo(c *Cluster, name string) *link {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.links[name]
}

// memberState returns the state c shows for the named member, or "".
func memberState(c *Cluster, name string) string {
	for _, m := range c.Members() {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

func subscribe(tb testing.TB, h *broker.Hub, pattern string, after broker.ID) *broker.Subscription {
	tb.Helper()
	p, err := broker.ParsePattern(pattern)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := h.Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{p}, From: broker.PositionOf(after)})
	if err != nil {
		tb.Fatalf("Subscribe(%q): %v", pattern, err)
	}
	tb.Cleanup(s.Close)
	return s
}

func publish(tb testing.TB, h *broker.Hub, ack broker.Ack, channel, data string) broker.ID {
	tb.Helper()
	ids, _, err := h.Publish(context.Background(), []broker.Message{{Channel: channel, Data: []byte(data)}}, ack)
	if err != nil {
		tb.Fatalf("Publish(%q, %q): %v", channel, data, err)
	}
	return ids[0]
}

func recv(tb testing.TB, s *broker.Subscription, n int) []*broker.Event {
	tb.Helper()
	var got []*broker.Event
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case <-s.Ready():
			evs, err := s.Drain(nil)
			got = append(got, evs...)
			if err != nil {
				tb.Fatalf("Drain: %v after %d events", err, len(got))
			}
		case <-deadline:
			tb.Fatalf("received %d events, want %d", len(got), n)
		}
	}
	return got
}

// recvUntil receives until an event with id last arrives and returns
// everything received, last included.
func recvUntil(tb testing.TB, s *broker.Subscription, last broker.ID, timeout time.Duration) []*broker.Event {
	tb.Helper()
	var got []*broker.Event
	deadline := time.After(timeout)
	for {
		select {
		case <-s.Ready():
			evs, err := s.Drain(nil)
			got = append(got, evs...)
			if slices.ContainsFunc(evs, func(e *broker.Event) bool { return e.ID == last }) {
				return got
			}
			if err != nil {
				tb.Fatalf("Drain: %v after %d events", err, len(got))
			}
		case <-deadline:
			tb.Fatalf("received %d events in %v, none of them %v", len(got), timeout, last)
		}
	}
}

// noneQueued fails if s has events queued.
func noneQueued(tb testing.TB, s *broker.Subscription) {
	tb.Helper()
	evs, err := s.Drain(nil)
	if len(evs) > 0 || err != nil {
		tb.Fatalf("subscription has %d events queued (err %v), want none", len(evs), err)
	}
}

// checkExactlyOnce fails unless got holds every id in want exactly once.
func checkExactlyOnce(tb testing.TB, where string, got []*broker.Event, want []broker.ID) {
	tb.Helper()
	count := make(map[broker.ID]int)
	for _, e := range got {
		count[e.ID]++
	}
	for _, id := range want {
		if n := count[id]; n != 1 {
			tb.Errorf("%s: event %v delivered %d times, want once", where, id, n)
		}
	}
	for id, n := range count {
		if n > 1 {
			tb.Errorf("%s: event %v delivered %d times", where, id, n)
		}
	}
}

// holds reports whether h's digest shows every sequence number of origin
// up to max, with no gap.
func holds(h Hub, origin, max uint64) bool {
	for _, o := range h.Digest() {
		if o.Origin == origin {
			return o.Max >= max && len(o.Gaps) == 0
		}
	}
	return max == 0
}

// gather returns the value of the named metric with the given labels, and
// whether it exists.
func gather(tb testing.TB, reg *prometheus.Registry, name string, labels ...string) (float64, bool) {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// rawPeer is a hand-made relay dialler: a test plays a rumor node (or a
// stranger) on the wire.
type rawPeer struct {
	conn   net.Conn
	br     *bufio.Reader
	origin uint64
}

// dialRaw dials a node's gossip port (on inMemory's network in a bubble)
// and runs the relay handshake with the relay key for key and label, as
// origin.
func dialRaw(tb testing.TB, addr string, key []byte, label string, origin uint64) (*rawPeer, error) {
	tb.Helper()
	var conn net.Conn
	var err error
	if n, ok := bubbleNets.Load(tb); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err = n.(*memNet).dial(ctx, addr)
		cancel()
	} else {
		conn, err = net.DialTimeout("tcp", addr, 2*time.Second)
	}
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	tb.Cleanup(func() { conn.Close() })
	sealed, _, _, err := dialHandshake(conn, relayKey(key, label), origin, 0, 2*time.Second)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &rawPeer{conn: sealed, br: bufio.NewReader(sealed), origin: origin}, nil
}

func (p *rawPeer) write(tb testing.TB, frames ...[]byte) {
	tb.Helper()
	_ = p.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	for _, f := range frames {
		if _, err := p.conn.Write(f); err != nil {
			tb.Fatalf("write to relay: %v", err)
		}
	}
}

// waitClosed reads (and drops) frames until the node closes the
// connection; it fails if that takes longer than timeout.
func (p *rawPeer) waitClosed(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(timeout))
	var buf []byte
	for {
		var err error
		_, _, buf, err = readFrame(p.br, buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				tb.Fatalf("node did not close the relay connection within %v", timeout)
			}
			return
		}
	}
}

func eventFrame(e *broker.Event) []byte {
	return appendFrame(nil, frameEvent, appendEvent(nil, e))
}

func watermarkFrame(w uint64) []byte {
	var b [8]byte
	putU64(b[:], w)
	return appendFrame(nil, frameWatermark, b[:])
}

// hlcNow is a hybrid logical clock time for now.
func hlcNow() uint64 { return uint64(time.Now().UnixMilli()) << 16 }

// logRecorder is a slog handler that keeps every record, for assertions.
type logRecorder struct {
	mu    *sync.Mutex
	recs  *[]logRecord
	attrs []slog.Attr
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string][]string // every value each key was given
}

func newLogRecorder() *logRecorder {
	return &logRecorder{mu: new(sync.Mutex), recs: new([]logRecord)}
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	lr := logRecord{level: rec.Level, msg: rec.Message, attrs: make(map[string][]string)}
	for _, a := range r.attrs {
		lr.attrs[a.Key] = append(lr.attrs[a.Key], a.Value.String())
	}
	rec.Attrs(func(a slog.Attr) bool {
		lr.attrs[a.Key] = append(lr.attrs[a.Key], a.Value.String())
		return true
	})
	r.mu.Lock()
	*r.recs = append(*r.recs, lr)
	r.mu.Unlock()
	return nil
}

func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{mu: r.mu, recs: r.recs, attrs: append(slices.Clip(r.attrs), as...)}
}

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

func (r *logRecorder) records() []logRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(*r.recs)
}

// count returns how many records contain substr in their message.
func (r *logRecorder) count(substr string) int {
	n := 0
	for _, rec := range r.records() {
		if strings.Contains(rec.msg, substr) {
			n++
		}
	}
	return n
}

func newRegistry() *prometheus.Registry { return prometheus.NewRegistry() }
