// Package transport joins rumor nodes into a cluster with
// hashicorp/memberlist and carries events between them: membership and
// failure detection over memberlist's gossip, and a one-hop data plane (a
// persistent, framed TCP stream from every node to every other, on the
// gossip port) with sequence numbers, acknowledgements, watermarks for the
// cluster-wide order, and digest-driven repair.
//
// It does not fan out to subscribers or keep history: it hands every event
// to the broker through one door (Hub.Deliver) and asks the broker what it
// holds. cmd wires it; web never sees it.
package transport

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
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
	Member(origin uint64)
	Settle()
	Digest() broker.Digest
	Contig(origin uint64) uint64
	OwnAbove(seq uint64, limit int) []*broker.Event
	Missing(d broker.Digest, limit int, minAge time.Duration) []*broker.Event
}

var _ Hub = (*broker.Hub)(nil)

// Config configures a Cluster. Zero values mean the documented defaults.
type Config struct {
	NodeName       string        // base name; a random suffix is appended per process start. "" means the hostname
	BindAddr       string        // host:port for gossip (UDP and TCP) and the event relay (TCP); "" means ":7946"; port 0 picks one
	AdvertiseAddr  string        // host or host:port peers reach us at; "" means derived from BindAddr or the first private IP
	HTTPAddr       string        // the HTTP address peers and UIs can reach this node's API at (host:port), shown in /cluster
	AdminAddr      string        // the admin listener's address (host:port), where peers ask for the UI's cluster view; "" means HTTPAddr serves it
	Join           []string      // seeds: host:port or DNS names (re-resolved on every rejoin); a missing port means 7946
	RejoinInterval time.Duration // how often seeds are re-resolved and re-joined; 0 means 30s
	JoinTimeout    time.Duration // how long to look for peers before a node whose seeds name peers it cannot join reports itself isolated; 0 means 10s
	Label          string        // cluster label: nodes with another label never talk to us
	Key            []byte        // gossip and relay key, 16, 24 or 32 bytes; nil means unencrypted
	Origin         uint64        // the hub's origin, advertised to peers (required)
	Local          bool          // memberlist's loopback timings (faster failure detection), for dev and tests
	State          State         // state every node holds whole, carried by push/pull and Spread (state.go); nil means none

	// The gossip port's budget for connections not yet proved to be peers
	// (guard.go): how many at once, and how many bytes each may send first.
	MaxStrangers  int   // 0 means 32
	StrangerBytes int64 // 0 means 1 MiB
	Registerer    prometheus.Registerer
	Logger        *slog.Logger
}

