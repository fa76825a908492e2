package broker

import (
	"cmp"
	"slices"
	"time"
)

// channel is a channel with retained events or subscribers.
type channel struct {
	name      string
	subs      map[*Subscription]struct{} // every subscriber
	index     *keyIndex                  // set by Hub.Index: who is offered which events
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
	offer := func(s *Subscription) {
		queued, overflowed := s.push(e)
		if queued {
			delivered++
		} else if overflowed {
			dropped++
			slow++
		}
	}
	if c.index == nil {
		for s := range c.subs {
			offer(s)
		}
	} else {
		c.index.offer(e, offer)
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
	if keys := h.indexes[name]; keys != nil {
		c.index = newKeyIndex(keys)
	}
	// A channel of this name may have existed, evicted events and been
	// dropped: resuming before what dropped channels evicted is not exact.
	c.log.evicted = h.forgotten.clone()
	h.channels[name] = c
	for s := range h.wild {
		if s.matches(name) {
			c.add(s)
			s.channels = append(s.channels, c)
		}
	}
	return c
}

// add registers s on c; it reports false if s already was.
func (c *channel) add(s *Subscription) bool {
	if _, dup := c.subs[s]; dup {
		return false
	}
	c.subs[s] = struct{}{}
	if c.index != nil {
		c.index.add(s)
	}
	return true
}

func (c *channel) remove(s *Subscription) {
	delete(c.subs, s)
	if c.index != nil {
		c.index.remove(s)
	}
}

// Index makes channel offer each event only to the subscribers whose
// SubscribeRequest.Keys hold one of the keys keys returns for it, and to
// those without Keys: a face that narrows one channel by something in its
// events (the Mercure face, by topic) spares the hub from offering every
// event to every subscriber. keys runs with the hub's lock held, once per
// event, and must be fast; it returns nil for an event no keyed
// subscriber wants. Call it before subscribers come, once per channel.
func (h *Hub) Index(channel string, keys func(*Event) []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.indexes == nil {
		h.indexes = make(map[string]func(*Event) []string)
	}
	h.indexes[channel] = keys
	if c := h.channels[channel]; c != nil {
		c.index = newKeyIndex(keys)
		for s := range c.subs {
			c.index.add(s)
		}
	}
}

// keyIndex is a channel's subscribers by key (Hub.Index).
type keyIndex struct {
	keys  func(*Event) []string
	open  map[*Subscription]struct{}            // without keys: offered every event
	keyed map[string]map[*Subscription]struct{} // by key
}

func newKeyIndex(keys func(*Event) []string) *keyIndex {
	return &keyIndex{keys: keys, open: make(map[*Subscription]struct{}), keyed: make(map[string]map[*Subscription]struct{})}
}

func (x *keyIndex) add(s *Subscription) {
	if len(s.keys) == 0 {
		x.open[s] = struct{}{}
		return
	}
	for _, k := range s.keys {
		set := x.keyed[k]
		if set == nil {
			set = make(map[*Subscription]struct{})
			x.keyed[k] = set
		}
		set[s] = struct{}{}
	}
}

func (x *keyIndex) remove(s *Subscription) {
	delete(x.open, s)
	for _, k := range s.keys {
		if set := x.keyed[k]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(x.keyed, k)
			}
		}
	}
}

// offer calls f once for every subscriber e is for.
func (x *keyIndex) offer(e *Event, f func(*Subscription)) {
	for s := range x.open {
		f(s)
	}
	keys := x.keys(e)
	if len(keys) == 1 {
		for s := range x.keyed[keys[0]] {
			f(s)
		}
		return
	}
	// A subscriber of one key is in one of the sets; one of several keys
	// may be in more, and still gets e once.
	var done map[*Subscription]bool
	for i, k := range keys {
		if slices.Contains(keys[:i], k) {
			continue // a key named twice offers once
		}
		for s := range x.keyed[k] {
			if len(s.keys) > 1 {
				if done[s] {
					continue
				}
				if done == nil {
					done = make(map[*Subscription]bool)
				}
				done[s] = true
			}
			f(s)
		}
	}
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
