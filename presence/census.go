package presence

// The census: each node's summary of its streams, sent as events on
// rumor.census, and what a node holds of the others'.

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// census is the data of one event on rumor.census. A delta's entries
// set the sender's count of each key (n 0 removes the key and its
// subjects) and of the subjects it lists (0 removes one); a full census
// replaces everything the sender had said.
type census struct {
	Seq     uint64               `json:"q"`           // the sender's census number, from 1 with no holes
	Full    bool                 `json:"f,omitempty"` // a snapshot
	Streams int                  `json:"t"`           // the sender's open streams
	Ch      map[string]wireEntry `json:"c,omitempty"`
	Opened  []Record             `json:"r,omitempty"` // streams opened (with Options.Records), or all of them in a snapshot
	Closed  []string             `json:"x,omitempty"` // ids of streams closed
	Want    []string             `json:"w,omitempty"` // origins (hex) whose snapshot the sender lacks
	Ann     map[string]wireAnn   `json:"a,omitempty"` // a snapshot's announced states, for a node that joins
	Heard   map[string]uint64    `json:"h,omitempty"` // per origin (hex), the highest sequence of its announcements the sender applied: all, in a snapshot; those that rose, in a delta
}

type wireEntry struct {
	N int            `json:"n"`
	S map[string]int `json:"s,omitempty"`
}

// Bounds on a census from a peer, which must not be trusted blindly.
const (
	maxKeyLen     = broker.MaxChannelLen
	maxSubjectLen = 1024
	maxHeard      = 4096 // origins in one census's Heard
)

// decodeCensus parses a census from a peer.
func decodeCensus(b []byte) (*census, error) {
	var c census
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("census: %w", err)
	}
	if c.Seq == 0 {
		return nil, fmt.Errorf("census: no sequence number")
	}
	for k, e := range c.Ch {
		if k == "" || len(k) > maxKeyLen || e.N < 0 {
			return nil, fmt.Errorf("census: bad entry %.64q", k)
		}
		for s, n := range e.S {
			if s == "" || len(s) > maxSubjectLen || n < 0 || n > e.N || n == 0 && c.Full {
				return nil, fmt.Errorf("census: bad subject in %.64q", k)
			}
		}
	}
	if len(c.Heard) > maxHeard {
		return nil, fmt.Errorf("census: too many origins heard")
	}
	for o := range c.Heard {
		if _, ok := parseOrigin(o); !ok {
			return nil, fmt.Errorf("census: bad origin %.64q", o)
		}
	}
	for ch, a := range c.Ann {
		if _, ok := NoticeChannel(ch); !ok {
			return nil, fmt.Errorf("census: bad announced channel %.64q", ch)
		}
		for s := range a.Subs {
			if s == "" || len(s) > maxSubjectLen {
				return nil, fmt.Errorf("census: bad announced subject in %.64q", ch)
			}
		}
	}
	return &c, nil
}

// censusState is what this node sends next.
type censusState struct {
	seq    uint64
	full   bool                           // the next census is a snapshot
	dirty  map[string]map[string]struct{} // keys changed since the last census, and their subjects that did
	opened map[string]Record
	closed map[string]struct{}
	want   map[uint64]time.Time // origins asked for a snapshot, and when
	heard  map[uint64]struct{}  // origins whose Directory.heard rose since the last census
	sent   time.Time            // when the last census went out
}

func newCensusState() censusState {
	return censusState{
		full:   true, // the first tells every member all there is
		dirty:  make(map[string]map[string]struct{}),
		opened: make(map[string]Record),
		closed: make(map[string]struct{}),
		want:   make(map[uint64]time.Time),
		heard:  make(map[uint64]struct{}),
	}
}

func (c *censusState) open(r Record) { c.opened[r.ID] = r }

func (c *censusState) close(id string) {
	if _, ok := c.opened[id]; ok {
		delete(c.opened, id) // never sent: nobody needs to hear of it
		return
	}
	c.closed[id] = struct{}{}
}

// nextCensus builds the census to send now, or nil when there is nothing
// to say and no heartbeat is due. Called with d.mu held.
func (d *Directory) nextCensus(now time.Time, asking []uint64) *census {
	cs := &d.census
	if !cs.full && len(cs.dirty) == 0 && len(cs.opened) == 0 && len(cs.closed) == 0 && len(cs.heard) == 0 && len(asking) == 0 && now.Sub(cs.sent) < d.opts.Heartbeat {
		return nil
	}
	cs.seq++
	c := &census{Seq: cs.seq, Full: cs.full, Streams: d.total}
	if cs.full {
		c.Ch = make(map[string]wireEntry, len(d.local))
		for k, e := range d.local {
			c.Ch[k] = wire(e)
		}
		for _, r := range d.streams {
			c.Opened = append(c.Opened, r)
		}
		c.Ann = d.wireAnnounced()
		for o, q := range d.heard {
			if c.Heard == nil {
				c.Heard = make(map[string]uint64, len(d.heard))
			}
			c.Heard[hexOrigin(o)] = q
		}
	} else {
		if len(cs.dirty) > 0 {
			c.Ch = make(map[string]wireEntry, len(cs.dirty))
		}
		for k, subs := range cs.dirty {
			e := d.local[k]
			w := wireEntry{}
			if e != nil {
				w.N = e.n
			}
			if len(subs) > 0 && w.N > 0 {
				w.S = make(map[string]int, len(subs))
				for s := range subs {
					w.S[s] = e.subs[s] // 0: gone
				}
			}
			c.Ch[k] = w
		}
		for _, r := range cs.opened {
			c.Opened = append(c.Opened, r)
		}
		for id := range cs.closed {
			c.Closed = append(c.Closed, id)
		}
		for o := range cs.heard {
			if q, ok := d.heard[o]; ok {
				if c.Heard == nil {
					c.Heard = make(map[string]uint64, len(cs.heard))
				}
				c.Heard[hexOrigin(o)] = q
			}
		}
	}
	for _, o := range asking {
		c.Want = append(c.Want, hexOrigin(o))
	}
	cs.full = false
	clear(cs.dirty)
	clear(cs.opened)
	clear(cs.closed)
	clear(cs.heard)
	cs.sent = now
	return c
}

