package broker

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Relay carries events published on this node to the other nodes. The hub
// calls Send and Watermark with its lock held, in ID order; they must queue
// and return at once. Acked may block.
type Relay interface {
	// Send queues e for every peer.
	Send(e *Event)
	// Watermark queues, after everything sent before it, the promise that
	// no event this node sends later has a Time at or below w.
	Watermark(w uint64)
	// Acked returns once a live peer has acknowledged e (or every event
	// after it), or at once when no peer is live.
	Acked(ctx context.Context, e *Event) error
	// AckedAll returns once every live member holds e, or at once when no
	// peer is live. It may give up with an error; e stays published.
	AckedAll(ctx context.Context, e *Event) error
}

// ErrBadData reports a payload that is not UTF-8 or is empty.
var ErrBadData = errors.New("invalid event data")

// ErrJoining reports a publish on a node that has not caught up with the
// cluster (see Hub.Settle) within Options.SettleWait: its clock may still be
// behind what other nodes have promised, so the events it would publish now
// could slip under positions already written. Retry, or use another node.
var ErrJoining = errors.New("this node is still joining the cluster")

// Options configures a Hub. Zero values mean the documented defaults.
type Options struct {
	Origin          uint64        // this node's incarnation; 0 means random
	HistorySize     int           // events retained per channel; 0 means 1000, negative means none
	HistoryTTL      time.Duration // how long events are retained; 0 means 5m
	HistoryBytes    int64         // retained bytes across all channels; 0 means 256 MiB
	QueueSize       int           // events queued per subscriber before it is cut off as slow; 0 means 8192 (a ring that grows as needed: idle subscribers stay small)
	QueueBytes      int64         // bytes of events a subscriber holds, queued or drained and not yet released, before it is cut off as slow; 0 means 8 MiB (one event always fits)
	IdempotencyTTL  time.Duration // how long idempotency keys are remembered; 0 means 10m
	IdempotencyKeys int           // how many keys are remembered at most; 0 means 100,000
	GapTimeout      time.Duration // how long a missing event is waited for before it is given up; 0 means 10s
	SettleWait      time.Duration // how long Publish waits for a joining node to catch up (Settle) before ErrJoining; 0 means 10s
	Relay           Relay         // nil means a single node
	Now             func() time.Time
	Logger          *slog.Logger // nil means discard
}

// Stats are the hub's counters, for metrics.
type Stats struct {
	Published       uint64 // events published on this node
	Received        uint64 // events from peers, stored here
	Delivered       uint64 // events queued to local subscribers
	Dropped         uint64 // events not queued because a subscriber was full
	SlowDisconnects uint64 // subscribers cut off for falling behind
	Duplicates      uint64 // events from peers that were already here
	Late            uint64 // events that arrived after a position written here had claimed them (see Position)
	GapsAbandoned   uint64 // missing sequence numbers given up on
	Pending         int    // events held behind a gap in their origin's sequence
	HistoryEvents   int
	HistoryBytes    int64
	Channels        int
	Subscribers     int
	Peers           int   // peers whose watermarks bound the positions written here
	SubscriberBytes int64 // bytes of events subscribers hold against Options.QueueBytes: queued, or drained and not yet released
}

// ChannelInfo describes an active channel.
type ChannelInfo struct {
	Name          string    `json:"name"`
	Subscribers   int       `json:"subscribers"`
	Events        int       `json:"events"` // retained
	Bytes         int64     `json:"bytes"`  // retained
	Published     uint64    `json:"published"`
	LastPublished time.Time `json:"lastPublished,omitzero"`
}

