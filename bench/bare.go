package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// Bare is the reference a run's numbers are compared with: the least a Go
// server must do to speak rumor's HTTP surface, and nothing else. One map
// of channels under one lock; a publish frames its event once (id: and one
// data: line per line) and appends the frame to every subscriber's pending
// bytes; each subscriber's handler goroutine writes everything pending in
// one write. No history, no ids worth resuming from, no heartbeats, no
// limits beyond a cap on what a subscriber may owe, no cluster.
//
// It serves POST /channels/{channel}, GET /channels/{channel}, a /metrics
// with the memory gauges a run reads, and /debug/pprof/ (a heap profile
// with ?gc=1 collects first). Create it with NewBare; it is an
// http.Handler. Close ends its streams.
type Bare struct {
	mux *http.ServeMux

	mu       sync.Mutex
	seq      uint64
	channels map[string]*bareChannel
	closed   bool
	done     chan struct{}
	peers    []net.Conn // with RelayTo: every publish is written to each
	out      []byte     // the relay frame being written
}

type bareChannel struct{ subs map[*bareSub]struct{} }

// bareSub is one stream: what it owes its client, and a wake-up.
type bareSub struct {
	mu      sync.Mutex
	pending []byte
	over    bool // owed more than maxOwed: the stream ends
	wake    chan struct{}
}

// maxOwed bounds the bytes a subscriber may fall behind before it is cut
// off, so that a stalled client cannot grow the server without bound.
const maxOwed = 16 << 20

// maxBody bounds a publish, as rumor's default --max-event-bytes does.
const maxBody = 1 << 20

// NewBare returns a Bare with no channels.
func NewBare() *Bare {
	b := &Bare{channels: make(map[string]*bareChannel), done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /channels/{channel}", b.publish)
	mux.HandleFunc("GET /channels/{channel}", b.stream)
	mux.HandleFunc("GET /metrics", serveMemMetrics)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	b.mux = mux
	return b
}

// ServeHTTP implements http.Handler.
func (b *Bare) ServeHTTP(w http.ResponseWriter, r *http.Request) { b.mux.ServeHTTP(w, r) }

// Close ends every stream; new ones end at once. Safe to call more than once.
func (b *Bare) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
}

// publish serves POST /channels/{channel}.
func (b *Bare) publish(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil || len(data) == 0 {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	ch := r.PathValue("channel")
	b.mu.Lock()
	seq := b.fanout(ch, data)
	if len(b.peers) > 0 {
		b.relay(ch, data)
	}
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, "{\"id\":\"%d\",\"channel\":%q}\n", seq, ch)
}

// fanout frames one event and hands it to every subscriber of ch. Called
// with b.mu held.
func (b *Bare) fanout(ch string, data []byte) uint64 {
	b.seq++
	seq := b.seq
	frame := appendBareFrame(make([]byte, 0, len(data)+32), seq, data)
	var subs map[*bareSub]struct{}
	if c := b.channels[ch]; c != nil {
		subs = c.subs
	}
	for s := range subs {
		s.mu.Lock()
		if len(s.pending)+len(frame) > maxOwed {
			s.over = true
		} else {
			s.pending = append(s.pending, frame...)
		}
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return seq
}

// appendBareFrame is SSE framing: id:, then one data: line per line of
// data (split at CR, LF and CRLF), then a blank line.
func appendBareFrame(dst []byte, id uint64, data []byte) []byte {
	dst = append(dst, "id: "...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, "\ndata: "...)
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\r':
			if i+1 < len(data) && data[i+1] == '\n' {
				i++
			}
			dst = append(dst, "\ndata: "...)
		case '\n':
			dst = append(dst, "\ndata: "...)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, "\n\n"...)
}

// stream serves GET /channels/{channel}.
func (b *Bare) stream(w http.ResponseWriter, r *http.Request) {
	ch := r.PathValue("channel")
	s := &bareSub{wake: make(chan struct{}, 1)}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		http.Error(w, "closed", http.StatusServiceUnavailable)
		return
	}
	c := b.channels[ch]
	if c == nil {
		c = &bareChannel{subs: make(map[*bareSub]struct{})}
		b.channels[ch] = c
	}
	c.subs[s] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(c.subs, s)
		if len(c.subs) == 0 && b.channels[ch] == c {
			delete(b.channels, ch)
		}
		b.mu.Unlock()
	}()

	// Subscribed before the headers go out: a client that has them misses
	// nothing published after.
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return
	}
	var spare []byte
	for {
		select {
		case <-r.Context().Done():
			return
		case <-b.done:
			return
		case <-s.wake:
		}
		s.mu.Lock()
		p, over := s.pending, s.over
		s.pending = spare[:0]
		s.mu.Unlock()
		if over {
			return
		}
		if _, err := w.Write(p); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		spare = p
	}
}

// serveMemMetrics serves GET /metrics: the memory gauges and CPU time a
// run reads, with the names the Prometheus Go and process collectors give
// them.
func serveMemMetrics(w http.ResponseWriter, r *http.Request) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "go_goroutines %d\n", runtime.NumGoroutine())
	fmt.Fprintf(w, "go_memstats_heap_alloc_bytes %d\n", m.HeapAlloc)
	fmt.Fprintf(w, "go_memstats_heap_inuse_bytes %d\n", m.HeapInuse)
	fmt.Fprintf(w, "go_memstats_stack_inuse_bytes %d\n", m.StackInuse)
	if rss, err := readRSS(os.Getpid()); err == nil {
		fmt.Fprintf(w, "process_resident_memory_bytes %d\n", rss.RSS)
	}
	if cpu, err := readCPU(os.Getpid()); err == nil {
		fmt.Fprintf(w, "process_cpu_seconds_total %g\n", cpu)
	}
}

// ServeBare serves a Bare on ln until ctx ends, then ends its streams and
// shuts the server down.
func ServeBare(ctx context.Context, ln net.Listener) error {
	return ServeBareRelay(ctx, ln, nil, nil)
}

// ServeBareRelay is ServeBare as one of a bare cluster: it fans out the
// events peers relay to relayLn (if not nil), and writes every publish to
// the relay listeners at relayTo, dialled first.
func ServeBareRelay(ctx context.Context, ln, relayLn net.Listener, relayTo []string) error {
	b := NewBare()
	if relayLn != nil {
		go func() { _ = b.ServeRelay(relayLn) }()
		defer relayLn.Close()
	}
	if err := b.RelayTo(ctx, relayTo); err != nil {
		return err
	}
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-served:
		b.Close()
		return err
	}
	b.Close() // streams end, so Shutdown need not wait for them
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