func wire(e *entry) wireEntry {
	if e == nil {
		return wireEntry{}
	}
	w := wireEntry{N: e.n}
	if len(e.subs) > 0 {
		w.S = make(map[string]int, len(e.subs))
		for s, n := range e.subs {
			w.S[s] = n
		}
	}
	return w
}

// node is what this node holds of another's census.
type node struct {
	synced  bool // holds a snapshot and every census after it
	counted bool // its entries are in Directory.agg (synced and live)
	seq     uint64
	at      time.Time // when its last census arrived
	streams int
	ch      map[string]*entry
	recs    map[string]Record
	gone    time.Time         // when it left the member list; zero while live
	heard   map[uint64]uint64 // its census's Heard: of each origin, the highest announcement it applied
	mark    uint64            // its census number when a member last left: a census above it was sent after
}

// applyCensus takes a census from origin. Called with d.mu held.
func (d *Directory) applyCensus(origin uint64, c *census, now time.Time) {
	n := d.nodes[origin]
	if n == nil {
		n = &node{ch: make(map[string]*entry), recs: make(map[string]Record)}
		d.nodes[origin] = n
	}
	n.at = now
	for _, w := range c.Want {
		if w == d.self {
			d.census.full = true
		}
	}
	switch {
	case c.Full:
		d.uncount(n)
		n.ch = make(map[string]*entry, len(c.Ch))
		for k, w := range c.Ch {
			if w.N > 0 {
				n.ch[k] = unwire(w)
			}
		}
		n.recs = make(map[string]Record, len(c.Opened))
		for _, r := range c.Opened {
			n.recs[r.ID] = r
		}
		n.synced = true
		n.heard = make(map[uint64]uint64, len(c.Heard))
		d.mergeHeard(n, c.Heard)
		d.mergeAnnounced(c.Ann)
		// The snapshot's announced states fold in every announcement
		// its sender had applied: this node now holds them too, even
		// those history no longer has (holdsDeparted).
		for o, q := range n.heard {
			if o != d.origin && q > d.heard[o] {
				d.heard[o] = q
			}
		}
		delete(d.census.want, origin)
	case n.synced && c.Seq == n.seq+1:
		for k, w := range c.Ch {
			d.applyEntry(n, k, w)
		}
		for _, r := range c.Opened {
			n.recs[r.ID] = r
		}
		for _, id := range c.Closed {
			delete(n.recs, id)
		}
		d.mergeHeard(n, c.Heard)
	default:
		// A gap (a census given up on, or one from before we joined):
		// what we hold of it is no longer its state.
		if n.synced {
			d.log.Debug("census gap: asking for a snapshot", "node", hexOrigin(origin), "have", n.seq, "got", c.Seq)
		}
		d.uncount(n)
		n.synced = false
	}
	n.seq = c.Seq
	n.streams = c.Streams
	d.recount(origin, n)
}

// mergeHeard takes a census's Heard into n. Called with d.mu held.
func (d *Directory) mergeHeard(n *node, h map[string]uint64) {
	if n.heard == nil {
		n.heard = make(map[uint64]uint64, len(h))
	}
	for s, q := range h {
		if o, ok := parseOrigin(s); ok && q > n.heard[o] {
			n.heard[o] = q
		}
	}
}

func unwire(w wireEntry) *entry {
	e := &entry{n: w.N}
	if len(w.S) > 0 {
		e.subs = make(map[string]int, len(w.S))
		for s, k := range w.S {
			e.subs[s] = k
		}
	}
	return e
}

// recount puts n's entries into the sum, or takes them out, as it is
// synced and live. Called with d.mu held.
func (d *Directory) recount(origin uint64, n *node) {
	want := n.synced && d.live[origin]
	if want == n.counted {
		return
	}
	if want {
		for k, e := range n.ch {
			d.count(k, e, +1)
		}
		n.counted = true
		return
	}
	d.uncount(n)
}

func (d *Directory) uncount(n *node) {
	if !n.counted {
		return
	}
	for k, e := range n.ch {
		d.count(k, e, -1)
	}
	n.counted = false
}

// parseOrigin reads an origin in hex.
func parseOrigin(s string) (uint64, bool) {
	o, err := strconv.ParseUint(s, 16, 64)
	return o, err == nil && o != 0
}

// applyEntry applies one key of a delta to n, and to the sum while n is
// counted. Called with d.mu held.
func (d *Directory) applyEntry(n *node, k string, w wireEntry) {
	d.changed = true
	old := n.ch[k]
	if w.N == 0 {
		if old != nil {
			if n.counted {
				d.count(k, old, -1)
			}
			delete(n.ch, k)
		}
		return
	}
	if old == nil {
		old = &entry{}
		n.ch[k] = old
	}
	var a *entry
	if n.counted {
		a = d.aggEntry(k)
		a.n += w.N - old.n
	}
	old.n = w.N
	for s, c := range w.S {
		if a != nil {
			bump(a, s, c-old.subs[s])
			a.n -= c - old.subs[s] // bump counts streams too; the count was set above
		}
		if c == 0 {
			delete(old.subs, s)
			continue
		}
		if old.subs == nil {
			old.subs = make(map[string]int)
		}
		old.subs[s] = c
	}
	if a != nil {
		d.tidy(k)
	}
}
