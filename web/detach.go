package web

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// detach takes an HTTP/1.1 stream's connection over from net/http once the
// headers are written (Hijack flushes them, with chunked encoding), so
// that the handler can return: net/http's per-connection buffers, the
// request and the handler goroutine's stack, most of what an idle stream
// costs, are freed. The stream then writes the chunks itself, and a
// goroutine reading the connection closes s.gone when the client goes
// away. HTTP/2 streams, HTTP/1.0 and writers that cannot be hijacked stay
// with net/http. It reports whether it took the connection.
func (s *stream) detach(r *http.Request) bool {
	h := s.w.Header()
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 || h.Get("Content-Length") != "" || h.Get("Transfer-Encoding") != "" {
		return false // net/http would not frame the body in chunks
	}
	conn, _, err := s.rc.Hijack() // bytes a client sends after its request are read and dropped below
	if err != nil {
		return false
	}
	_ = conn.SetDeadline(time.Time{})
	gone := make(chan struct{})
	go func() { // hangUp waits for it
		defer close(gone)
		var b [64]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				return
			}
		}
	}()
	s.gone = gone
	s.w, s.rc = nil, nil // they hold net/http's connection and its buffers
	s.conn.Store(&conn)
	return true
}

// writeChunk writes b's pieces as one chunk of the chunked body, in one
// writev on a TCP connection: the pieces are not copied.
func (s *stream) writeChunk(c net.Conn, b *batch) error {
	if b.n == 0 {
		return nil // an empty chunk would end the body
	}
	hdr := append(strconv.AppendInt(b.hdr[:0], int64(b.n), 16), "\r\n"...)
	b.crlf = [2]byte{'\r', '\n'}
	b.wire = append(append(append(b.wire[:0], hdr), b.parts...), b.crlf[:])
	wire := b.wire // WriteTo consumes its receiver
	_, err := wire.WriteTo(c)
	clear(b.wire) // the pool must not keep frames alive
	return err
}

// Closing a detached stream's connection: how long the last chunk and the
// FIN have to reach the client before the socket closes, and how long the
// client has to close its end. Closing with unread bytes from the client
// would send an RST that can destroy the last bytes in flight.
const (
	lastWriteTimeout = time.Second
	lingerTimeout    = 250 * time.Millisecond
)

// hangUp ends a detached stream's response with the last chunk and closes
// the connection, since it was net/http's to reuse and is now nobody's.
// It waits for the reading goroutine. Without a connection (the stream is
// net/http's) it does nothing: the handler's return ends the response.
func (s *stream) hangUp() {
	p := s.conn.Load()
	if p == nil {
		return
	}
	c := *p
	_ = c.SetWriteDeadline(time.Now().Add(lastWriteTimeout))
	if _, err := io.WriteString(c, "0\r\n\r\n"); err == nil {
		if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			t := time.NewTimer(lingerTimeout)
			select {
			case <-s.gone:
			case <-t.C:
			}
			t.Stop()
		}
	}
	c.Close()
	<-s.gone
}

// abort closes a detached stream's connection, so that a write stuck on a
// client that stopped reading fails now. CloseStreams uses it once its
// deadline has passed; net/http's own Close no longer knows the
// connection.
func (s *stream) abort() {
	if p := s.conn.Load(); p != nil {
		(*p).Close()
	}
}
