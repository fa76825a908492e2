package transport

import (
	"cmp"
	"slices"
	"time"
)

// LinkStats is this node's relay link to one peer, as views such as the
// UI's link matrix show it. It is a snapshot.
type LinkStats struct {
	Peer    string        // the peer's member name
	Up      bool          // the relay connection is open
	Queued  int           // frames waiting to be written to the peer
	Unacked int           // our events sent and not yet acknowledged by the peer
	Oldest  time.Duration // how long ago the oldest unacknowledged event was published; 0 when none is
	LastAck time.Duration // since the peer last acknowledged; 0 before its first acknowledgement
}

// Links returns this node's relay links, one per peer, sorted by peer name.
// It is a question: it takes each link's lock briefly and changes nothing.
func (c *Cluster) Links() []LinkStats {
	c.mu.Lock()
	ls := make([]*link, 0, len(c.links))
	for _, l := range c.links {
		ls = append(ls, l)
	}
	c.mu.Unlock()
	now := time.Now()
	out := make([]LinkStats, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.stats(now))
	}
	slices.SortFunc(out, func(a, b LinkStats) int { return cmp.Compare(a.Peer, b.Peer) })
	return out
}

func (l *link) stats(now time.Time) LinkStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := LinkStats{Peer: l.name, Up: l.up.Load(), Queued: len(l.queue), Unacked: len(l.unacked)}
	if len(l.unacked) > 0 {
		s.Oldest = max(now.Sub(l.unacked[0].Born), 0)
	}
	if !l.lastAck.IsZero() {
		s.LastAck = now.Sub(l.lastAck)
	}
	return s
}
