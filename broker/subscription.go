package broker

import (
	"errors"
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
	wild     bool // has a wildcard pattern

	// Replay holds the retained events after the resume position, in
	// order, to be written before anything Drain returns.
	Replay []*Event
	// Reset is set when the resume position is no longer retained (or
	// unknown): the client has missed events and should refetch its state.
	Reset bool

	wake chan struct{}

	mu       sync.Mutex
	ring     []*Event
	head, n  int
	max      int
	held     int64 // bytes of the events queued, or drained and not yet released
	lent     int64 // of held, the bytes of the last Drain's events
	maxBytes int64
	after    ID // live events at or below this were replayed or seen elsewhere
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

// push queues e; it reports whether the subscription just overflowed.
func (s *Subscription) push(e *Event, late bool) (queued, overflowed bool) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return false, false
	}
	if !late && !s.after.Less(e.ID) {
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
