package broker

import (
	"sort"
	"time"
)

// entry is one retained event. Entries are shared by three indexes: the
// channel's log (arrival order), the arrival queue (for age and byte
// eviction) and the origin's log (sequence order, for repair).
type entry struct {
	id      ID
	n       uint64 // the event's place in this node's arrival order
	e       *Event // nil once evicted
	arrived time.Time
	removed bool
}

// queue is a FIFO of entries that drops removed ones lazily and compacts
// itself once most of it is dead, so eviction stays O(1) amortized.
type queue struct {
	items []*entry
	head  int
	dead  int
}

func (q *queue) push(en *entry) { q.items = append(q.items, en) }

func (q *queue) len() int { return len(q.items) - q.head }

func (q *queue) front() *entry {
	for q.head < len(q.items) && q.items[q.head].removed {
		q.items[q.head] = nil
		q.head++
		q.dead--
	}
	if q.head > 64 && q.head > len(q.items)/2 {
		// Move the live part down, or the slice grows by one slot for
		// every event ever retained.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	if q.head == len(q.items) {
		return nil
	}
	return q.items[q.head]
}

func (q *queue) markDead() {
	q.dead++
	if q.dead > 1024 && q.dead > q.len()/2 {
		live := q.items[:0]
		for _, en := range q.items[q.head:] {
			if !en.removed {
				live = append(live, en)
			}
		}
		clear(q.items[len(live):])
		q.items, q.head, q.dead = live, 0, 0
	}
}

// channelLog holds a channel's retained events in the order they arrived
// here, which is the order its subscribers got them.
type channelLog struct {
	entries []*entry
	head    int
	bytes   int64
	evicted evicted // what this channel has evicted: a resume that lacks it misses events
}

func (l *channelLog) len() int { return len(l.entries) - l.head }

func (l *channelLog) live() []*entry { return l.entries[l.head:] }

// insert appends en: events are stored in arrival order.
func (l *channelLog) insert(en *entry) { l.entries = append(l.entries, en) }

// remove takes en out of the log.
func (l *channelLog) remove(en *entry) {
	live := l.live()
	i := sort.Search(len(live), func(i int) bool { return live[i].n >= en.n })
	if i == len(live) || live[i] != en {
		return
	}
	if i == 0 {
		l.entries[l.head] = nil
		l.head++
		if l.head > 64 && l.head > len(l.entries)/2 {
			n := copy(l.entries, l.entries[l.head:])
			clear(l.entries[n:])
			l.entries, l.head = l.entries[:n], 0
		}
	} else {
		copy(l.entries[l.head+i:], l.entries[l.head+i+1:])
		l.entries[len(l.entries)-1] = nil
		l.entries = l.entries[:len(l.entries)-1]
	}
	l.evicted.add(en.id)
}

// missing returns the retained events a client at p has not seen, in
// arrival order.
func (l *channelLog) missing(p Position) []*entry {
	var out []*entry
	for _, en := range l.live() {
		if !p.Includes(en.id) {
			out = append(out, en)
		}
	}
	return out
}

func (l *channelLog) contains(id ID) bool {
	for _, en := range l.live() {
		if en.id == id {
			return true
		}
	}
	return false
}

// evicted records, per origin, the largest Time of the events evicted: a
// client whose position is below it for some origin has missed events.
type evicted map[uint64]uint64

func (v *evicted) add(id ID) {
	if *v == nil {
		*v = make(evicted)
	}
	(*v)[id.Origin] = max((*v)[id.Origin], id.Time)
}

func (v *evicted) merge(o evicted) {
	for origin, t := range o {
		v.add(ID{Origin: origin, Time: t})
	}
}

func (v evicted) clone() evicted {
	if len(v) == 0 {
		return nil
	}
	out := make(evicted, len(v))
	for o, t := range v {
		out[o] = t
	}
	return out
}

// missedBy reports whether a client at p has missed an evicted event.
func (v evicted) missedBy(p Position) bool {
	for o, t := range v {
		if t > p.Threshold(o) {
			return true
		}
	}
	return false
}

// originLog holds an origin's retained events in sequence order.
type originLog struct {
	entries []*entry
	dead    int
}

func (o *originLog) insert(en *entry) {
	n := len(o.entries)
	if n == 0 || o.entries[n-1].id.Seq < en.id.Seq {
		o.entries = append(o.entries, en)
		return
	}
	i := sort.Search(n, func(i int) bool { return o.entries[i].id.Seq > en.id.Seq })
	o.entries = append(o.entries, nil)
	copy(o.entries[i+1:], o.entries[i:])
	o.entries[i] = en
}

func (o *originLog) markDead() {
	o.dead++
	if o.dead > 64 && o.dead > len(o.entries)/2 {
		live := o.entries[:0]
		for _, en := range o.entries {
			if !en.removed {
				live = append(live, en)
			}
		}
		clear(o.entries[len(live):])
		o.entries, o.dead = live, 0
	}
}

// from returns the retained entries with a sequence number of at least seq.
func (o *originLog) from(seq uint64) []*entry {
	i := sort.Search(len(o.entries), func(i int) bool { return o.entries[i].id.Seq >= seq })
	return o.entries[i:]
}

// history bounds retained events by count per channel, by age, and by a
// byte budget across all channels. It is not safe for concurrent use: the
// hub holds its lock around every call.
type history struct {
	size    int
	ttl     time.Duration
	budget  int64
	bytes   int64
	events  int
	arrival queue
	origins map[uint64]*originLog
	channel func(name string) *channel // the hub's channel by name, or nil
}

// add retains e on c and evicts what the bounds no longer allow.
func (h *history) add(c *channel, e *Event, n uint64, now time.Time) {
	en := &entry{id: e.ID, n: n, e: e, arrived: now}
	c.log.insert(en)
	c.log.bytes += int64(e.Size())
	h.arrival.push(en)
	o := h.origins[e.ID.Origin]
	if o == nil {
		o = &originLog{}
		h.origins[e.ID.Origin] = o
	}
	o.insert(en)
	h.bytes += int64(e.Size())
	h.events++
	for c.log.len() > h.size {
		h.evict(c, c.log.live()[0])
	}
	h.expire(now)
}

// expire evicts events older than the TTL and, oldest first, whatever
// exceeds the byte budget.
func (h *history) expire(now time.Time) {
	for {
		en := h.arrival.front()
		if en == nil {
			return
		}
		if now.Sub(en.arrived) < h.ttl && h.bytes <= h.budget {
			return
		}
		h.evict(h.channel(en.e.Channel), en)
	}
}

func (h *history) evict(c *channel, en *entry) {
	if en.removed {
		return
	}
	if c != nil {
		c.log.remove(en)
		c.log.bytes -= int64(en.e.Size())
	}
	en.removed = true
	h.bytes -= int64(en.e.Size())
	h.events--
	h.arrival.markDead()
	if o := h.origins[en.id.Origin]; o != nil {
		o.markDead()
		if o.dead == len(o.entries) {
			delete(h.origins, en.id.Origin)
		}
	}
	en.e = nil // free the payload; the id stays for the lazy indexes
}