// Hub fans events out to local subscribers, keeps history, dedupes and
// keeps each origin's events in sequence order. All methods are safe for
// concurrent use.
type Hub struct {
	opts   Options
	log    *slog.Logger
	origin uint64
	clock  Clock
	now    func() time.Time

	mu        sync.Mutex
	seq       uint64
	channels  map[string]*channel
	indexes   map[string]func(*Event) []string // Index: channels whose subscribers are offered events by key
	wild      map[*Subscription]struct{}       // subscriptions with wildcard patterns
	hist      history
	seen      map[uint64]*seen
	orders    map[uint64]*originState // per origin: sequence order and what positions may claim
	idem      idempotency
	peers     map[uint64]struct{} // origins whose watermarks bound Stable (their links are up)
	stable    uint64              // the largest Stable any position written here carried
	settled   bool                // caught up with the cluster (see Settle)
	settledCh chan struct{}       // closed once settled
	arrivals  uint64              // events stored so far: the local arrival order
	forgotten evicted             // what channels dropped since had evicted
	subs      int
	closed    bool

	published, received, delivered, dropped, slow, dups, late, abandoned atomic.Uint64
	held                                                                 atomic.Int64 // bytes subscribers hold: Stats.SubscriberBytes

	stop chan struct{}
	wg   sync.WaitGroup
}

// NewHub returns a running hub. Call Close to stop it.
func NewHub(opts Options) *Hub {
	if opts.HistorySize == 0 {
		opts.HistorySize = 1000
	}
	if opts.HistorySize < 0 {
		opts.HistorySize = 0
	}
	opts.HistoryTTL = cmp.Or(opts.HistoryTTL, 5*time.Minute)
	opts.HistoryBytes = cmp.Or(opts.HistoryBytes, 256<<20)
	opts.QueueSize = cmp.Or(opts.QueueSize, 8192)
	opts.QueueBytes = cmp.Or(opts.QueueBytes, 8<<20)
	opts.IdempotencyTTL = cmp.Or(opts.IdempotencyTTL, 10*time.Minute)
	opts.IdempotencyKeys = cmp.Or(opts.IdempotencyKeys, 100_000)
	opts.GapTimeout = cmp.Or(opts.GapTimeout, 10*time.Second)
	opts.SettleWait = cmp.Or(opts.SettleWait, 10*time.Second)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Origin == 0 {
		opts.Origin = NewOrigin()
	}
	h := &Hub{
		opts:     opts,
		log:      opts.Logger,
		origin:   opts.Origin,
		clock:    Clock{Now: opts.Now},
		now:      opts.Now,
		channels: make(map[string]*channel),
		wild:     make(map[*Subscription]struct{}),
		seen:     make(map[uint64]*seen),
		orders:   make(map[uint64]*originState),
		peers:    make(map[uint64]struct{}),
		idem:     idempotency{ttl: opts.IdempotencyTTL, limit: opts.IdempotencyKeys},
		stop:     make(chan struct{}),
	}
	h.hist = history{
		size:    opts.HistorySize,
		ttl:     opts.HistoryTTL,
		budget:  opts.HistoryBytes,
		origins: make(map[uint64]*originLog),
		channel: func(name string) *channel { return h.channels[name] },
	}
	h.settledCh = make(chan struct{})
	if opts.Relay == nil {
		h.settle() // alone: nothing to catch up with
	}
	h.wg.Add(1)
	go h.sweep()
	return h
}

// NewOrigin returns a random non-zero node incarnation.
func NewOrigin() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if o := binary.LittleEndian.Uint64(b[:]); o != 0 {
			return o
		}
	}
}

// Origin returns this node's incarnation, the Origin of the IDs it assigns.
func (h *Hub) Origin() uint64 { return h.origin }

