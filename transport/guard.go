package transport

import (
	"errors"
	"net"
	"net/netip"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// The gossip port's budget for connections that have not proved to be
// peers. memberlist reads a stream's whole message before it can decrypt
// and so authenticate it, and it accepts a length of up to 20 MiB from
// anyone who knows the (not secret) label; it has no setting for either, nor
// for how many such streams it reads at once. So every TCP connection on the
// port passes a guard first: it holds one of MaxStrangers slots (at most
// guardPerAddr of them per remote address) until it closes or, for a relay,
// passes the handshake, and it may read at most StrangerBytes before
// that. A stranger therefore holds at most StrangerBytes of the node's
// memory (memberlist's buffer may reach twice that) for at most
// memberlist's TCP timeout, and all strangers together at most MaxStrangers
// times that. memberlist's own push/pull of the member list is a few hundred
// bytes per member, far below the default; but a push/pull also carries
// Config.State (the revocations: up to several MiB), so a connection from
// the address of a live member, or of one that passed the relay handshake
// before (a member rejoining after a partition), may read up to
// memberlist's own limit for a push/pull (memberBytes) instead. Addresses are not authentication, but
// a stranger must hold a member's address to get that far, and memberlist
// still refuses what it cannot decrypt.
const (
	defaultMaxStrangers  = 32
	defaultStrangerBytes = 1 << 20
	guardPerAddr         = 8 // slots one remote address may hold
	// memberBytes is what a connection from a member's address may read
	// unproven: memberlist's limit on a push/pull (20 MiB) plus its framing.
	memberBytes = 20<<20 + 64<<10
	// maxPeerAddrs bounds the addresses remembered as peers'.
	maxPeerAddrs = 4096
)

// Why the guard refused or cut a connection, for
// rumor_gossip_streams_refused_total.
const (
	guardLimit     = "limit"      // every slot taken
	guardAddrLimit = "addr_limit" // the remote address holds guardPerAddr slots
	guardTooLarge  = "too_large"  // read more than StrangerBytes before it proved to be a peer
)

// errGuardTooLarge ends the read of a stream over its byte budget.
var errGuardTooLarge = errors.New("gossip stream over its byte budget before it proved to be a peer")

// guard bounds the connections on the gossip port that have not proved to
// be peers: their number, per remote address too, and the bytes each may
// send. Safe for concurrent use.
type guard struct {
	streams  int
	maxBytes int64
	member   func(netip.Addr) bool // whether an address is a live member's; nil: none is

	mu     sync.Mutex
	open   int
	byAddr map[netip.Addr]int
	peers  map[netip.Addr]bool // addresses that passed the relay handshake, at most maxPeerAddrs

	refused *prometheus.CounterVec
}

func newGuard(streams int, maxBytes int64, member func(netip.Addr) bool, reg prometheus.Registerer) *guard {
	if streams <= 0 {
		streams = defaultMaxStrangers
	}
	if maxBytes <= 0 {
		maxBytes = defaultStrangerBytes
	}
	g := &guard{
		streams:  streams,
		maxBytes: maxBytes,
		member:   member,
		byAddr:   make(map[netip.Addr]int),
		peers:    make(map[netip.Addr]bool),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rumor_gossip_streams_refused_total",
			Help: "TCP connections on the gossip port closed before they proved to be peers: limit (every slot taken), addr_limit (too many from one address), too_large (over the byte budget).",
		}, []string{"reason"}),
	}
	for _, r := range []string{guardLimit, guardAddrLimit, guardTooLarge} {
		g.refused.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(g.refused, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rumor_gossip_streams_unproven",
			Help: "TCP connections on the gossip port that hold a slot: not yet proved to be peers.",
		}, func() float64 {
			g.mu.Lock()
			defer g.mu.Unlock()
			return float64(g.open)
		}))
	}
	return g
}

// admit gives conn a slot and returns it wrapped, or closes it and returns
// nil when no slot is free for it.
func (g *guard) admit(conn net.Conn) net.Conn {
	addr := remoteAddr(conn)
	g.mu.Lock()
	reason := ""
	switch {
	case g.open >= g.streams:
		reason = guardLimit
	case g.byAddr[addr] >= guardPerAddr:
		reason = guardAddrLimit
	default:
		g.open++
		g.byAddr[addr]++
	}
	g.mu.Unlock()
	if reason != "" {
		g.refused.WithLabelValues(reason).Inc()
		conn.Close()
		return nil
	}
	gc := &guardedConn{Conn: conn, g: g, addr: addr}
	gc.left = g.maxBytes
	return gc
}

// knownPeer reports whether addr is a live member's or passed the relay
// handshake before.
func (g *guard) knownPeer(addr netip.Addr) bool {
	g.mu.Lock()
	known := g.peers[addr]
	g.mu.Unlock()
	return known || g.member != nil && g.member(addr)
}

func (g *guard) release(addr netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open--
	if g.byAddr[addr]--; g.byAddr[addr] <= 0 {
		delete(g.byAddr, addr)
	}
}

func remoteAddr(conn net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// guardedConn is a gossip-port connection holding a slot of its guard.
// One goroutine reads it at a time, as every net.Conn user here does.
type guardedConn struct {
	net.Conn
	g      *guard
	addr   netip.Addr
	left   int64 // bytes it may still read while unproven
	mu     sync.Mutex
	proven bool
	member bool // its budget was raised to memberBytes
	once   sync.Once
}

func (c *guardedConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if !c.proven && c.left <= 0 && !c.member && c.g.knownPeer(c.addr) {
		c.member = true
		c.left = max(memberBytes-c.g.maxBytes, 0)
	}
	proven, left := c.proven, c.left
	c.mu.Unlock()
	if !proven {
		if left <= 0 {
			c.g.refused.WithLabelValues(guardTooLarge).Inc()
			c.Conn.Close()
			return 0, errGuardTooLarge
		}
		if int64(len(b)) > left {
			b = b[:left]
		}
	}
	n, err := c.Conn.Read(b)
	if !proven {
		c.mu.Lock()
		c.left -= int64(n)
		c.mu.Unlock()
	}
	return n, err
}

// Close closes the connection and gives its slot back. Safe to call more
// than once.
func (c *guardedConn) Close() error {
	c.giveBack()
	return c.Conn.Close()
}

func (c *guardedConn) giveBack() {
	c.once.Do(func() { c.g.release(c.addr) })
}

// prove marks conn, a connection admit returned (possibly wrapped in a
// peeked), as a peer's: it leaves the guard's budget and may read without
// limit. The relay calls it once the handshake has passed.
func prove(conn net.Conn) {
	if p, ok := conn.(*peeked); ok {
		conn = p.Conn
	}
	gc, ok := conn.(*guardedConn)
	if !ok {
		return
	}
	gc.mu.Lock()
	gc.proven = true
	gc.mu.Unlock()
	gc.giveBack()
	g := gc.g
	g.mu.Lock()
	if len(g.peers) < maxPeerAddrs {
		g.peers[gc.addr] = true
	}
	g.mu.Unlock()
}

// isMemberAddr reports whether a is the address of a live member other
// than this node.
func (c *Cluster) isMemberAddr(a netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, n := range c.known {
		if ip, ok := netip.AddrFromSlice(n.Addr); ok && name != c.name && ip.Unmap() == a {
			return true
		}
	}
	return false
}
