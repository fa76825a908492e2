package web

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/broker"
)

// Sizes of the write path. A write is a list of pieces (net.Buffers, one
// writev on a detached stream): the frames the broker encoded once and
// every stream shares, and small frames copied together into one pooled
// buffer of copyBytes, so that a burst of small events is not a thousand
// pieces. Nothing larger is ever copied: a stream's write costs the node
// its pieces' headers, not its bytes. Buffers go back to a pool shared by
// all streams after each write, so an idle stream holds none.
const (
	replayChunk = 32 << 10 // replayed frames are written in chunks of about this size
	copyBytes   = 16 << 10 // small frames are copied together into one buffer of this size
	copyFrame   = 1 << 10  // frames up to this size are copied, larger ones shared
	keepBuf     = 64 << 10 // larger scratch buffers are not pooled
	keepEvents  = 1 << 14  // larger event and piece slices are not pooled
)

// Why streams end, for rumor_streams_ended_total.
const (
	endClient   = "client"   // the client went away
	endWrite    = "write"    // a write failed or timed out
	endSlow     = "slow"     // the subscriber fell a whole queue behind
	endShutdown = "shutdown" // CloseStreams
	endClosed   = "closed"   // the hub closed
	endExpired  = "expired"  // the stream's token expired
	endRevoked  = "revoked"  // the stream's token was revoked
	endKicked   = "kicked"   // an admin ended the streams of its subject or channels
)

// Why streams were refused, for rumor_streams_rejected_total; a closed hub
// is endClosed.
const (
	rejectLimit       = "limit"        // MaxStreams open on this node
	rejectClientLimit = "client_limit" // MaxStreamsPerClient open from the client's address
	rejectDraining    = "draining"     // the node is draining
)

// stream is one open SSE response. One goroutine writes it: the request's
// handler goroutine, or once an HTTP/1.1 stream has taken its connection
// over (detach), the goroutine the handler started for it.
type stream struct {
	h       *Handler
	w       http.ResponseWriter // nil once detached
	rc      *http.ResponseController
	conn    atomic.Pointer[net.Conn] // set once detached: the stream writes chunks to it
	gone    <-chan struct{}          // closed when the client went away
	stop    chan struct{}            // closed by CloseStreams
	stopped atomic.Bool
	expires time.Time // when the stream's token expires; zero without one
	// Who and what, for revocations and kicks (revoke.go); fixed before
	// the stream is registered.
	who      *auth.Principal  // the stream's token; nil without one
	patterns []broker.Pattern // what it subscribed to
	opened   time.Time
	kick     chan string // a reason to end now: endRevoked or endKicked
	rearm    time.Time   // when deadline next moves the write deadline
	sub      *broker.Subscription
	lastID   []byte                     // the id line of the last frame sent (frames are shared and immutable), or of the resume position
	framer   func(*broker.Event) []byte // the frame of an event for another face (Mercure); nil means the broker's
	wrote    time.Time                  // when deliver last wrote
	linger   *time.Timer
}

// frame returns e's SSE bytes for this stream: nearly always the frame the
// broker encoded once for every stream, whose id line is the event's own id
// and, after "~", what a resume on any node needs (see broker.Position).
func (s *stream) frame(e *broker.Event) []byte {
	if s.framer != nil {
		f := s.framer(e)
		s.lastID = f
		return f
	}
	f := s.sub.Frame(e)
	s.lastID = f
	return f
}

// lastEventID returns the id the client holds: that of the last event sent,
// or the position it resumed from.
func (s *stream) lastEventID() string {
	line, _, _ := bytes.Cut(s.lastID, []byte("\n"))
	return string(bytes.TrimPrefix(line, []byte("id: ")))
}

// batch is what a stream needs while it writes: the drained events and the
// pieces of the write.
type batch struct {
	evs    []*broker.Event
	buf    []byte      // scratch: copied small frames, or a whole small write; never grown while parts refer to it
	parts  net.Buffers // the write: pieces of buf and shared frames
	n      int         // bytes in parts
	copied bool        // the last of parts is a copy at the end of buf
	wire   net.Buffers // parts framed as one chunk
	hdr    [18]byte    // a chunk's size line
	crlf   [2]byte     // a chunk's end
}

