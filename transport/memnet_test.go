package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"
)

// inMemory runs f in a synctest bubble with a fresh memNet that every node
// f starts (startNodeWith with no network of its own) is on.
func inMemory(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		bubbleNets.Store(t, newMemNet())
		t.Cleanup(func() { bubbleNets.Delete(t) }) // after the nodes': cleanups are LIFO
		f(t)
	})
}

// bubbleNets holds inMemory's network per test.
var bubbleNets sync.Map // testing.TB → *memNet

// memNet is an in-memory network for whole test clusters: memberlist's
// packets and streams and the relay's links, between nodes of one test,
// inside a testing/synctest bubble where timers are instant and exact.
// Streams are net.Pipe pairs (deadlines work, nothing is buffered);
// packets to an address nobody listens on are lost, as over UDP; a dial to
// it is refused. Tests of the relay protocol run on it; tests of what
// only real sockets show (memberlist's own encryption and labels on the
// wire, strangers on the port, the kernel's buffers) keep TCP and UDP.
type memNet struct {
	mu    sync.Mutex
	nodes map[string]*memTransport // by host:port
	port  int
}

func newMemNet() *memNet { return &memNet{nodes: make(map[string]*memTransport)} }

func (n *memNet) listen(host string, port int) (memberlist.NodeAwareTransport, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if port == 0 {
		n.port++
		port = 20000 + n.port
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("memnet: host %q is not an IP", host)
	}
	addr := net.JoinHostPort(host, fmt.Sprint(port))
	if n.nodes[addr] != nil {
		return nil, fmt.Errorf("memnet: %s: address already in use", addr)
	}
	t := &memTransport{
		net:     n,
		ip:      ip,
		port:    port,
		addr:    addr,
		packets: make(chan *memberlist.Packet, 256),
		streams: make(chan net.Conn),
		done:    make(chan struct{}),
	}
	n.nodes[addr] = t
	return t, nil
}

func (n *memNet) lookup(addr string) *memTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[addr]
}

// dial hands one end of a pipe to the listener at addr.
func (n *memNet) dial(ctx context.Context, addr string) (net.Conn, error) {
	dest := n.lookup(addr)
	if dest == nil {
		return nil, fmt.Errorf("memnet: dial %s: connection refused", addr)
	}
	n.mu.Lock()
	n.port++
	from := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000 + n.port}
	n.mu.Unlock()
	to := &net.TCPAddr{IP: dest.ip, Port: dest.port}
	client, server := net.Pipe()
	select {
	case dest.streams <- pipeConn{server, to, from}:
		return pipeConn{client, from, to}, nil
	case <-dest.done:
		client.Close()
		server.Close()
		return nil, fmt.Errorf("memnet: dial %s: connection refused", addr)
	case <-ctx.Done():
		client.Close()
		server.Close()
		return nil, fmt.Errorf("memnet: dial %s: %w", addr, ctx.Err())
	}
}

// pipeConn is a pipe end with the addresses of a TCP connection.
type pipeConn struct {
	net.Conn
	local, remote net.Addr
}

func (c pipeConn) LocalAddr() net.Addr  { return c.local }
func (c pipeConn) RemoteAddr() net.Addr { return c.remote }

// memTransport is one node's memberlist transport on a memNet.
type memTransport struct {
	net     *memNet
	ip      net.IP
	port    int
	addr    string
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	once    sync.Once
}

var _ memberlist.NodeAwareTransport = (*memTransport)(nil)

func (t *memTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.ip, t.port, nil
}

func (t *memTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *memTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	dest := t.net.lookup(a.Addr)
	if dest == nil {
		return now, nil // lost, as a datagram to a closed port
	}
	p := &memberlist.Packet{Buf: append([]byte(nil), b...), From: &net.UDPAddr{IP: t.ip, Port: t.port}, Timestamp: now}
	select {
	case dest.packets <- p:
	case <-dest.done:
	default: // a full receive buffer drops, as UDP's does
	}
	return now, nil
}

func (t *memTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }
func (t *memTransport) StreamCh() <-chan net.Conn           { return t.streams }

func (t *memTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *memTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return t.net.dial(ctx, a.Addr)
}

func (t *memTransport) IngestPacket(net.Conn, net.Addr, time.Time, bool) error {
	return errors.New("memnet: IngestPacket is not supported")
}

func (t *memTransport) IngestStream(net.Conn) error {
	return errors.New("memnet: IngestStream is not supported")
}

// Shutdown stops listening: the address is free again, and what is sent
// to it is lost.
func (t *memTransport) Shutdown() error {
	t.once.Do(func() {
		close(t.done)
		t.net.mu.Lock()
		if t.net.nodes[t.addr] == t {
			delete(t.net.nodes, t.addr)
		}
		t.net.mu.Unlock()
	})
	return nil
}
