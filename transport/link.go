package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// Tuning of the data plane. Variables of the Cluster so tests can shrink them.
type timing struct {
	dialTimeout    time.Duration // per dial and handshake
	stallTimeout   time.Duration // a link with no frame for this long is dead
	heartbeat      time.Duration // how often the tick loop runs: settling, and watermarks on idle links
	watermarkIdle  time.Duration // a link that wrote nothing for this long gets a watermark
	repairInterval time.Duration // digest exchange interval
	repairMinAge   time.Duration // events younger than this are likely in flight
	repairLimit    int           // events per repair answer
	ackTimeout     time.Duration // how long a publish waits for a peer's ack
	maxUnacked     int           // own events kept for resend per peer
	maxQueued      int           // frames queued per link before it is cut
}

func defaultTiming() timing {
	return timing{
		dialTimeout:    3 * time.Second,
		stallTimeout:   3 * time.Second,
		heartbeat:      50 * time.Millisecond,
		watermarkIdle:  time.Second,
		repairInterval: time.Second,
		repairMinAge:   500 * time.Millisecond,
		repairLimit:    4096,
		ackTimeout:     10 * time.Second,
		maxUnacked:     1 << 17,
		maxQueued:      1 << 18,
	}
}

// out is one queued frame: an event or a watermark.
type out struct {
	frame encoded // an event's, shared with the other links; held until written
	w     uint64
}

// link carries this node's events to one peer over one dialled connection
// and reads that peer's acks and repair answers back.
type link struct {
	c      *Cluster
	name   string // the peer's member name
	addr   string // the peer's gossip address, where the relay listens too
	origin uint64 // the peer's origin, from its metadata

	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}
	acked atomic.Uint64 // highest of our sequence numbers the peer has
	// first is the sequence of the first event queued on this link (0
	// until one is): the link carries every event from there on, in
	// order, so an ack at or above a later event's sequence means the peer
	// holds that event. Events before it reach the peer by resend or
	// repair, which no ack speaks for.
	first atomic.Uint64
	up    atomic.Bool
	// wrote is when the writer last flushed, in Unix nanoseconds (0 before
	// the first flush on this connection).
	wrote atomic.Int64
	down  atomic.Int64 // when the link last went down (or was made), in Unix nanoseconds; 0 while up

	caughtUp  atomic.Bool // a conclusive repair round with this peer returned nothing new
	moreAsked atomic.Bool
	// conclusive numbers, on the current connection, the first digest sent
	// at least repairMinAge after it came up; 0 until then. The peer holds
	// back events younger than that (likely still in flight), and those may
	// be events nobody will send us but repair, so only an answer to this
	// digest or a later one can show that we are caught up.
	conclusive atomic.Int64

	mu       sync.Mutex
	unacked  []*broker.Event // our events the peer has not acknowledged, in order
	queue    []out
	digest   bool // a digest is due
	lastAck  time.Time
	lastSend time.Time
}

