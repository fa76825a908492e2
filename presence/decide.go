package presence

// Decisions: which node announces a channel's transitions, what has been
// announced, and when a change becomes a transition.

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// lww is one announced state; the announcement with the latest event id
// wins, whatever order they arrive in.
type lww struct {
	on bool
	id broker.ID
}

// announced is what was announced of a channel.
type announced struct {
	occ  lww
	subs map[string]lww
}

func (a *announced) active() bool {
	if a.occ.on {
		return true
	}
	for _, s := range a.subs {
		if s.on {
			return true
		}
	}
	return false
}

// set records an announcement of ch (subject "" for occupied/vacated).
// Called with d.mu held.
func (d *Directory) set(ch, subject string, on bool, id broker.ID) {
	d.changed = true
	a := d.ann[ch]
	if a == nil {
		a = &announced{}
		d.ann[ch] = a
	}
	if subject == "" {
		if id.Compare(a.occ.id) > 0 {
			a.occ = lww{on: on, id: id}
		}
		return
	}
	if a.subs == nil {
		a.subs = make(map[string]lww)
	}
	if id.Compare(a.subs[subject].id) > 0 {
		a.subs[subject] = lww{on: on, id: id}
	}
}

// applyNotice takes an announcement, ours or another decider's. Called
// with d.mu held.
func (d *Directory) applyNotice(e *broker.Event) {
	ch, ok := strings.CutPrefix(e.Channel, NoticePrefix)
	if !ok {
		return
	}
	switch e.Type {
	case KindOccupied, KindVacated, KindJoin, KindLeave:
		if o := e.ID.Origin; o != d.origin && e.ID.Seq > d.heard[o] {
			d.heard[o] = e.ID.Seq
			d.census.heard[o] = struct{}{}
		}
	}
	switch e.Type {
	case KindOccupied, KindVacated:
		d.set(ch, "", e.Type == KindOccupied, e.ID)
	case KindJoin, KindLeave:
		var n Notice
		if json.Unmarshal(e.Data, &n) != nil || n.Subject == "" || len(n.Subject) > maxSubjectLen {
			return
		}
		d.set(ch, n.Subject, e.Type == KindJoin, e.ID)
	}
}

// wireAnn is an announced state in a snapshot.
type wireAnn struct {
	On   bool               `json:"on"`
	ID   string             `json:"id"`
	Subs map[string]wireLWW `json:"s,omitempty"`
}

type wireLWW struct {
	On bool   `json:"on"`
	ID string `json:"id"`
}

// wireAnnounced encodes the announced states worth telling a node that
// joins: all but those forgotten soon. Called with d.mu held.
func (d *Directory) wireAnnounced() map[string]wireAnn {
	out := make(map[string]wireAnn, len(d.ann))
	for ch, a := range d.ann {
		w := wireAnn{On: a.occ.on, ID: idString(a.occ.id)}
		for s, l := range a.subs {
			if w.Subs == nil {
				w.Subs = make(map[string]wireLWW, len(a.subs))
			}
			w.Subs[s] = wireLWW{On: l.on, ID: idString(l.id)}
		}
		out[ch] = w
	}
	return out
}

func idString(id broker.ID) string {
	if id.IsZero() {
		return ""
	}
	return id.String()
}

// mergeAnnounced folds in a snapshot's announced states. Called with d.mu
// held.
func (d *Directory) mergeAnnounced(m map[string]wireAnn) {
	for ch, w := range m {
		if id, err := broker.ParseID(w.ID); err == nil {
			d.set(ch, "", w.On, id)
		}
		for s, l := range w.Subs {
			if id, err := broker.ParseID(l.ID); err == nil {
				d.set(ch, s, l.On, id)
			}
		}
	}
}

// forget drops announced "off" states older than forgetAfter. Called with
// d.mu held.
func (d *Directory) forget(now time.Time) {
	for o := range d.heard {
		if !d.live[o] && d.nodes[o] == nil {
			delete(d.heard, o)
		}
	}
	for _, n := range d.nodes {
		for o := range n.heard {
			if !d.live[o] && d.nodes[o] == nil {
				delete(n.heard, o)
			}
		}
	}
	old := func(l lww) bool { return !l.on && now.Sub(l.id.Unix()) > d.opts.Remember }
	for ch, a := range d.ann {
		for s, l := range a.subs {
			if old(l) {
				delete(a.subs, s)
			}
		}
		if len(a.subs) == 0 && (a.occ.id.IsZero() || old(a.occ)) {
			delete(d.ann, ch)
		}
	}
}

// decider returns the live member that decides key: the highest
// rendezvous hash. Called with d.mu held.
func (d *Directory) decider(key string) uint64 {
	if o, ok := d.deciders[key]; ok {
		return o
	}
	if len(d.deciders) > 100_000 {
		clear(d.deciders) // a bound, not a cache policy: it fills again as needed
	}
	o := d.rendezvous(key)
	d.deciders[key] = o
	return o
}

// rendezvous computes decider's answer. Called with d.mu held.
func (d *Directory) rendezvous(key string) uint64 {
	h := sha256.Sum256([]byte(key))
	k := binary.LittleEndian.Uint64(h[:8])
	var best, bestScore uint64
	for _, o := range d.order {
		if s := mix(k ^ o); best == 0 || s > bestScore {
			best, bestScore = o, s
		}
	}
	return best
}

// mix is splitmix64's finaliser: every bit of x moves every bit of the
// result.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// decideTimers are the decider's own clocks: since when a channel has been
// empty, and a subject gone from it. A new decider starts them afresh.
type decideTimers struct {
	empty map[string]time.Time
	gone  map[[2]string]time.Time
}

