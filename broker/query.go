package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// ErrBadQuery reports a history request out of bounds.
var ErrBadQuery = errors.New("invalid history request")

// Reading a channel without a stream: its retained events a page at a
// time (History), and where a stream that starts now would begin (Head).
// Both answer from this node's history, the same on every node for the
// events every node holds: pages are in ID order, which every node shares,
// and their cursors are Positions, which mean the same everywhere.

// HistoryRequest asks for a channel's retained events.
type HistoryRequest struct {
	Channel string // a channel name, not a pattern
	// After is where the page starts: the events a client at After has
	// not seen. An event id (PositionOf), a stream's Last-Event-ID, the
	// Next of the page before, or Since's position. The zero Position means
	// every retained event.
	After Position
	// Last keeps only the last Last of those events (by ID); 0 means all.
	Last int
	// Limit is the most events a page holds; 0 means DefaultHistoryLimit,
	// and above MaxHistoryLimit is an error.
	Limit int
}

// Bounds of a history page.
const (
	DefaultHistoryLimit = 100
	MaxHistoryLimit     = 1000
)

// HistoryPage is one page of a channel's retained events.
type HistoryPage struct {
	Events []*Event // in ID order; shared with the history: do not modify them
	// Next is where the next page starts (HistoryRequest.After): After
	// joined with every event up to the page's last, per origin, so an
	// event that reaches this node later, below the page's end, still
	// comes in a later page, and nothing comes twice. It equals After
	// when the page is empty, and is then zero if After was.
	Next Position
	// More reports that more events after the page are retained now.
	More bool
	// Reset reports that events after After are no longer retained here
	// (or may not be): what the stream's rumor.reset says.
	Reset bool
}

// Since returns the position of a client that has seen every event
// published before t (by its origin's clock, the time in its id) and none
// after: as HistoryRequest.After or SubscribeRequest.From, it starts at
// the events published at or after t. t is Unix milliseconds; at or below
// 0 it is the zero Position (every retained event).
func Since(unixMilli int64) Position {
	if unixMilli <= 0 {
		return Position{}
	}
	return Position{Stable: uint64(unixMilli)<<16 - 1}
}

// History returns a page of channel's retained events after req.After.
// Within a page events are in ID order (the same on every node); a
// client that pages with Next gets every retained event once, including
// those that reach this node while it pages.
func (h *Hub) History(req HistoryRequest) (HistoryPage, error) {
	if err := ValidateChannel(req.Channel); err != nil {
		return HistoryPage{}, err
	}
	limit := req.Limit
	if limit == 0 {
		limit = DefaultHistoryLimit
	}
	if limit < 0 || limit > MaxHistoryLimit || req.Last < 0 {
		return HistoryPage{}, fmt.Errorf("%w: limit %d, last %d: want a limit from 1 to %d and last from 0", ErrBadQuery, req.Limit, req.Last, MaxHistoryLimit)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return HistoryPage{}, ErrClosed
	}
	var page HistoryPage
	c := h.channels[req.Channel] // no channel: nothing retained, nothing created
	var all []*entry
	evicted := h.forgotten
	if c != nil {
		all = c.log.live()
		evicted = c.log.evicted
	}
	if !req.After.IsZero() {
		page.Reset = evicted.missedBy(req.After) || h.unknownBefore(req.After) ||
			h.opts.HistorySize == 0 && !req.After.Covers(h.position(ID{}))
	}
	var missing []*entry
	for _, en := range all {
		if !req.After.Includes(en.id) {
			missing = append(missing, en)
		}
	}
	slices.SortFunc(missing, func(a, b *entry) int { return a.id.Compare(b.id) })
	if req.Last > 0 && len(missing) > req.Last {
		missing = missing[len(missing)-req.Last:]
	}
	if len(missing) > limit {
		missing, page.More = missing[:limit], true
	}
	page.Next = req.After
	if len(missing) == 0 {
		return page, nil
	}
	page.Events = make([]*Event, len(missing))
	for i, en := range missing {
		page.Events[i] = en.e
	}
	page.Next = cursor(req.After, missing[len(missing)-1].id, all)
	return page, nil
}

// unknownBefore reports whether a client at p may have missed events this
// node never had: it has not seen the first event of an origin we hold,
// and that origin had earlier ones, gone before this node caught up.
// Called with h.mu held.
func (h *Hub) unknownBefore(p Position) bool {
	for _, o := range h.orders {
		if o.first.Seq > 1 && !p.Includes(o.first) {
			return true
		}
	}
	return false
}

// cursor returns the position of a client at after that has also seen
// every event of held up to end (by ID), written with end: per origin, the
// larger of after's threshold and the Time of that origin's last such
// event. It claims nothing of the events of any origin beyond those, so a
// late event below end that this node did not hold yet stays unseen.
func cursor(after Position, end ID, held []*entry) Position {
	upTo := make(map[uint64]uint64)
	for _, en := range held {
		if en.id.Compare(end) <= 0 {
			upTo[en.id.Origin] = max(upTo[en.id.Origin], en.id.Time)
		}
	}
	p := Position{Last: end, Stable: after.Stable}
	origins := make([]uint64, 0, len(upTo)+len(after.Marks)+1)
	for o := range upTo {
		origins = append(origins, o)
	}
	for _, m := range after.Marks {
		origins = append(origins, m.Origin)
	}
	origins = append(origins, after.Last.Origin)
	slices.Sort(origins)
	origins = slices.Compact(origins)
	for _, o := range origins {
		if o == 0 {
			continue
		}
		if t := max(after.Threshold(o), upTo[o]); t != p.implicit(o) {
			p.Marks = append(p.Marks, Mark{Origin: o, Time: t})
		}
	}
	return p
}

// Head is where a channel stands on this node now.
type Head struct {
	// Last is the id of the channel's latest retained event (by ID), zero
	// for none.
	Last ID
	// Position is this node's position now, written with Last: a stream
	// from it (Last-Event-ID, SubscribeRequest.From) on any node gets
	// exactly the events this node had not delivered when Head answered,
	// no gap and no duplicate. It is never the zero Position.
	Position Position
}

// Head returns channel's head for the snapshot-then-stream pattern: read
// the head, load the state the events built from your own store, then
// stream from Head.Position. A node still joining the cluster waits for it
// (up to Options.SettleWait, then ErrJoining), as Publish does: before, its
// positions claim nothing of origins it has not heard of.
func (h *Hub) Head(ctx context.Context, channel string) (Head, error) {
	if err := ValidateChannel(channel); err != nil {
		return Head{}, err
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return Head{}, ErrClosed
	}
	if !h.settled {
		h.mu.Unlock()
		if err := h.awaitSettled(ctx); err != nil {
			return Head{}, err
		}
		return h.Head(ctx, channel)
	}
	defer h.mu.Unlock()
	var last ID
	if c := h.channels[channel]; c != nil {
		for _, en := range c.log.live() {
			if last.Less(en.id) {
				last = en.id
			}
		}
	}
	p := h.position(last)
	if p.IsZero() {
		// Nothing delivered and nothing promised yet: no position can
		// say where a stream starts.
		return Head{}, ErrJoining
	}
	// A position handed out: events it claims that arrive later are late.
	h.claim(p)
	return Head{Last: last, Position: p}, nil
}