func newLink(c *Cluster, name, addr string, origin uint64) *link {
	l := &link{
		c: c, name: name, addr: addr, origin: origin,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	l.down.Store(time.Now().UnixNano())
	return l
}

// unreachable reports whether the link has been down for longer than d.
func (l *link) unreachable(d time.Duration) bool {
	down := l.down.Load()
	return down != 0 && time.Since(time.Unix(0, down)) > d
}

func (l *link) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// send queues e, whose frame is encode's; called with the hub's lock
// held, so it only appends. encode encodes at most once for all links.
func (l *link) send(e *broker.Event, encode func() encoded) {
	l.first.CompareAndSwap(0, e.ID.Seq)
	l.mu.Lock()
	if len(l.unacked) == 0 {
		l.lastSend = time.Now()
	}
	l.unacked = append(l.unacked, e)
	if len(l.unacked) > l.c.timing.maxUnacked {
		// The peer is far behind or gone: it will repair from history.
		n := copy(l.unacked, l.unacked[len(l.unacked)/2:])
		clear(l.unacked[n:])
		l.unacked = l.unacked[:n]
	}
	if l.up.Load() {
		l.queue = append(l.queue, out{frame: encode().hold()})
	}
	l.mu.Unlock()
	l.signal()
}

// watermark queues w behind everything sent so far, replacing a watermark
// still waiting at the tail.
//
// A watermark only says "nothing of ours comes with an earlier time", and
// every event carries its own time, so a link that wrote anything in the
// last watermarkIdle needs none: positions tolerate a stale stable point
// (they mark the origins above it) and no delivery waits for one. The
// idle heartbeat keeps the peer's stall timer fed and its stable point
// moving, at one write per second per idle link instead of twenty.
func (l *link) watermark(w uint64) {
	if !l.up.Load() {
		return
	}
	if wrote := l.wrote.Load(); wrote != 0 && time.Since(time.Unix(0, wrote)) < l.c.timing.watermarkIdle {
		return
	}
	l.mu.Lock()
	if n := len(l.queue); n > 0 && l.queue[n-1].frame.b == nil {
		l.queue[n-1].w = w
	} else {
		l.queue = append(l.queue, out{w: w})
	}
	l.mu.Unlock()
	l.signal()
}

func (l *link) requestDigest() {
	l.mu.Lock()
	l.digest = true
	l.mu.Unlock()
	l.signal()
}

// ack records that the peer holds our events up to seq.
func (l *link) ack(seq uint64) {
	if seq <= l.acked.Load() {
		return
	}
	l.acked.Store(seq)
	now := time.Now()
	l.mu.Lock()
	i := 0
	for i < len(l.unacked) && l.unacked[i].ID.Seq <= seq {
		i++
	}
	if i > 0 {
		l.c.metrics.ackLatency.Observe(now.Sub(l.unacked[i-1].Born).Seconds())
	}
	n := copy(l.unacked, l.unacked[i:])
	clear(l.unacked[n:])
	l.unacked = l.unacked[:n]
	l.lastAck = now
	l.lastSend = now
	l.mu.Unlock()
	l.c.ackChanged()
}

// wedged says whether the peer has left our events unacknowledged too long.
func (l *link) wedged(after time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.unacked) > 0 && time.Since(l.lastSend) > after {
		return fmt.Errorf("relay to %s: %d events unacknowledged for %v", l.name, len(l.unacked), time.Since(l.lastSend).Round(time.Second))
	}
	return nil
}

func (l *link) pending() (queued, unacked int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue), len(l.unacked)
}

func (l *link) close() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
}