// add appends p to the write: a small p is copied into buf while it has
// room, a large one is shared.
func (b *batch) add(p []byte) {
	if len(p) == 0 {
		return
	}
	b.n += len(p)
	if cap(b.buf) == 0 {
		b.buf = make([]byte, 0, copyBytes)
	}
	if len(p) > copyFrame || len(b.buf)+len(p) > cap(b.buf) {
		b.parts = append(b.parts, p)
		b.copied = false
		return
	}
	start := len(b.buf)
	b.buf = append(b.buf, p...) // within cap: the pieces already in buf stay valid
	if last := len(b.parts) - 1; b.copied {
		b.parts[last] = b.buf[start-len(b.parts[last]):] // the last piece was copied just before
		return
	}
	b.parts = append(b.parts, b.buf[start:])
	b.copied = true
}

// reset empties the write, keeping its buffers.
func (b *batch) reset() {
	clear(b.parts) // the pool must not keep frames alive
	b.parts, b.buf, b.n, b.copied = b.parts[:0], b.buf[:0], 0, false
}

// handleStream serves GET /channels/{channel} and GET /events?channel=...:
// the events of one or several channels and patterns as text/event-stream.
func (h *Handler) handleStream(w http.ResponseWriter, r *http.Request) {
	patterns, err := h.patterns(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	who, aerr := h.authorizeStream(r, patterns)
	if aerr != nil {
		h.refuse(w, r, aerr)
		return
	}
	after, badHeader, err := resumePoint(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	envelope, last, since, err := streamOptions(r, time.Now()) // envelope.go
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if after.IsZero() && !badHeader {
		after = since // a first connection with ?since=; zero without
	}
	client := h.clientAddr(r)
	if !h.acquireClient(client) {
		h.shed(w, r, rejectClientLimit)
		return
	}
	s := h.newStream(w)
	s.who, s.patterns, s.opened = who, patterns, time.Now()
	if who != nil {
		s.expires = who.Expires
	}
	if reason, ok := h.register(s); !ok {
		h.releaseClient(client)
		h.shed(w, r, reason)
		return
	}
	// A revocation taken while this stream was not yet registered found
	// it in no scan (revoke.go): the table has it now.
	if aerr := h.opts.Revocations.Check(who); aerr != nil {
		h.unregister(s)
		h.releaseClient(client)
		h.refuse(w, r, aerr)
		return
	}
	sub, err := h.hub.Subscribe(broker.SubscribeRequest{Patterns: patterns, From: after, Last: last, Envelope: envelope})
	if err != nil {
		h.subscribeFailed(w, r, s, client, err)
		return
	}
	// From here the stream holds the subscription, its place in h.streams,
	// its client's slot and its place in presence (counted before its
	// client gets the 200), and gives them back when it ends.
	leave := h.present(s)
	serve := func() {
		defer h.unregister(s) // last: CloseStreams waits for the whole stream
		defer h.releaseClient(client)
		defer s.hangUp()
		defer sub.Close()
		defer leave()
		reason := s.run(sub, after, badHeader)
		h.metrics.streamsEnded.WithLabelValues(reason).Inc()
	}
	writeStreamHeader(w, r)
	s.gone = r.Context().Done()
	if !s.detach(r) {
		serve()
		return
	}
	path := r.URL.Path
	go func() { // CloseStreams waits for it
		defer func() {
			// Out of the handler, recoverer no longer guards the stream.
			if v := recover(); v != nil {
				h.log.Error("stream panic", "path", path, "panic", v)
			}
		}()
		serve()
	}()
}

func (h *Handler) newStream(w http.ResponseWriter) *stream {
	return &stream{h: h, w: w, rc: http.NewResponseController(w), stop: make(chan struct{}), kick: make(chan string, 1)}
}

// close asks the stream to end with a retry: line. Safe to call more than once.
func (s *stream) close() {
	if !s.stopped.Swap(true) {
		close(s.stop)
	}
}

// run writes the stream, once its headers are written, until it ends and
// says why it ended.
func (s *stream) run(sub *broker.Subscription, after broker.Position, badHeader bool) string {
	s.sub = sub
	if !after.IsZero() {
		s.lastID = after.Append([]byte("id: "))
	}
	b := s.h.getBatch()
	b.add(s.h.appendPreamble(nil))
	switch {
	case badHeader:
		// Answering 400 would stop the browser for good; a reset tells it
		// to refetch its state, and the stream goes on live.
		b.add(broker.ResetFrame(""))
	case sub.Reset:
		b.add(broker.ResetFrame(after.String()))
	}
	err := s.replay(b, sub.Replay)
	sub.Replay = nil // the history keeps the events; the stream needs them no longer
	s.h.putBatch(b)
	if err != nil {
		return endWrite
	}

	heartbeat := time.NewTimer(s.h.opts.Heartbeat)
	defer heartbeat.Stop()
	var expired <-chan time.Time // nil without a token: never
	if !s.expires.IsZero() {
		t := time.NewTimer(time.Until(s.expires))
		defer t.Stop()
		expired = t.C
	}
	for {
		select {
		case <-s.gone:
			return endClient
		case <-expired:
			// Events still queued stay in history: the client resumes
			// with Last-Event-ID once it has a fresh token (session.go).
			s.endSession(endExpired)
			return endExpired
		case reason := <-s.kick: // revoked or kicked (revoke.go)
			s.endSession(reason)
			return reason
		case <-s.stop:
			_, reason := s.deliver(sub, true)
			return reason
		case <-heartbeat.C:
			if s.writeString(": ping\n") != nil {
				return endWrite
			}
			heartbeat.Reset(s.h.opts.Heartbeat)
		case <-sub.Ready():
			if reason := s.coalesce(); reason != "" {
				if reason == endShutdown {
					_, reason = s.deliver(sub, true)
				}
				return reason
			}
			wrote, reason := s.deliver(sub, false)
			if reason != "" {
				return reason
			}
			if wrote {
				heartbeat.Reset(s.h.opts.Heartbeat)
			}
		}
	}
}

// coalesce makes a busy stream write at most once per Options.Coalesce:
// when events are ready less than that after the stream's last write, it
// waits for the rest of the interval, so that the events arriving
// meanwhile share one write. One write per event per stream is what a
// fan-out costs (a goroutine wake and a write system call each, for the
// server and again for the client reading); sharing writes under load
// costs at most Coalesce of latency, and an event that comes after a
// quiet spell goes out at once. It returns why the stream must end, if it
// must: endShutdown means CloseStreams asked and the events are still to
// be written.
func (s *stream) coalesce() string {
	wait := s.h.opts.Coalesce - time.Since(s.wrote)
	if s.h.opts.Coalesce <= 0 || wait <= 0 {
		return ""
	}
	if s.linger == nil {
		s.linger = time.NewTimer(wait)
	} else {
		s.linger.Reset(wait)
	}
	select {
	case <-s.linger.C:
		return ""
	case <-s.gone:
		s.linger.Stop()
		return endClient
	case <-s.stop:
		s.linger.Stop()
		return endShutdown
	}
}

// replay writes the preamble already in b and then the replayed events, in
// writes of about replayChunk bytes.
func (s *stream) replay(b *batch, events []*broker.Event) error {
	for _, e := range events {
		if b.n >= replayChunk {
			if err := s.writeParts(b); err != nil {
				return err
			}
		}
		b.add(s.frame(e))
	}
	return s.writeParts(b)
}

// deliver drains every queued event and writes their frames in one write.
// When the stream ends (the subscriber fell behind, the hub closed, or
// stopping is set by CloseStreams) the same write carries a retry: and a
// comment. It reports whether it wrote, and why the stream ended if it did.
func (s *stream) deliver(sub *broker.Subscription, stopping bool) (wrote bool, reason string) {
	b := s.h.getBatch()
	defer s.h.putBatch(b)
	// This Drain takes what the pending wake was for; a push after it
	// signals again.
	select {
	case <-sub.Ready():
	default:
	}
	var err error
	b.evs, err = sub.Drain(b.evs[:0])
	var retry time.Duration
	var why string
	switch {
	case errors.Is(err, broker.ErrSlow):
		reason, retry, why = endSlow, jitter(s.h.opts.Retry, 3*time.Second), "too slow: reconnect with Last-Event-ID"
	case err != nil:
		reason, retry, why = endClosed, jitter(s.h.opts.Retry, 5*time.Second), "node shutting down: reconnect"
	case stopping:
		reason, retry, why = endShutdown, jitter(s.h.opts.Retry, 5*time.Second), "node shutting down: reconnect"
	case len(b.evs) == 0:
		return false, "" // a wake for events an earlier Drain took
	}
	// Until the write is done the events count against the stream's
	// QueueBytes; a write stuck on a stalled client holds them, not more.
	defer sub.Release()
	for _, e := range b.evs {
		b.add(s.frame(e))
	}
	if reason != "" {
		b.add(append(appendComment(appendRetry(nil, retry), why), '\n'))
	}
	if err := s.writeParts(b); err != nil {
		return false, endWrite
	}
	s.wrote = time.Now()
	s.h.metrics.observeDelivery(b.evs, s.wrote)
	return true, reason
}

// end writes a retry: hint and a comment; the stream ends after it.
func (s *stream) end(retry time.Duration, why string) {
	_ = s.write(append(appendComment(appendRetry(nil, retry), why), '\n'))
}

// writeParts sends b's pieces as one write and flushes them, then empties
// b. Through net/http each piece is a Write (net/http copies through its
// own fixed buffer); a detached stream sends one chunk with one writev.
func (s *stream) writeParts(b *batch) error {
	defer b.reset()
	if b.n == 0 {
		return nil
	}
	if err := s.deadline(); err != nil {
		return err
	}
	if c := s.conn.Load(); c != nil {
		return s.writeChunk(*c, b)
	}
	for _, p := range b.parts {
		if _, err := s.w.Write(p); err != nil {
			return err
		}
	}
	return s.rc.Flush()
}

// write sends p and flushes it, under a fresh write deadline: the
// http.Server has no WriteTimeout, because streams live for hours.
func (s *stream) write(p []byte) error {
	if err := s.deadline(); err != nil {
		return err
	}
	if c := s.conn.Load(); c != nil {
		b := s.h.getBatch()
		defer s.h.putBatch(b)
		b.parts, b.n = append(b.parts, p), len(p)
		return s.writeChunk(*c, b)
	}
	if _, err := s.w.Write(p); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *stream) writeString(p string) error {
	if s.conn.Load() != nil {
		return s.write([]byte(p))
	}
	if err := s.deadline(); err != nil {
		return err
	}
	if _, err := io.WriteString(s.w, p); err != nil {
		return err
	}
	return s.rc.Flush()
}

// deadline gives the write about to start WriteTimeout to finish, give or
// take a tenth: moving a connection's deadline updates a runtime timer,
// which cost more than the rest of a one-event write's bookkeeping, so it
// moves only once a tenth of WriteTimeout has passed since it last did.
func (s *stream) deadline() error {
	now := time.Now()
	if now.Before(s.rearm) {
		return nil
	}
	s.rearm = now.Add(s.h.opts.WriteTimeout / 10)
	if c := s.conn.Load(); c != nil {
		return (*c).SetWriteDeadline(now.Add(s.h.opts.WriteTimeout))
	}
	err := s.rc.SetWriteDeadline(now.Add(s.h.opts.WriteTimeout))
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

// shed answers a stream that cannot be served now with 200, a jittered
// retry: and a comment, and ends it: a browser's EventSource gives up for
// good on any other status.
func (h *Handler) shed(w http.ResponseWriter, r *http.Request, reason string) {
	h.metrics.streamsRejected.WithLabelValues(reason).Inc()
	retry, why := jitter(h.opts.Retry, 5*time.Second), "node shutting down: reconnect"
	switch reason {
	case rejectLimit:
		retry, why = jitter(5*time.Second, 10*time.Second), "too many streams on this node: retry later"
	case rejectClientLimit:
		retry, why = jitter(5*time.Second, 10*time.Second), "too many streams from your address: retry later"
	}
	writeStreamHeader(w, r)
	s := h.newStream(w)
	s.end(retry, why)
}

// writeStreamHeader sends the event-stream headers; the first write flushes
// them with the preamble.
func writeStreamHeader(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no") // nginx and friends must not buffer the stream
	if r.ProtoMajor == 1 && r.ProtoMinor == 1 {
		hd.Set("Connection", "keep-alive") // HTTP/2 forbids the header
	}
	w.WriteHeader(http.StatusOK)
}

// appendPreamble appends what every stream starts with: the reconnect
// delay and a comment naming the node, which also gets bytes through
// proxies at once.
func (h *Handler) appendPreamble(b []byte) []byte {
	b = appendRetry(b, h.opts.Retry)
	b = appendComment(b, "rumor "+h.nodeName())
	return append(b, '\n')
}

func appendRetry(b []byte, d time.Duration) []byte {
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, d.Milliseconds(), 10)
	return append(b, '\n')
}

// appendComment appends ": text"; line breaks in text become spaces, so it
// stays one comment.
func appendComment(b []byte, text string) []byte {
	b = append(b, ": "...)
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == '\n' || c == '\r' {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, '\n')
}

func (h *Handler) getBatch() *batch { return h.batches.Get().(*batch) }

func (h *Handler) putBatch(b *batch) {
	if cap(b.buf) > keepBuf || cap(b.evs) > keepEvents || cap(b.parts) > keepEvents {
		return
	}
	clear(b.evs) // the pool must not keep events alive
	b.evs = b.evs[:0]
	b.reset()
	h.batches.Put(b)
}

// patterns reads what a stream subscribes to: the {channel} route
// parameter, or every ?channel= of GET /events.
func (h *Handler) patterns(r *http.Request) ([]broker.Pattern, error) {
	names := r.URL.Query()["channel"]
	if chi.URLParam(r, "channel") != "" {
		names = []string{pathChannel(r)}
	}
	if len(names) == 0 {
		return nil, errors.New("no channel: add ?channel=NAME, once per channel or pattern")
	}
	if len(names) > h.opts.MaxPatterns {
		return nil, fmt.Errorf("%d channels and patterns in one stream: at most %d", len(names), h.opts.MaxPatterns)
	}
	out := make([]broker.Pattern, 0, len(names))
	for _, n := range names {
		p, err := broker.ParsePattern(n)
		if err != nil {
			return nil, err
		}
		if err := checkStreamPattern(p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// resumePoint reads where a stream resumes: the Last-Event-ID header a
// reconnecting EventSource sends, else the lastEventId query parameter of a
// first connection. A malformed query is the caller's mistake (400); a
// malformed header is reported as badHeader, because a browser that gets a
// 400 never reconnects.
func resumePoint(r *http.Request) (after broker.Position, badHeader bool, err error) {
	if v := strings.TrimSpace(r.Header.Get("Last-Event-ID")); v != "" {
		p, err := broker.ParsePosition(v)
		return p, err != nil, nil
	}
	if v := r.URL.Query().Get("lastEventId"); v != "" {
		p, err := broker.ParsePosition(v)
		if err != nil {
			return broker.Position{}, false, fmt.Errorf("lastEventId: %w", err)
		}
		return p, false, nil
	}
	return broker.Position{}, false, nil
}

// subscribeFailed answers a stream whose hub subscription failed, after
// giving back what the stream held: its place in h.streams and its
// client's slot. Shared by rumor's streams and the Mercure face.
func (h *Handler) subscribeFailed(w http.ResponseWriter, r *http.Request, s *stream, client string, err error) {
	h.unregister(s)
	h.releaseClient(client)
	if errors.Is(err, broker.ErrClosed) {
		h.shed(w, r, endClosed)
		return
	}
	status, _ := classify(err)
	writeError(w, status, err.Error())
}
