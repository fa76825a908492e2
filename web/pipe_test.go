package web

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/rumorhq/rumor/broker"
)

// newPipeServer is newServer for a synctest bubble, where a sleep is
// instant and exact: the same Handler behind a real http.Server, whose
// connections are in-memory pipes instead of sockets, because the bubble
// sees a goroutine waiting on a pipe as blocked but not one waiting on a
// socket. Call it inside synctest.Test; ts.Client() and rawStream dial the
// pipes.
func newPipeServer(tb testing.TB, ho broker.Options, o Options) *testServer {
	tb.Helper()
	return startServer(tb, ho, o, func(h http.Handler) *httptest.Server {
		s := httptest.NewUnstartedServer(h)
		s.Listener.Close() // the socket it made: pipes instead
		l := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
		s.Listener = l
		s.Start()
		s.Client().Transport.(*http.Transport).DialContext = l.DialContext
		return s
	})
}

// pipeListener is a net.Listener of net.Pipe connections.
type pipeListener struct {
	conns chan net.Conn // the server's ends, to Accept
	done  chan struct{} // closed by Close
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// DialContext returns the client's end of a new connection to l, whatever
// the address.
func (l *pipeListener) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// dial opens a raw connection to ts: a pipe when ts is a pipe server, else
// TCP.
func (ts *testServer) dial(tb testing.TB) net.Conn {
	tb.Helper()
	var c net.Conn
	var err error
	if l, ok := ts.Listener.(*pipeListener); ok {
		c, err = l.DialContext(context.Background(), "", "")
	} else {
		c, err = net.DialTimeout("tcp", ts.Listener.Addr().String(), testTimeout)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