// run dials the peer and relays until the link is closed, redialling with
// backoff.
func (l *link) run() {
	defer close(l.done)
	log := l.c.log.With("peer", l.name)
	backoff := 50 * time.Millisecond
	for {
		start := time.Now()
		err := l.connect(log)
		select {
		case <-l.stop:
			return
		default:
		}
		if time.Since(start) > 5*time.Second {
			backoff = 50 * time.Millisecond
		}
		log.Debug("relay link down", "err", err, "retry", backoff)
		l.c.sealFailed(err, l.name)
		l.c.metrics.reconnects.Inc()
		t := time.NewTimer(backoff + rand.N(backoff/2+1))
		select {
		case <-l.stop:
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// connect runs one connection: handshake, resend, then the writer loop.
func (l *link) connect(log *slog.Logger) error {
	d := net.Dialer{Timeout: l.c.timing.dialTimeout}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-l.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var conn net.Conn
	var err error
	if n := l.c.network; n != nil {
		ctx, cancel := context.WithTimeout(ctx, l.c.timing.dialTimeout)
		defer cancel()
		conn, err = n.dial(ctx, l.addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", l.addr)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	sealed, _, contig, err := dialHandshake(conn, l.c.relayKey, l.c.cfg.Origin, l.origin, l.c.timing.dialTimeout)
	if err != nil {
		if !errors.Is(err, errWrongPeer) {
			l.c.metrics.authFailures.Inc()
		}
		return err
	}
	conn = sealed // from here on every byte is sealed (seal.go)
	l.ack(contig)

	// Our retained events above the peer's contig are resent with
	// everything unacked, in sequence order, before anything new: a link
	// made after we published (we or the peer just started, or the peer
	// came back after a partition) has not seen them, and digest repair
	// would bring them only after our newer events, out of order.
	var held []*broker.Event
	if contig > 0 {
		// A peer that holds none of our events yet (it, or we, just
		// started) catches up through repair, in pages.
		held = l.c.ownAbove(contig, l.c.timing.repairLimit)
	}
	l.mu.Lock()
	resend := mergeBySeq(held, l.unacked)
	clear(l.queue) // dropped unwritten: their chunks are left to the GC
	l.queue = l.queue[:0]
	l.digest = true
	l.up.Store(true)
	l.wrote.Store(0)
	l.down.Store(0)
	l.mu.Unlock()
	upAt := time.Now()
	var digests int64 // sent on this connection
	l.conclusive.Store(0)
	defer func() {
		l.up.Store(false)
		l.down.Store(time.Now().UnixNano())
	}()
	log.Info("relay link up", "resend", len(resend))

	readErr := make(chan error, 1)
	go func() { readErr <- l.read(conn) }()
	defer func() {
		conn.Close()
		<-readErr
	}()

	bw := bufio.NewWriterSize(deadlineWriter{conn, l.c.timing.stallTimeout}, 64<<10)
	var buf []byte
	for _, e := range resend {
		buf = appendFrame(buf[:0], frameEvent, appendEvent(nil, e))
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	// Our watermark follows the resent events. No lock is held here, so
	// the hub → cluster → link lock order holds.
	l.c.hub.Tick()

	var batch []out
	for {
		select {
		case <-l.stop:
			return nil
		case err := <-readErr:
			readErr <- err
			return err
		case <-l.wake:
		}
		l.mu.Lock()
		batch, l.queue = l.queue, batch[:0]
		digest := l.digest
		l.digest = false
		over := len(batch) > l.c.timing.maxQueued
		l.mu.Unlock()
		if over {
			return errors.New("peer too slow: queue full")
		}
		for i := range batch {
			o := &batch[i]
			frame := o.frame.b // encoded once for every link
			if frame == nil {
				var w [8]byte
				putU64(w[:], o.w)
				buf = appendFrame(buf[:0], frameWatermark, w[:])
				frame = buf
			}
			if _, err := bw.Write(frame); err != nil {
				return err
			}
			o.frame.release() // bw holds a copy
			*o = out{}
		}
		if digest {
			digests++
			if l.conclusive.Load() == 0 && time.Since(upAt) >= l.c.timing.repairMinAge {
				l.conclusive.Store(digests)
			}
			buf = appendFrame(buf[:0], frameDigest, appendDigest(nil, l.c.hub.Digest()))
			if _, err := bw.Write(buf); err != nil {
				return err
			}
		}
		_ = conn.SetWriteDeadline(time.Now().Add(l.c.timing.stallTimeout))
		if err := bw.Flush(); err != nil {
			return err
		}
		l.wrote.Store(time.Now().UnixNano())
	}
}

// read handles what the peer sends back: acks and repair answers.
func (l *link) read(conn net.Conn) error {
	br := bufio.NewReaderSize(conn, 64<<10)
	var buf []byte
	var repaired int
	var answered int64 // digests answered on this connection
	for {
		_ = conn.SetReadDeadline(time.Now().Add(l.c.timing.stallTimeout))
		kind, p, nb, err := readFrame(br, buf)
		buf = nb
		if err != nil {
			return err
		}
		switch kind {
		case frameAck:
			seq, err := decodeUvarint(p)
			if err != nil {
				return err
			}
			l.ack(seq)
		case frameRepair:
			e, err := decodeEvent(p)
			if err != nil {
				return err
			}
			if l.c.hub.Deliver(e) {
				repaired++
				l.c.metrics.repaired.Inc()
			}
		case frameRepairDone:
			more, err := decodeUvarint(p)
			if err != nil {
				return err
			}
			answered++
			if n := l.conclusive.Load(); repaired == 0 && more == 0 && n > 0 && answered >= n {
				l.caughtUp.Store(true)
				l.c.readyChanged()
			}
			repaired = 0
			if more != 0 {
				l.requestDigest()
			}
		default:
			return fmt.Errorf("%w: kind %d from listener", errFrame, kind)
		}
	}
}

// deadlineWriter gives every write to conn its own deadline, so a peer that
// takes no data for d is dropped however long a whole transfer (a resend, a
// repair answer) takes, and a writer can never block for longer than d.
type deadlineWriter struct {
	conn net.Conn
	d    time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	_ = w.conn.SetWriteDeadline(time.Now().Add(w.d))
	return w.conn.Write(p)
}

// ownAbove returns up to limit of this node's retained events with a
// sequence above seq, in sequence order.
func (c *Cluster) ownAbove(seq uint64, limit int) []*broker.Event {
	return c.hub.OwnAbove(seq, limit)
}

// mergeBySeq merges two lists of one origin's events, each in sequence
// order, into one without duplicates.
func mergeBySeq(a, b []*broker.Event) []*broker.Event {
	out := make([]*broker.Event, 0, len(a)+len(b))
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || len(a) > 0 && a[0].ID.Seq < b[0].ID.Seq:
			out, a = append(out, a[0]), a[1:]
		case len(a) == 0 || b[0].ID.Seq < a[0].ID.Seq:
			out, b = append(out, b[0]), b[1:]
		default:
			out, a, b = append(out, a[0]), a[1:], b[1:]
		}
	}
	return out
}