// Member is one node as this node sees it.
type Member struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`            // gossip address
	HTTP  string `json:"http"`            // HTTP API address
	Admin string `json:"admin,omitempty"` // admin listener address, if it has one
	State string `json:"state"`           // alive, suspect, dead or left
	Self  bool   `json:"self,omitempty"`
}

// meta is what every node gossips about itself (memberlist caps it at 512 bytes).
type meta struct {
	HTTP    string `json:"h"`
	Admin   string `json:"a,omitempty"`
	Origin  string `json:"o"`
	Version int    `json:"v"`
}

// network is where a cluster listens and dials: TCP and UDP unless a test
// sets Cluster.network.
type network interface {
	// listen is memberlist's transport on host:port (port 0 picks one).
	listen(host string, port int) (memberlist.NodeAwareTransport, error)
	// dial opens a stream to the gossip address addr, as the relay's
	// links do, and gives up when ctx ends.
	dial(ctx context.Context, addr string) (net.Conn, error)
}

// Cluster is this node's membership in a rumor cluster and its relay to
// the other nodes. It implements broker.Relay.
type Cluster struct {
	cfg      Config
	log      *slog.Logger
	name     string
	relayKey []byte
	timing   timing
	metrics  *metrics
	guard    *guard // the gossip port's strangers: guard.go

	gossipInterval time.Duration // memberlist's, set by Start
	// Test seams, set before Start; nil in production. tuneMemberlist
	// adjusts memberlist's configuration last (tests of failure
	// detection shorten its probe interval); network replaces TCP and
	// UDP (tests run whole clusters on an in-memory network, in a
	// testing/synctest bubble).
	tuneMemberlist func(*memberlist.Config)
	network        network
	frames         frames // sent events' encodings, guarded by mu

	hub     Hub
	ml      *memberlist.Memberlist
	streams chan net.Conn // memberlist's own streams, after the relay's are taken out

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	links    map[string]*link     // by member name
	inbound  map[uint64]*inbound  // by the peer's origin
	leavers  map[string]time.Time // members that announced a graceful leave
	departed map[string]departed
	known    map[string]memberlist.Node // live members, copied while memberlist holds its lock
	joined   bool                       // joined a peer, or decided to serve alone
	isolated string                     // why no seed could be joined, while none can ("" otherwise)
	settled  atomic.Bool                // the hub was told it caught up
	started  time.Time
	ackCh    chan struct{} // closed and replaced when acks or peers change
	changes  chan struct{}
	shutdown bool
}

// inbound is a peer's relay connection to us.
type inbound struct {
	conn  net.Conn
	done  chan struct{} // closed once its reader stopped, PeerDown included
	heard atomic.Bool   // its first watermark arrived: our clock passed the peer's
}

type departed struct {
	m  Member
	at time.Time
}

var _ broker.Relay = (*Cluster)(nil)

// New checks cfg and prepares a cluster; Start joins it.
func New(cfg Config) (*Cluster, error) {
	var errs []error
	if cfg.Origin == 0 {
		errs = append(errs, errors.New("origin is required"))
	}
	switch len(cfg.Key) {
	case 0, 16, 24, 32:
	default:
		errs = append(errs, fmt.Errorf("gossip key is %d bytes, want 16, 24 or 32", len(cfg.Key)))
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = ":7946"
	}
	if _, _, err := net.SplitHostPort(cfg.BindAddr); err != nil {
		errs = append(errs, fmt.Errorf("bind address %q: %w", cfg.BindAddr, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.NodeName == "" {
		cfg.NodeName, _ = os.Hostname()
	}
	cfg.RejoinInterval = cmp.Or(cfg.RejoinInterval, 30*time.Second)
	cfg.JoinTimeout = cmp.Or(cfg.JoinTimeout, 10*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	c := &Cluster{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "transport"),
		name:     cfg.NodeName + "-" + hex.EncodeToString(suffix),
		relayKey: relayKey(cfg.Key, cfg.Label),
		timing:   defaultTiming(),
		streams:  make(chan net.Conn),
		links:    make(map[string]*link),
		inbound:  make(map[uint64]*inbound),
		leavers:  make(map[string]time.Time),
		departed: make(map[string]departed),
		known:    make(map[string]memberlist.Node),
		ackCh:    make(chan struct{}),
		changes:  make(chan struct{}, 1),
	}
	c.metrics = newMetrics(c, cfg.Registerer)
	c.guard = newGuard(cfg.MaxStrangers, cfg.StrangerBytes, c.isMemberAddr, cfg.Registerer)
	return c, nil
}

// Start listens on the bind address, joins the seeds in the background
// (retrying with backoff while none answers) and starts relaying with hub.
// ctx bounds the start only: if it ends before the cluster is up, Start
// undoes what it did and returns ctx's error. Once started, the cluster
// runs until Shutdown whatever becomes of ctx (a stopping node still needs
// it to flush and leave).
func (c *Cluster) Start(ctx context.Context, hub Hub) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	c.hub = hub
	c.ctx, c.cancel = context.WithCancel(context.Background())
	host, portText, _ := net.SplitHostPort(c.cfg.BindAddr)
	if host == "" {
		host = "0.0.0.0"
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("bind port %q: %w", portText, err)
	}
	mlog := log.New(logWriter{c.cfg.Logger.With("component", "memberlist")}, "", 0)
	var nt memberlist.NodeAwareTransport
	if c.network != nil {
		nt, err = c.network.listen(host, port)
	} else {
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{host},
			BindPort:  port,
			Logger:    mlog,
		})
	}
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.cfg.BindAddr, err)
	}
	conf := memberlist.DefaultLANConfig()
	if c.cfg.Local {
		conf = memberlist.DefaultLocalConfig()
	}
	conf.Name = c.name
	c.gossipInterval = conf.GossipInterval
	conf.Transport = &demux{NodeAwareTransport: nt, c: c}
	conf.Logger = mlog
	conf.Label = c.cfg.Label
	conf.EnableCompression = false // LZW costs far more than it saves here
	conf.Delegate = delegate{c}
	conf.Events = events{c}
	if len(c.cfg.Key) > 0 {
		conf.SecretKey = c.cfg.Key
	}
	if c.tuneMemberlist != nil {
		c.tuneMemberlist(conf)
	}
	if adv := c.cfg.AdvertiseAddr; adv != "" {
		h, p, err := net.SplitHostPort(adv)
		if err != nil {
			h, p = adv, ""
		}
		conf.AdvertiseAddr = h
		if a, ok := nt.(interface{ GetAutoBindPort() int }); ok {
			conf.AdvertisePort = a.GetAutoBindPort()
		}
		if p != "" {
			if conf.AdvertisePort, err = strconv.Atoi(p); err != nil {
				nt.Shutdown()
				return fmt.Errorf("advertise port %q: %w", p, err)
			}
		}
	}
	c.mu.Lock()
	c.started = time.Now()
	c.mu.Unlock()
	c.wg.Add(1)
	go c.demuxStreams(nt)
	ml, err := memberlist.Create(conf)
	if err != nil {
		// The listener stops before the demux: it blocks handing over
		// a connection nobody takes.
		nt.Shutdown()
		c.cancel()
		c.wg.Wait()
		return fmt.Errorf("start memberlist: %w", err)
	}
	c.mu.Lock()
	c.ml = ml
	c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		c.Shutdown()
		return fmt.Errorf("start: %w", err)
	}
	c.log.Info("cluster started", "node", c.name, "gossip", c.GossipAddr(), "label", c.cfg.Label, "encrypted", len(c.cfg.Key) > 0)
	if len(c.cfg.Join) == 0 {
		// No seeds: this node starts a cluster. Whoever joins later is
		// newer, and catches up with us.
		c.settled.Store(true)
		hub.Settle()
	}
	c.wg.Add(2)
	go c.joinLoop()
	go c.tickLoop()
	return nil
}

// GossipAddr returns the address the cluster listens on, with the real port
// when BindAddr asked for port 0. Valid after Start.
func (c *Cluster) GossipAddr() string {
	n := c.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Self returns this node's unique member name.
func (c *Cluster) Self() string { return c.name }

// Members lists every known member with its state, self included, sorted
// by name.
func (c *Cluster) Members() []Member {
	var out []Member
	c.mu.Lock()
	// memberlist rewrites the nodes Members() hands out without a lock we
	// can take: read our copies, made in its event callbacks.
	for name, n := range c.known {
		m := c.member(&n)
		m.State = "alive"
		if l := c.links[name]; l != nil && l.unreachable(2*time.Second) {
			// memberlist has not declared it dead yet, but we cannot
			// reach its relay: as good as suspect.
			m.State = "suspect"
		}
		out = append(out, m)
	}
	for name, d := range c.departed {
		if time.Since(d.at) > 10*time.Minute {
			delete(c.departed, name)
			continue
		}
		if _, live := c.known[name]; !live {
			out = append(out, d.m)
		}
	}
	for name, at := range c.leavers {
		if time.Since(at) > 10*time.Minute {
			delete(c.leavers, name)
		}
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// remember copies n, which memberlist lets us read only inside its event
// callbacks. Called with c.mu held.
func (c *Cluster) remember(n *memberlist.Node) {
	cp := *n
	cp.Addr = append(net.IP(nil), n.Addr...)
	cp.Meta = append([]byte(nil), n.Meta...)
	c.known[n.Name] = cp
}

func (c *Cluster) member(n *memberlist.Node) Member {
	m := Member{
		Name:  n.Name,
		Addr:  net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
		State: stateName(n.State),
		Self:  n.Name == c.name,
	}
	var md meta
	if json.Unmarshal(n.Meta, &md) == nil {
		m.HTTP, m.Admin = md.HTTP, md.Admin
	}
	return m
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateLeft:
		return "left"
	default:
		return "dead"
	}
}

// Changes returns a channel that receives a value (without blocking the
// cluster; values may coalesce) whenever membership or readiness changes.
func (c *Cluster) Changes() <-chan struct{} { return c.changes }

func (c *Cluster) changed() {
	select {
	case c.changes <- struct{}{}:
	default:
	}
}

func (c *Cluster) readyChanged() { c.changed() }

// Ready returns nil once the node has joined (or is deliberately alone) and
// caught up with its connected peers' retained history, and while no peer
// leaves our events unacknowledged; an error saying why not otherwise.
func (c *Cluster) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shutdown {
		return errors.New("cluster shut down")
	}
	if !c.joined && c.isolated != "" {
		return fmt.Errorf("isolated: no peer at --join %s could be joined: %s", strings.Join(c.cfg.Join, ","), c.isolated)
	}
	if !c.joined {
		return errors.New("joining the cluster")
	}
	caught := 0
	for _, l := range c.links {
		if !l.up.Load() {
			continue
		}
		if !l.caughtUp.Load() {
			return fmt.Errorf("catching up with %s", l.name)
		}
		if err := l.wedged(c.timing.stallTimeout + c.timing.ackTimeout); err != nil {
			return err
		}
		caught++
	}
	if caught == 0 && len(c.links) > 0 && time.Since(c.started) < c.cfg.JoinTimeout {
		return errors.New("connecting to peers")
	}
	return nil
}

// Send implements broker.Relay. The connected links share one encoding of
// e, made only if one of them is up.
func (c *Cluster) Send(e *broker.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var f encoded
	encode := func() encoded {
		if f.b == nil {
			f = c.frames.encode(e)
		}
		return f
	}
	for _, l := range c.links {
		l.send(e, encode)
	}
}

// Watermark implements broker.Relay.
func (c *Cluster) Watermark(w uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.links {
		l.watermark(w)
	}
}

// ErrNoAck means no live peer acknowledged an event in time. The event is
// stored locally and still spreads once a peer is reachable.
var ErrNoAck = errors.New("no peer acknowledged in time")

// Acked implements broker.Relay: it waits until a connected peer holds e, or
// returns at once when there is no peer.
func (c *Cluster) Acked(ctx context.Context, e *broker.Event) error {
	timer := time.NewTimer(c.timing.ackTimeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		ch := c.ackCh
		peers := len(c.links)
		acked := false
		for _, l := range c.links {
			if l.acked.Load() >= e.ID.Seq {
				acked = true
				break
			}
		}
		c.mu.Unlock()
		if acked || peers == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return ErrNoAck
		}
	}
}

func (c *Cluster) ackChanged() {
	c.mu.Lock()
	close(c.ackCh)
	c.ackCh = make(chan struct{})
	c.mu.Unlock()
}

// Flush waits until every connected peer has acknowledged everything sent,
// or ctx ends.
func (c *Cluster) Flush(ctx context.Context) error {
	for {
		c.mu.Lock()
		ch := c.ackCh
		waiting := 0
		for _, l := range c.links {
			if _, n := l.pending(); n > 0 && l.up.Load() {
				waiting += n
			}
		}
		c.mu.Unlock()
		if waiting == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("flush relays: %d events unacknowledged: %w", waiting, ctx.Err())
		}
	}
}

// Leave tells the cluster this node is leaving, so that peers see a leave
// rather than a death. It waits until the peers have heard, or ctx ends,
// or no live member is left to hear it: the whole cluster stopping at once
// is not an error. Without a deadline on ctx it waits at most 5s. Call
// Shutdown after it; Leave after Shutdown returns an error.
func (c *Cluster) Leave(ctx context.Context) error {
	c.mu.Lock()
	running := c.ml != nil && !c.shutdown
	c.mu.Unlock()
	if !running {
		return errors.New("leave: cluster not running")
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	// Half the time for our own notice, the rest for memberlist's.
	notice, cancel := context.WithDeadline(ctx, time.Now().Add(time.Until(deadline)/2))
	c.announceLeave(notice)
	cancel()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	// memberlist's Leave takes no ctx (a timeout of 0 would wait forever).
	// Its broadcast goes out within a few gossip rounds while any peer is
	// alive; past ten, it waits for nobody: every peer left meanwhile.
	wait := min(time.Until(deadline), 10*c.gossipInterval)
	err := c.ml.Leave(max(wait, time.Millisecond))
	if err != nil && c.ml.NumMembers() == 0 {
		// Every peer left or died while our leave waited for one to
		// gossip it to: nobody is left to tell.
		c.log.Info("left: no member left to hear it")
		return nil
	}
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	return nil
}

// leaveNotice starts the message a leaving node sends every member before
// memberlist's Leave, followed by its name. memberlist does not tell its
// event delegate whether a node left or died (NotifyLeave's Node.State is
// always StateAlive: hashicorp/memberlist#293), so peers learn it here.
const leaveNotice = "rumor.leave\x00"

// announceLeave tells every member this node is leaving, waiting until
// ctx ends at most. A send that is still dialling then is waited for by
// Shutdown.
func (c *Cluster) announceLeave(ctx context.Context) {
	msg := append([]byte(leaveNotice), c.name...)
	var sends sync.WaitGroup
	c.mu.Lock()
	var peers []*memberlist.Node
	for name, n := range c.known {
		if name != c.name {
			peers = append(peers, &n)
		}
	}
	c.mu.Unlock()
	for _, n := range peers {
		sends.Add(1)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer sends.Done()
			if err := c.ml.SendReliable(n, msg); err != nil {
				c.log.Debug("leave notice not sent", "node", n.Name, "err", err)
			}
		}()
	}
	done := make(chan struct{})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		sends.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// memberLeaving records that a member announced its leave.
func (c *Cluster) memberLeaving(name string) {
	c.mu.Lock()
	if d, ok := c.departed[name]; ok {
		d.m.State = "left" // memberlist's event came first
		c.departed[name] = d
	} else {
		c.leavers[name] = time.Now()
	}
	c.mu.Unlock()
	c.changed()
}

// Shutdown closes every connection and stops the cluster's goroutines. It is
// safe to call more than once.
func (c *Cluster) Shutdown() error {
	c.mu.Lock()
	if c.shutdown || c.ml == nil {
		c.mu.Unlock()
		return nil
	}
	c.shutdown = true
	links := c.links
	c.links = map[string]*link{}
	for _, in := range c.inbound {
		in.conn.Close()
	}
	c.mu.Unlock()
	for _, l := range links {
		l.close()
	}
	for _, l := range links {
		<-l.done
	}
	// memberlist first, the demux after: until memberlist's listener has
	// stopped, every connection it accepts must find a taker.
	err := c.ml.Shutdown()
	c.cancel()
	c.wg.Wait()
	c.ackChanged()
	return err
}

// memberUp starts a link to a member that joined (or whose metadata
// changed). Called from memberlist's event delegate: must not block.
func (c *Cluster) memberUp(n *memberlist.Node) {
	c.mu.Lock()
	c.remember(n)
	c.mu.Unlock()
	if n.Name == c.name {
		c.changed()
		return
	}
	var md meta
	if err := json.Unmarshal(n.Meta, &md); err != nil {
		c.log.Warn("member without rumor metadata", "node", n.Name)
		return
	}
	origin, err := strconv.ParseUint(md.Origin, 16, 64)
	if err != nil || origin == 0 {
		c.log.Warn("member with a bad origin", "node", n.Name)
		return
	}
	addr := net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	// Positions written here name it from now on, even before its first
	// event reaches us. No cluster lock is held: the hub calls into us
	// with its own.
	c.hub.Member(origin)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.departed, n.Name)
	if c.shutdown || c.ml == nil && c.ctx == nil {
		return
	}
	if l := c.links[n.Name]; l != nil {
		if l.addr == addr && l.origin == origin {
			return
		}
		l.close()
	}
	l := newLink(c, n.Name, addr, origin)
	c.links[n.Name] = l
	c.joined = true
	c.clearIsolated()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		l.run()
	}()
	c.log.Info("member joined", "node", n.Name, "addr", addr, "http", md.HTTP)
	c.changed()
}

// memberDown stops the link to a member that left or died and closes its
// inbound relay, so the order stops waiting for it.
func (c *Cluster) memberDown(n *memberlist.Node) {
	if n.Name == c.name {
		return
	}
	m := c.member(n)
	c.mu.Lock()
	delete(c.known, n.Name)
	m.State = "dead"
	if _, ok := c.leavers[n.Name]; ok {
		m.State = "left"
		delete(c.leavers, n.Name)
	}
	l := c.links[n.Name]
	delete(c.links, n.Name)
	c.departed[n.Name] = departed{m: m, at: time.Now()}
	if l != nil {
		l.close()
		if in := c.inbound[l.origin]; in != nil {
			in.conn.Close()
		}
	}
	c.mu.Unlock()
	c.log.Info("member "+m.State, "node", n.Name)
	c.ackChanged()
	c.changed()
}

// contig is the highest sequence of origin's events we hold with none
// missing below: where its resend starts.
func (c *Cluster) contig(origin uint64) uint64 { return c.hub.Contig(origin) }

// trackInbound records conn as origin's relay connection and closes the
// one it replaces, returned as prev: its reader must have stopped before
// conn's starts. It returns nil after Shutdown.
func (c *Cluster) trackInbound(origin uint64, conn net.Conn) (in, prev *inbound) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shutdown {
		return nil, nil
	}
	prev = c.inbound[origin]
	if prev != nil {
		prev.conn.Close() // the peer redialled; the old stream is dead
	}
	in = &inbound{conn: conn, done: make(chan struct{})}
	c.inbound[origin] = in
	return in, prev
}

func (c *Cluster) untrackInbound(origin uint64, in *inbound) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inbound[origin] == in {
		delete(c.inbound, origin)
	}
}

// settle tells the hub, once, that this node has caught up: it is ready
// (joined or alone, and caught up with every peer whose link is up), and
// it has heard every such peer's watermark, so its clock is past every time
// they promised. A peer that never answers is not waited for past the join
// timeout. See broker.Hub.Settle.
func (c *Cluster) settle() {
	if c.settled.Load() || c.Ready() != nil {
		return
	}
	c.mu.Lock()
	heard := true
	for _, l := range c.links {
		if in := c.inbound[l.origin]; l.up.Load() && (in == nil || !in.heard.Load()) {
			heard = false
		}
	}
	waited := time.Since(c.started) > c.cfg.JoinTimeout
	c.mu.Unlock()
	if heard || waited {
		c.settled.Store(true)
		c.hub.Settle()
		c.log.Debug("caught up: publishing", "heard", heard)
	}
}

// tickLoop sends watermarks on idle links and asks peers for repairs.
func (c *Cluster) tickLoop() {
	defer c.wg.Done()
	hb := time.NewTicker(c.timing.heartbeat)
	defer hb.Stop()
	repair := time.NewTicker(c.timing.repairInterval)
	defer repair.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-hb.C:
			c.hub.Tick()
			c.settle()
		case <-repair.C:
			c.mu.Lock()
			for _, l := range c.links {
				if l.up.Load() {
					l.requestDigest()
				}
			}
			c.mu.Unlock()
		}
	}
}