// Publish validates and publishes msgs, all or none, and returns their IDs in
// order. With AckPeer it returns once a live peer acknowledged them; if that
// fails the events are still published here and the error says so. A
// message whose idempotency key was seen before (or earlier in the same
// batch) gets the first publish's id and is not published again; replayed
// reports whether any message was. An empty batch is ErrBadData.
func (h *Hub) Publish(ctx context.Context, msgs []Message, ack Ack) (ids []ID, replayed bool, err error) {
	if len(msgs) == 0 {
		return nil, false, fmt.Errorf("%w: no messages", ErrBadData)
	}
	for i, m := range msgs {
		if err := validate(m); err != nil {
			if len(msgs) > 1 {
				return nil, false, fmt.Errorf("message %d: %w", i, err)
			}
			return nil, false, err
		}
	}
	now := h.now()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, false, ErrClosed
	}
	if !h.settled {
		// Publishing waits (bounded) for the node to catch up: see Settle.
		h.mu.Unlock()
		if err := h.awaitSettled(ctx); err != nil {
			return nil, false, err
		}
		return h.Publish(ctx, msgs, ack)
	}
	ids = make([]ID, len(msgs))
	h.idem.expire(now)    // a key is never honoured past its TTL
	var last, wait *Event // wait: a replayed event of ours
	for i, m := range msgs {
		// Each message with a known key (from an earlier publish, a peer,
		// or earlier in this batch) gets its first id and is not published
		// again; the others are.
		if m.Key != "" {
			if id, ok := h.idem.get(m.Key); ok {
				ids[i] = id
				replayed = true
				if id.Origin == h.origin && (wait == nil || id.Seq > wait.ID.Seq) {
					// A retry waits for its acks as the first publish
					// did: that one may have timed out.
					wait = &Event{ID: id}
				}
				continue
			}
		}
		h.seq++
		e := &Event{
			ID:      ID{Time: h.clock.Next(), Origin: h.origin, Seq: h.seq},
			Channel: m.Channel,
			Type:    m.Type,
			Data:    m.Data,
			Key:     m.Key,
			Born:    now,
		}
		ids[i] = e.ID
		h.seenOf(h.origin).add(e.ID.Seq, now)
		if m.Key != "" {
			h.idem.put(m.Key, e.ID, now)
		}
		if h.opts.Relay != nil {
			h.opts.Relay.Send(e)
		}
		// Our own events are in sequence by construction: out at once.
		h.admit(e, now)
		h.published.Add(1)
		last = e
	}
	h.mu.Unlock()
	if wait != nil && (last == nil || wait.ID.Seq > last.ID.Seq) {
		last = wait
	}
	if ack == AckPeer && h.opts.Relay != nil && last != nil {
		if err := h.opts.Relay.Acked(ctx, last); err != nil {
			return ids, replayed, fmt.Errorf("no peer acknowledged %v: %w", last.ID, err)
		}
	}
	if ack == AckAll && h.opts.Relay != nil && last != nil {
		if err := h.opts.Relay.AckedAll(ctx, last); err != nil {
			return ids, replayed, fmt.Errorf("not every member acknowledged %v: %w", last.ID, err)
		}
	}
	return ids, replayed, nil
}

func validate(m Message) error {
	if err := ValidateEventChannel(m.Channel); err != nil {
		return err
	}
	if m.Type != "" {
		if err := ValidateType(m.Type); err != nil {
			return err
		}
	}
	if len(m.Data) == 0 {
		return fmt.Errorf("%w: empty (an SSE event without data is never dispatched)", ErrBadData)
	}
	if !utf8.Valid(m.Data) {
		return fmt.Errorf("%w: not UTF-8", ErrBadData)
	}
	return nil
}

// Deliver takes an event from a peer: the one door for remote events. It
// drops duplicates, then stores and fans the event out at once, unless it
// would overtake a missing event of its origin (then it waits for it). It
// never relays. It reports whether the event was new. The hub owns e from
// here: it must not be given to another hub.
func (h *Hub) Deliver(e *Event) bool {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	if !h.seenOf(e.ID.Origin).add(e.ID.Seq, now) {
		h.dups.Add(1)
		return false
	}
	if e.Key != "" {
		h.idem.put(e.Key, e.ID, now)
	}
	h.clock.Observe(e.ID.Time)
	h.received.Add(1)
	h.admit(e, now)
	return true
}

// PeerUp says origin's link is up and w is its first watermark: positions
// written here keep Stable at or below its watermark, so that they name the
// peer's recent events only while it is up. Nothing waits for a peer:
// delivery never does.
func (h *Hub) PeerUp(origin, w uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clock.Observe(w)
	h.peers[origin] = struct{}{}
	st := h.state(origin)
	st.mark = max(st.mark, w)
}

// Advance records origin's watermark: it will send no event at or below w,
// so every event of origin at or below w that this node will ever get from
// it over its link is here.
func (h *Hub) Advance(origin, w uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clock.Observe(w)
	st := h.state(origin)
	st.mark = max(st.mark, w)
}

