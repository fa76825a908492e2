package broker

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Errors that end a subscription.
var (
	// ErrSlow means the subscriber fell a whole queue behind (in events, or
	// in bytes held: Options.QueueBytes) and events were dropped for it; it
	// should reconnect and resume by id.
	ErrSlow = errors.New("subscriber too slow")
	// ErrClosed means the hub is shutting down.
	ErrClosed = errors.New("hub closed")
)

// Subscription receives the events of its channels and patterns. One
// goroutine (the stream's writer) calls Ready, Drain and Close; the hub
// pushes from any goroutine. Pushing never blocks: when the queue is full
// the subscription is marked slow and the events it missed stay in history.
type Subscription struct {
	hub      *Hub
	patterns []Pattern
	wild     bool              // has a wildcard pattern
	envelope bool              // frames carry the envelope: SubscribeRequest.Envelope
	filter   func(*Event) bool // SubscribeRequest.Filter; nil means every event
	keys     []string          // SubscribeRequest.Keys
	own      bool              // SubscribeRequest.Own: not counted in Stats.Subscribers

	// Replay holds the retained events after the resume position, in
	// order, to be written before anything Drain returns.
	Replay []*Event
	// Reset is set when the resume position is no longer retained (or
	// unknown): the client has missed events and should refetch its state.
	Reset bool

	wake chan struct{}

	// skip is the resume position, while this node had not reached it
	// when the subscription began: live events it includes were seen
	// elsewhere. Set before the subscription is shared; read-only after.
	skip *Position
	// from is the same position for the writer: until an event's own
	// position covers it, the ids written join both. Only Frame uses it.
	from *Position

	mu       sync.Mutex
	ring     []*Event
	head, n  int
	max      int
	held     int64 // bytes of the events queued, or drained and not yet released
	lent     int64 // of held, the bytes of the last Drain's events
	maxBytes int64
	err      error
	channels []*channel // channels this subscription is registered on
	closed   bool
}

// Ready is signalled when Drain has something to return.
func (s *Subscription) Ready() <-chan struct{} { return s.wake }

// Patterns returns what the subscription asked for.
func (s *Subscription) Patterns() []Pattern { return s.patterns }

// Drain appends every queued event to dst, in order, and returns it. A
// non-nil error (ErrSlow, ErrClosed) means the subscription has ended; the
// events returned with it are still to be written. The events count
// against Options.QueueBytes until Release, or the next Drain: a
// subscriber whose write is stuck holds them, and is cut off as slow
// rather than hold more.
func (s *Subscription) Drain(dst []*Event) ([]*Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.giveBack(s.lent)
	var lent int64
	for i := 0; i < s.n; i++ {
		j := (s.head + i) % len(s.ring)
		dst = append(dst, s.ring[j])
		lent += int64(s.ring[j].Size())
		s.ring[j] = nil
	}
	s.head, s.n = 0, 0
	s.lent = min(lent, s.held)
	return dst, s.err
}

// Release gives back the budget of the events the last Drain returned,
// once they are written or dropped; the next Drain does it too. It is safe
// to call after Close.
func (s *Subscription) Release() {
	s.mu.Lock()
	s.giveBack(s.lent)
	s.mu.Unlock()
}

// giveBack lowers held by n bytes of lent events. Called with s.mu held.
func (s *Subscription) giveBack(n int64) {
	s.lent -= n
	s.held -= n
	s.hub.held.Add(-n)
}

// Frame returns the bytes to write for e, an event from Replay or Drain:
// e's shared SSE frame, whose id is this node's position after e. While the
// subscription resumed from a position this node had not reached (the
// client came from a node that held events this one did not yet), the id
// joins both positions instead, so that the client's next resume, anywhere,
// is still exact. Only the stream's writer calls it.
//
// With SubscribeRequest.Envelope the frame is e's shared EnvelopeFrame
// instead, and a joined one is enveloped too.
func (s *Subscription) Frame(e *Event) []byte {
	if s.from != nil {
		p := e.Position()
		if !p.Covers(*s.from) {
			if s.envelope {
				return appendEnvelopeFrame(nil, s.from.Join(p, e.ID), e)
			}
			return appendFrame(nil, s.from.Join(p, e.ID), e.Type, e.Data)
		}
		s.from = nil
	}
	if s.envelope {
		return e.EnvelopeFrame()
	}
	return e.Frame()
}

// push queues e; it reports whether the subscription just overflowed.
func (s *Subscription) push(e *Event) (queued, overflowed bool) {
	if s.skip != nil && s.skip.Includes(e.ID) {
		return false, false
	}
	if s.filter != nil && !s.filter(e) {
		return false, false
	}
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return false, false
	}
	size := int64(e.Size())
	if s.n == len(s.ring) && len(s.ring) >= s.max || s.held > 0 && s.held+size > s.maxBytes {
		s.err = ErrSlow
		s.mu.Unlock()
		s.signal()
		return false, true
	}
	if s.n == len(s.ring) {
		s.grow()
	}
	s.ring[(s.head+s.n)%len(s.ring)] = e
	s.n++
	s.held += size
	s.hub.held.Add(size)
	s.mu.Unlock()
	s.signal()
	return true, false
}

// grow doubles the ring, up to max: idle subscribers stay small.
func (s *Subscription) grow() {
	size := min(max(2*len(s.ring), 8), s.max)
	ring := make([]*Event, size)
	for i := 0; i < s.n; i++ {
		ring[i] = s.ring[(s.head+i)%len(s.ring)]
	}
	s.ring, s.head = ring, 0
}

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Subscription) end(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.signal()
}

