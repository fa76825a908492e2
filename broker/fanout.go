package broker

import (
	"cmp"
	"slices"
	"time"
)

// channel is a channel with retained events or subscribers.
type channel struct {
	name      string
	subs      map[*Subscription]struct{}
	log       channelLog
	published uint64
	last      time.Time
}

// store delivers e, which is next in its origin's sequence (or below a gap
// given up on): it gets this node's position, is retained and is queued to
// the channel's subscribers. Called with h.mu held.
func (h *Hub) store(e *Event, o *originState, now time.Time) {
	if e.ID.Time <= o.claimed {
		// A position written here already claimed it (an event below a
		// gap given up on, or one from an origin we had not heard of
		// whose clock was behind): a client that moves carrying that
		// position misses it.
		h.late.Add(1)
	}
	if e.ID.Time > o.last {
		o.last = e.ID.Time
	}
	if o.first.IsZero() {
		o.first = e.ID
	}
	h.arrivals++
	e.pos = h.position(e.ID)
	h.claim(e.pos)
	e.frame = nil
	e.Frame()
	c := h.channel(e.Channel)
	if h.opts.HistorySize > 0 {
		h.hist.add(c, e, h.arrivals, now)
	}
	c.published++
	c.last = now
	var delivered, dropped, slow uint64
	for s := range c.subs {
		queued, overflowed := s.push(e)
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
	// dropped: resuming before what dropped channels evicted is not exact.
	c.log.evicted = h.forgotten.clone()
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
	h.forgotten.merge(c.log.evicted)
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

// Retained returns the events channel retains here, oldest first: the order
// this node got them, which is the order its subscribers did. The slice is
// the caller's; the events are shared and must not be modified. A face
// that resumes by an id of its own (the Mercure face) looks the id up here
// and subscribes from the event's Position.
func (h *Hub) Retained(channel string) []*Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.channels[channel]
	if c == nil {
		return nil
	}
	live := c.log.live()
	out := make([]*Event, len(live))
	for i, en := range live {
		out[i] = en.e
	}
	return out
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