func newDecideTimers() decideTimers {
	return decideTimers{empty: make(map[string]time.Time), gone: make(map[[2]string]time.Time)}
}

// since returns when the condition began, starting it now if it had not.
func since[K comparable](m map[K]time.Time, k K, now time.Time) time.Time {
	t, ok := m[k]
	if !ok {
		m[k] = now
		return now
	}
	return t
}

// action is a transition to announce.
type action struct {
	ch, kind, subject string
	subscribers       int
}

// updateFresh notes whether this node holds a fresh census of every live
// member; a change restarts the handover. Called with d.mu held.
func (d *Directory) updateFresh(now time.Time) {
	fresh := true
	for _, o := range d.order {
		if o == d.origin {
			continue
		}
		if n := d.nodes[o]; n == nil || !n.synced || now.Sub(n.at) >= 3*d.opts.Heartbeat {
			fresh = false
			break
		}
	}
	if fresh != d.fresh {
		d.fresh = fresh
		d.stableSince = now
	}
	d.caughtUp = d.holdsDeparted()
}

// holdsDeparted reports whether this node has applied every announcement
// of a departed member that any live member has, as far as their census
// sent since the departure tells: a dying decider's last announcements
// may have reached some nodes and not this one, and the relay's repair
// brings them here later. Deciding before would announce them again.
// A node's announcements come to each subscriber in sequence, so the
// highest sequence applied stands for all below it. Called with d.mu held.
func (d *Directory) holdsDeparted() bool {
	for _, o := range d.order {
		n := d.nodes[o]
		if o == d.origin || n == nil {
			continue
		}
		if n.seq <= n.mark {
			return false // no census from it since a member left
		}
		for g, q := range n.heard {
			if d.live[g] || g == d.origin || d.nodes[g] == nil {
				continue // live (its own link brings it), or departed long ago
			}
			if d.heard[g] < q {
				return false
			}
		}
	}
	return true
}

// deciding reports whether this node takes decisions now. Called with d.mu
// held.
func (d *Directory) deciding(now time.Time) bool {
	return d.fresh && d.caughtUp && now.Sub(d.stableSince) >= d.opts.Handover
}

// decide returns the transitions this node must announce now. Called with
// d.mu held.
func (d *Directory) decide(now time.Time) []action {
	if !d.deciding(now) {
		clear(d.timers.empty)
		clear(d.timers.gone)
		d.wasDeciding = false
		return nil
	}
	// Nothing to look at unless something changed, a grace is running,
	// or this node has just begun to decide.
	if !d.changed && d.wasDeciding && len(d.timers.empty) == 0 && len(d.timers.gone) == 0 {
		return nil
	}
	d.changed, d.wasDeciding = false, true
	keys := make(map[string]struct{}, len(d.agg)+len(d.ann))
	for k := range d.agg {
		keys[k] = struct{}{}
	}
	for k, a := range d.ann {
		if a.active() {
			keys[k] = struct{}{}
		}
	}
	var out []action
	for k := range keys {
		if _, ok := NoticeChannel(k); !ok {
			continue
		}
		if d.decider(k) != d.origin {
			delete(d.timers.empty, k)
			for g := range d.timers.gone {
				if g[0] == k {
					delete(d.timers.gone, g)
				}
			}
			continue
		}
		out = append(out, d.decideOne(k, now)...)
	}
	return out
}

// decideOne compares a channel's streams with what was announced.
func (d *Directory) decideOne(k string, now time.Time) []action {
	var out []action
	sum := d.agg[k]
	a := d.ann[k]
	if a == nil {
		a = &announced{}
	}
	n := 0
	if sum != nil {
		n = sum.n
	}
	grace := d.opts.Grace
	if n > 0 {
		delete(d.timers.empty, k)
		if !a.occ.on {
			out = append(out, action{ch: k, kind: KindOccupied, subscribers: n})
		}
		for _, s := range slices.Sorted(maps.Keys(sum.subs)) {
			delete(d.timers.gone, [2]string{k, s})
			if l := a.subs[s]; !l.on {
				out = append(out, action{ch: k, kind: KindJoin, subject: s, subscribers: n})
			}
		}
		for _, s := range slices.Sorted(maps.Keys(a.subs)) {
			l := a.subs[s]
			if _, here := sum.subs[s]; here || !l.on {
				continue
			}
			if now.Sub(since(d.timers.gone, [2]string{k, s}, now)) >= grace {
				out = append(out, action{ch: k, kind: KindLeave, subject: s, subscribers: n})
			}
		}
		return out
	}
	if !a.active() {
		delete(d.timers.empty, k)
		return nil
	}
	if now.Sub(since(d.timers.empty, k, now)) < grace {
		return nil
	}
	for _, s := range slices.Sorted(maps.Keys(a.subs)) {
		if l := a.subs[s]; l.on {
			out = append(out, action{ch: k, kind: KindLeave, subject: s})
		}
	}
	if a.occ.on {
		out = append(out, action{ch: k, kind: KindVacated})
	}
	return out
}

// message is the event that announces a. It carries no idempotency key:
// keys would crowd the publishers' out of the hub's bounded store, and the
// handover already keeps two deciders from deciding at once.
func (d *Directory) message(a action) broker.Message {
	ch, _ := NoticeChannel(a.ch)
	data, _ := json.Marshal(Notice{Channel: a.ch, Kind: a.kind, Subject: a.subject, Subscribers: a.subscribers, Node: d.self})
	return broker.Message{Channel: ch, Type: a.kind, Data: data}
}