// Member says origin is a member of the cluster (memberlist told us), so
// positions written here name it until its watermark covers them, even
// before its first event or watermark arrives.
func (h *Hub) Member(origin uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if origin != h.origin {
		h.state(origin)
	}
}

// Settle says this node has caught up with the cluster's retained history:
// it knows every origin whose events it may yet be given, and its clock
// has passed every time its peers promised. Until then positions written
// here claim nothing of origins they do not name, since events of origins it
// has not heard of may still come through catch-up, and Publish waits (up
// to Options.SettleWait, then ErrJoining). Safe to call more than once.
func (h *Hub) Settle() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.settle()
}

func (h *Hub) settle() {
	if h.settled {
		return
	}
	h.settled = true
	close(h.settledCh)
	// What catch-up brought is all there is: each origin's sequence
	// starts at the first event we hold.
	now := h.now()
	for _, o := range h.orders {
		if o.next == 0 && len(o.blocked) > 0 {
			o.next = o.blocked[0].ID.Seq
			h.unblock(o, now)
		}
	}
}

// awaitSettled waits until Settle, ctx's end, or SettleWait.
func (h *Hub) awaitSettled(ctx context.Context) error {
	t := time.NewTimer(h.opts.SettleWait)
	defer t.Stop()
	select {
	case <-h.settledCh:
		return nil
	case <-h.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return ErrJoining
	}
}

// PeerDown says origin's link is down (it left, died, froze or was cut
// off): Stable no longer waits for it, and positions name its threshold
// instead. Its events that arrive later, through repair or after it comes
// back, are delivered as usual and resume stays exact.
func (h *Hub) PeerDown(origin uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.peers, origin)
}

// Tick sends this node's watermark to the peers. The transport calls it on
// an idle timer and when a link comes up.
func (h *Hub) Tick() {
	if h.opts.Relay == nil {
		return
	}
	h.mu.Lock()
	h.opts.Relay.Watermark(h.clock.Watermark())
	h.mu.Unlock()
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	st := Stats{
		Pending:       h.blocked(),
		HistoryEvents: h.hist.events,
		HistoryBytes:  h.hist.bytes,
		Channels:      len(h.channels),
		Subscribers:   h.subs,
		Peers:         len(h.peers),
	}
	h.mu.Unlock()
	st.Published = h.published.Load()
	st.Received = h.received.Load()
	st.Delivered = h.delivered.Load()
	st.Dropped = h.dropped.Load()
	st.SlowDisconnects = h.slow.Load()
	st.Duplicates = h.dups.Load()
	st.Late = h.late.Load()
	st.GapsAbandoned = h.abandoned.Load()
	st.SubscriberBytes = h.held.Load()
	return st
}

// Close ends every subscription with ErrClosed and stops the hub. It is safe
// to call more than once.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	var subs []*Subscription
	for _, c := range h.channels {
		for s := range c.subs {
			subs = append(subs, s)
		}
	}
	for s := range h.wild {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	for _, s := range subs {
		s.end(ErrClosed)
	}
	close(h.stop)
	h.wg.Wait()
}

// sweep gives up on old gaps and expires history and idempotency keys once
// a second.
func (h *Hub) sweep() {
	defer h.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		now := h.now()
		h.mu.Lock()
		h.abandonGaps(now)
		h.hist.expire(now)
		h.idem.expire(now)
		for name, c := range h.channels {
			if len(c.subs) == 0 && c.log.len() == 0 {
				h.dropChannel(h.channels[name])
			}
		}
		for o, s := range h.seen {
			if o != h.origin && now.Sub(s.heard) > h.opts.HistoryTTL+time.Minute && h.hist.origins[o] == nil {
				delete(h.seen, o)
				delete(h.orders, o)
			}
		}
		// Members we were told of and never heard from (they died
		// before their first event or watermark reached us) are
		// forgotten too, or every position would name them forever.
		for o, st := range h.orders {
			if _, up := h.peers[o]; !up && h.seen[o] == nil && st.mark == 0 && now.Sub(st.since) > h.opts.HistoryTTL+time.Minute {
				delete(h.orders, o)
			}
		}
		h.mu.Unlock()
	}
}
