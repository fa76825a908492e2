package broker

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
	Late            uint64 // events that arrived after a later id was released
	GapsAbandoned   uint64 // missing sequence numbers given up on
	Pending         int    // events held until the cluster order is known
	HistoryEvents   int
	HistoryBytes    int64
	Channels        int
	Subscribers     int
	Peers           int   // peers the order waits for
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

// channel is a channel with retained events or subscribers.
type channel struct {
	name      string
	subs      map[*Subscription]struct{}
	log       channelLog
	published uint64
	last      time.Time
}

// Hub fans events out to local subscribers, keeps history, dedupes and
// orders events. All methods are safe for concurrent use.
type Hub struct {
	opts   Options
	log    *slog.Logger
	origin uint64
	clock  Clock
	now    func() time.Time
	start  uint64 // clock time at start: positions before it may predate what we know

	mu        sync.Mutex
	seq       uint64
	channels  map[string]*channel
	wild      map[*Subscription]struct{} // subscriptions with wildcard patterns
	hist      history
	seen      map[uint64]*seen
	orders    map[uint64]*seqOrder // per origin: the next sequence to deliver
	idem      idempotency
	pending   eventHeap
	peers     map[uint64]uint64 // origin → watermark, for the peers the order waits for
	released  ID                // the largest ID released to subscribers
	forgotten ID                // the largest ID evicted from channels since deleted
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
		orders:   make(map[uint64]*seqOrder),
		peers:    make(map[uint64]uint64),
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
	h.start = h.clock.Next()
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
	ids = make([]ID, len(msgs))
	h.idem.expire(now) // a key is never honoured past its TTL
	var last *Event
	for i, m := range msgs {
		// Each message with a known key (from an earlier publish, a peer,
		// or earlier in this batch) gets its first id and is not published
		// again; the others are.
		if m.Key != "" {
			if id, ok := h.idem.get(m.Key); ok {
				ids[i] = id
				replayed = true
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
		e.Frame()
		ids[i] = e.ID
		h.seenOf(h.origin).add(e.ID.Seq, now)
		if m.Key != "" {
			h.idem.put(m.Key, e.ID, now)
		}
		if h.opts.Relay != nil {
			h.opts.Relay.Send(e)
		}
		h.pending.push(e)
		h.published.Add(1)
		last = e
	}
	h.release(now)
	h.mu.Unlock()
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
	if err := ValidateChannel(m.Channel); err != nil {
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
// drops duplicates, then stores and fans the event out in cluster order. It
// never relays. It reports whether the event was new.
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
	e.Frame()
	h.received.Add(1)
	if !h.released.Less(e.ID) {
		h.admit(e, now)
		return true
	}
	h.pending.push(e)
	h.release(now)
	return true
}

// PeerUp makes the order wait for origin: events are held until its
// watermark has passed them. w is its first watermark.
func (h *Hub) PeerUp(origin, w uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clock.Observe(w)
	h.peers[origin] = max(h.peers[origin], w)
	h.release(h.now())
}

// Advance records origin's watermark: it will send no event at or below w.
func (h *Hub) Advance(origin, w uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clock.Observe(w)
	if old, ok := h.peers[origin]; ok && w > old {
		h.peers[origin] = w
		h.release(h.now())
	}
}

// PeerDown stops the order waiting for origin (it left, died or was cut
// off). Its events that arrive later are late.
func (h *Hub) PeerDown(origin uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.peers, origin)
	h.release(h.now())
}

// Tick sends this node's watermark to the peers. The transport calls it
// after it received events and on an idle timer.
func (h *Hub) Tick() {
	if h.opts.Relay == nil {
		return
	}
	h.mu.Lock()
	h.opts.Relay.Watermark(h.clock.Watermark())
	h.mu.Unlock()
}

// release stores and fans out every pending event that no peer can still
// precede. Called with h.mu held.
func (h *Hub) release(now time.Time) {
	if len(h.pending) == 0 {
		return
	}
	stable := h.clock.Watermark()
	for _, w := range h.peers {
		stable = min(stable, w)
	}
	for len(h.pending) > 0 && h.pending[0].ID.Time <= stable {
		h.admit(h.pending.pop(), now)
	}
}

// seqOrder keeps one origin's events in sequence order on this node.
type seqOrder struct {
	next    uint64   // the next sequence to deliver; 0 until the first event
	blocked []*Event // events after a gap, in sequence order, waiting for it
}

// admit stores e unless it would overtake a missing event of its origin:
// then it waits in its origin's blocked list until the gap is filled (by
// resend or repair) or given up. Called with h.mu held.
func (h *Hub) admit(e *Event, now time.Time) {
	o := h.orders[e.ID.Origin]
	if o == nil {
		o = &seqOrder{}
		h.orders[e.ID.Origin] = o
	}
	switch {
	case o.next == 0 || e.ID.Seq == o.next:
		h.store(e, now)
		o.next = e.ID.Seq + 1
		h.unblock(o, now)
	case e.ID.Seq < o.next:
		// Below a gap already given up on: deliver it anyway, out of
		// sequence, rather than drop it.
		h.store(e, now)
	default:
		i, _ := slices.BinarySearchFunc(o.blocked, e.ID.Seq, func(b *Event, seq uint64) int { return cmpUint(b.ID.Seq, seq) })
		o.blocked = slices.Insert(o.blocked, i, e)
	}
}

func (h *Hub) blocked() int {
	n := 0
	for _, o := range h.orders {
		n += len(o.blocked)
	}
	return n
}

// unblock stores the blocked events that are next in sequence.
func (h *Hub) unblock(o *seqOrder, now time.Time) {
	for len(o.blocked) > 0 && o.blocked[0].ID.Seq <= o.next {
		e := o.blocked[0]
		o.blocked[0] = nil
		o.blocked = o.blocked[1:]
		h.store(e, now)
		o.next = max(o.next, e.ID.Seq+1)
	}
}

// store retains e and queues it to the channel's subscribers. An event at
// or below the largest id already released is late. Called with h.mu held.
func (h *Hub) store(e *Event, now time.Time) {
	late := !h.released.Less(e.ID)
	if late {
		h.late.Add(1)
	}
	c := h.channel(e.Channel)
	if h.opts.HistorySize > 0 {
		h.hist.add(c, e, now)
	}
	c.published++
	c.last = now
	if h.released.Less(e.ID) {
		h.released = e.ID
	}
	var delivered, dropped, slow uint64
	for s := range c.subs {
		queued, overflowed := s.push(e, late)
		if queued {
			delivered++
		} else if overflowed {
			dropped++
			slow++
		}
	}
	h.delivered.Add(delivered)
	h.dropped.Add(dropped)
	h.slow.Add(slow)
	if len(c.subs) == 0 && c.log.len() == 0 {
		h.dropChannel(c)
	}
}

// channel returns the named channel, creating it. Called with h.mu held.
func (h *Hub) channel(name string) *channel {
	c := h.channels[name]
	if c != nil {
		return c
	}
	c = &channel{name: name, subs: make(map[*Subscription]struct{})}
	// A channel of this name may have existed, evicted events and been
	// dropped: resuming before anything dropped channels evicted is not exact.
	c.log.evicted = h.forgotten
	h.channels[name] = c
	for s := range h.wild {
		if s.matches(name) {
			c.subs[s] = struct{}{}
			s.channels = append(s.channels, c)
		}
	}
	return c
}

func (h *Hub) dropChannel(c *channel) {
	if h.forgotten.Less(c.log.evicted) {
		h.forgotten = c.log.evicted
	}
	for s := range h.wild {
		if i := slices.Index(s.channels, c); i >= 0 {
			s.channels = slices.Delete(s.channels, i, i+1)
		}
	}
	delete(h.channels, c.name)
}

func (s *Subscription) matches(channel string) bool {
	for _, p := range s.patterns {
		if p.Match(channel) {
			return true
		}
	}
	return false
}

func (h *Hub) seenOf(origin uint64) *seen {
	s := h.seen[origin]
	if s == nil {
		s = &seen{}
		h.seen[origin] = s
	}
	return s
}

// SubscribeRequest says what to subscribe to and where to resume.
type SubscribeRequest struct {
	Patterns []Pattern
	After    ID // resume after this event; zero means live only
}

// Subscribe registers a subscription. With After set, Subscription.Replay
// holds every retained event after it on the matching channels, in order,
// and live events continue exactly after them: no gap, no duplicate.
func (h *Hub) Subscribe(req SubscribeRequest) (*Subscription, error) {
	if len(req.Patterns) == 0 {
		return nil, fmt.Errorf("%w: no channel", ErrBadPattern)
	}
	s := &Subscription{
		hub:      h,
		patterns: req.Patterns,
		wake:     make(chan struct{}, 1),
		max:      h.opts.QueueSize,
		maxBytes: h.opts.QueueBytes,
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	for _, p := range req.Patterns {
		if p.String() == "" {
			return nil, fmt.Errorf("%w: the zero Pattern", ErrBadPattern)
		}
	}
	var chans []*channel
	for _, p := range req.Patterns {
		if !p.Literal() {
			s.wild = true
			continue
		}
		c := h.channel(p.String())
		if _, dup := c.subs[s]; !dup {
			c.subs[s] = struct{}{}
			chans = append(chans, c)
		}
	}
	if s.wild {
		h.wild[s] = struct{}{}
		for name, c := range h.channels {
			if _, dup := c.subs[s]; !dup && s.matches(name) {
				c.subs[s] = struct{}{}
				chans = append(chans, c)
			}
		}
	}
	s.channels = chans
	h.subs++
	s.after = h.released
	if !req.After.IsZero() {
		s.Replay, s.Reset = h.replay(chans, req.After, s.wild)
		s.after = req.After
		if n := len(s.Replay); n > 0 && s.after.Less(s.Replay[n-1].ID) {
			s.after = s.Replay[n-1].ID
		}
		if s.after.Less(h.released) {
			s.after = h.released
		}
	}
	return s, nil
}

// replay collects the retained events after id on chans, merged in ID
// order, and whether events after id were already evicted (or may have
// been). Called with h.mu held.
func (h *Hub) replay(chans []*channel, id ID, wild bool) (events []*Event, reset bool) {
	for _, c := range chans {
		if id.Less(c.log.evicted) {
			reset = true
		}
		if id.Time < h.start && !c.log.contains(id) && c.log.len() > 0 && id.Less(c.log.live()[0].id) {
			// The position predates this node and its oldest retained
			// event: whatever came between is unknown here.
			reset = true
		}
		for _, en := range c.log.after(id) {
			events = append(events, en.e)
		}
	}
	if wild && id.Less(h.forgotten) {
		// The patterns may have matched channels dropped since.
		reset = true
	}
	if h.opts.HistorySize == 0 && id.Less(h.released) {
		// Nothing is retained: whatever came after id is gone.
		reset = true
	}
	if len(chans) > 1 {
		slices.SortFunc(events, func(a, b *Event) int { return a.ID.Compare(b.ID) })
	}
	return events, reset
}

func (h *Hub) unsubscribe(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	h.subs--
	delete(h.wild, s)
	for _, c := range s.channels {
		delete(c.subs, s)
		if len(c.subs) == 0 && c.log.len() == 0 {
			h.dropChannel(c)
		}
	}
	s.channels = nil
}

// Channels lists the active channels by name.
func (h *Hub) Channels() []ChannelInfo {
	h.mu.Lock()
	out := make([]ChannelInfo, 0, len(h.channels))
	for _, c := range h.channels {
		out = append(out, ChannelInfo{
			Name:          c.name,
			Subscribers:   len(c.subs),
			Events:        c.log.len(),
			Bytes:         c.log.bytes,
			Published:     c.published,
			LastPublished: c.last,
		})
	}
	h.mu.Unlock()
	slices.SortFunc(out, func(a, b ChannelInfo) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	st := Stats{
		Pending:       len(h.pending) + h.blocked(),
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

// Digest summarizes which events this node holds, per origin, for repair.
// It also gives up on gaps older than the gap timeout.
func (h *Hub) Digest() Digest {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	d := make(Digest, 0, len(h.seen))
	for o, s := range h.seen {
		if n := s.abandon(now, h.opts.GapTimeout); n > 0 {
			h.abandoned.Add(n)
			h.log.Warn("gave up on missing events", "origin", fmt.Sprintf("%016x", o), "count", n)
			// Events waiting behind the given-up gap go out now.
			if ord := h.orders[o]; ord != nil && len(ord.blocked) > 0 && s.contig+1 >= ord.blocked[0].ID.Seq {
				ord.next = ord.blocked[0].ID.Seq
				h.unblock(ord, now)
			}
		}
		d = append(d, OriginDigest{Origin: o, Max: s.max, Gaps: s.gaps(maxGaps)})
	}
	return d
}

// Missing returns up to limit retained events that d lacks: first those in
// its gaps, then those above its maximum that arrived here at least minAge
// ago (younger ones are likely still in flight to it).
func (h *Hub) Missing(d Digest, limit int, minAge time.Duration) []*Event {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	has := make(map[uint64]*OriginDigest, len(d))
	for i := range d {
		has[d[i].Origin] = &d[i]
	}
	var out []*Event
	// Gaps first, across every origin: they are known to be missing.
	for o, log := range h.hist.origins {
		od := has[o]
		if od == nil {
			continue
		}
		for _, g := range od.Gaps {
			for _, en := range log.from(g.From) {
				if en.id.Seq > g.To || len(out) >= limit {
					break
				}
				if !en.removed {
					out = append(out, en.e)
				}
			}
		}
	}
	for o, log := range h.hist.origins {
		var maxSeq uint64
		if od := has[o]; od != nil {
			maxSeq = od.Max
		}
		for _, en := range log.from(maxSeq + 1) {
			if len(out) >= limit {
				return out
			}
			if !en.removed && now.Sub(en.arrived) >= minAge {
				out = append(out, en.e)
			}
		}
	}
	return out
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

// sweep expires history and idempotency keys once a second.
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
		h.mu.Unlock()
	}
}

// eventHeap is a min-heap of events by ID.
type eventHeap []*Event

func (q *eventHeap) push(e *Event) {
	*q = append(*q, e)
	a := *q
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !a[i].ID.Less(a[p].ID) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (q *eventHeap) pop() *Event {
	a := *q
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a[n] = nil
	a = a[:n]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && a[l].ID.Less(a[m].ID) {
			m = l
		}
		if r < n && a[r].ID.Less(a[m].ID) {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*q = a
	return top
}