// Close unregisters the subscription. It is safe to call more than once.
func (s *Subscription) Close() {
	s.hub.unsubscribe(s)
	s.end(ErrClosed)
	s.mu.Lock()
	s.hub.held.Add(-s.held)
	s.held, s.lent = 0, 0
	s.mu.Unlock()
}

// SubscribeRequest says what to subscribe to and where to resume.
type SubscribeRequest struct {
	Patterns []Pattern
	From     Position // resume after this position (a Last-Event-ID); zero means live only
	// Last starts a stream that does not resume (From is zero) with the
	// last Last retained events of the matching channels; 0 means none.
	Last int
	// Envelope makes Frame wrap each event's data in a JSON object that
	// names its channel (Event.EnvelopeFrame).
	Envelope bool
	// Filter, when set, is asked about each event of the patterns' channels,
	// live or replayed; only those it accepts are queued (or put in
	// Replay). It runs on the goroutine that fans the event out, with the
	// hub's lock held: it must be fast, must not block and must not call
	// the hub. A face that narrows a channel further than its name (the
	// Mercure face's topic selectors and private updates) filters here, so
	// that a subscriber is not woken for events it will not send.
	Filter func(*Event) bool
	// Own marks a subscription of rumor's own (presence following its
	// reserved channels), not a client's: Stats.Subscribers leaves it out.
	Own bool
	// Keys, on a channel with a Hub.Index, narrows the events offered to
	// the subscription to those whose keys hold one of these (Filter, if
	// set, still decides); nil means every event. On other channels it
	// changes nothing.
	Keys []string
}

// Subscribe registers a subscription. With From set, Subscription.Replay
// holds every retained event on the matching channels that From has not
// passed, in the order this node got them, and live events continue
// exactly after them: no gap, no duplicate, whichever node wrote From.
// Without From, Last > 0 puts the last Last retained events in Replay, in
// the order this node got them, and live events continue exactly after
// them.
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
		envelope: req.Envelope,
		filter:   req.Filter,
		keys:     req.Keys,
		own:      req.Own,
	}
	if req.Last < 0 {
		return nil, fmt.Errorf("%w: a negative number of last events", ErrBadPattern)
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
		if c.add(s) {
			chans = append(chans, c)
		}
	}
	if s.wild {
		h.wild[s] = struct{}{}
		for name, c := range h.channels {
			if _, dup := c.subs[s]; !dup && s.matches(name) {
				c.add(s)
				chans = append(chans, c)
			}
		}
	}
	s.channels = chans
	if !req.Own {
		h.subs++
	}
	if !req.From.IsZero() {
		from := req.From
		s.Replay, s.Reset = h.replay(chans, from, s.wild)
		// Replayed events carry the positions they were stored with,
		// which lack what the client saw before: join until they cover it.
		s.from = &from
		if here := h.position(ID{}); !here.Covers(from) {
			// The client saw events elsewhere that have not reached
			// this node yet: they must not come twice.
			s.skip = &from
		}
	} else if req.Last > 0 {
		s.Replay = h.latest(chans, req.Last)
	}
	if s.filter != nil {
		s.Replay = slices.DeleteFunc(s.Replay, func(e *Event) bool { return !s.filter(e) })
	}
	return s, nil
}

// latest returns the last n retained events on chans, in arrival order.
// Called with h.mu held.
func (h *Hub) latest(chans []*channel, n int) []*Event {
	var entries []*entry
	for _, c := range chans {
		live := c.log.live()
		entries = append(entries, live[max(0, len(live)-n):]...)
	}
	if len(chans) > 1 {
		slices.SortFunc(entries, func(a, b *entry) int { return cmpUint(a.n, b.n) })
	}
	entries = entries[max(0, len(entries)-n):]
	events := make([]*Event, len(entries))
	for i, en := range entries {
		events[i] = en.e
	}
	return events
}

// deliveredAfter reports whether this node delivered an event a client at
// p has not seen. (Comparing p with the position of "now" would also count
// the clock moving on, with no event after p.) Called with h.mu held.
func (h *Hub) deliveredAfter(p Position) bool {
	for o, st := range h.orders {
		if st.last > p.Threshold(o) {
			return true
		}
	}
	return false
}

// replay collects the retained events on chans that a client at p has not
// seen, in arrival order, and whether it has missed events that are no
// longer retained (or may have). Called with h.mu held.
func (h *Hub) replay(chans []*channel, p Position, wild bool) (events []*Event, reset bool) {
	var entries []*entry
	for _, c := range chans {
		if c.log.evicted.missedBy(p) {
			reset = true
		}
		entries = append(entries, c.log.missing(p)...)
	}
	if h.unknownBefore(p) {
		// There were events before the first this node holds of some
		// origin, gone before it caught up: it cannot tell whether the
		// client missed some.
		reset = true
	}
	if wild && h.forgotten.missedBy(p) {
		// The patterns may have matched channels dropped since.
		reset = true
	}
	if h.opts.HistorySize == 0 && h.deliveredAfter(p) {
		// Nothing is retained: whatever came after p is gone.
		reset = true
	}
	if len(chans) > 1 {
		slices.SortFunc(entries, func(a, b *entry) int { return cmpUint(a.n, b.n) })
	}
	events = make([]*Event, len(entries))
	for i, en := range entries {
		events[i] = en.e
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
	if !s.own {
		h.subs--
	}
	delete(h.wild, s)
	for _, c := range s.channels {
		c.remove(s)
		if len(c.subs) == 0 && c.log.len() == 0 {
			h.dropChannel(c)
		}
	}
	s.channels = nil
}
