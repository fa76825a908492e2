package presence

// The directory's two goroutines: run sends the census and takes
// decisions on a timer; receive applies what the reserved channels carry.

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// publishTimeout bounds one publish of the census or of decisions (a node
// still joining makes Publish wait for it).
const publishTimeout = 5 * time.Second

// goneFor is how long a node's census is kept after it left the member
// list, in case it comes back (a refuted death).
const goneFor = time.Minute

func (d *Directory) run() {
	defer d.wg.Done()
	t := time.NewTicker(d.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		d.tick()
	}
}

// tick sends the census and announces transitions.
func (d *Directory) tick() {
	now := d.opts.Now()
	origins := []uint64{d.origin}
	if d.opts.Members != nil {
		origins = append(origins, d.opts.Members.Origins()...)
	}
	d.mu.Lock()
	if now.Sub(d.lastTick) > 10*d.opts.Interval+time.Second {
		// This node was stopped (frozen, starved): what it hears now
		// may be old news. Wait a handover before deciding.
		d.stableSince = now
	}
	d.lastTick = now
	d.updateMembers(origins, now)
	d.updateFresh(now)
	c := d.nextCensus(now, d.asking(now))
	acts := d.decide(now)
	if now.Sub(d.forgot) > time.Minute {
		d.forget(now)
		d.forgot = now
	}
	d.mu.Unlock()

	if c != nil {
		b, _ := json.Marshal(c)
		if err := d.publish([]broker.Message{{Channel: CensusChannel, Type: "census", Data: b}}, nil); err != nil {
			d.mu.Lock()
			d.census.full = true // the peers see a gap: a snapshot mends it
			d.mu.Unlock()
		}
	}
	if len(acts) > 0 {
		msgs := make([]broker.Message, len(acts))
		for i, a := range acts {
			msgs[i] = d.message(a)
		}
		_ = d.publish(msgs, acts)
	}
}

// publish publishes msgs; for decisions (acts), it records them as
// announced at once, before their events come back through receive.
func (d *Directory) publish(msgs []broker.Message, acts []action) error {
	ctx, cancel := context.WithTimeout(d.ctx, publishTimeout)
	defer cancel()
	ids, _, err := d.hub.Publish(ctx, msgs, broker.AckLocal)
	if err != nil {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, broker.ErrClosed) {
			d.log.Warn("presence not published", "err", err)
		}
		return err
	}
	if len(acts) == 0 {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, a := range acts {
		on := a.kind == KindOccupied || a.kind == KindJoin
		d.set(a.ch, a.subject, on, ids[i])
		d.log.Debug("presence", "channel", a.ch, "kind", a.kind, "subject", a.subject, "id", ids[i])
	}
	return nil
}

// updateMembers takes the member list: a member that joined gets our
// snapshot, one that left is no longer counted. Called with d.mu held.
func (d *Directory) updateMembers(origins []uint64, now time.Time) {
	slices.Sort(origins)
	origins = slices.Compact(origins)
	if slices.Equal(origins, d.order) {
		return
	}
	live := make(map[uint64]bool, len(origins))
	for _, o := range origins {
		live[o] = true
		if !d.live[o] && o != d.origin {
			d.census.full = true // it needs to hear everything we have
			if n := d.nodes[o]; n != nil {
				n.gone = time.Time{}
			}
		}
	}
	left := false
	for o := range d.live {
		if !live[o] {
			left = true
			if n := d.nodes[o]; n != nil {
				n.gone = now
			}
		}
	}
	if left {
		// Decide again only on a census each live member sent since:
		// see holdsDeparted.
		for _, n := range d.nodes {
			n.mark = n.seq
		}
	}
	d.live, d.order = live, origins
	clear(d.deciders)
	d.changed = true
	d.stableSince = now
	for o, n := range d.nodes {
		d.recount(o, n)
		if !live[o] && !n.gone.IsZero() && now.Sub(n.gone) > goneFor {
			delete(d.nodes, o)
		}
	}
}

// asking returns the live members whose snapshot we lack and have not
// asked for within a heartbeat. Called with d.mu held.
func (d *Directory) asking(now time.Time) []uint64 {
	var out []uint64
	for _, o := range d.order {
		if o == d.origin {
			continue
		}
		n := d.nodes[o]
		if n != nil && n.synced {
			continue
		}
		if n == nil {
			// It sends a snapshot when it starts and when it sees us
			// join: ask only if none came within a heartbeat.
			if now.Sub(d.stableSince) < d.opts.Heartbeat {
				continue
			}
		}
		if at, ok := d.census.want[o]; ok && now.Sub(at) < d.opts.Heartbeat {
			continue
		}
		d.census.want[o] = now
		out = append(out, o)
	}
	for o := range d.census.want {
		if !d.live[o] {
			delete(d.census.want, o)
		}
	}
	return out
}

// receive applies the census and the announcements as they arrive.
func (d *Directory) receive() {
	defer d.wg.Done()
	var buf []*broker.Event
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-d.sub.Ready():
		}
		evs, err := d.sub.Drain(buf[:0])
		now := d.opts.Now()
		d.mu.Lock()
		for _, e := range evs {
			d.handle(e, now)
		}
		d.mu.Unlock()
		d.sub.Release()
		clear(evs)
		buf = evs
		if errors.Is(err, broker.ErrSlow) {
			// Fell a whole queue behind: what we hold of every
			// node may have missed a census.
			if err := d.resubscribe(); err != nil {
				return
			}
			continue
		}
		if err != nil {
			return
		}
	}
}

// resubscribe replaces a subscription cut off as slow and forgets every
// node's census, which snapshots then mend.
func (d *Directory) resubscribe() error {
	census, _ := broker.ParsePattern(CensusChannel)
	notices, _ := broker.ParsePattern(NoticePrefix + ">")
	sub, err := d.hub.Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{census, notices}, Own: true})
	if err != nil {
		return err
	}
	d.sub.Close()
	d.mu.Lock()
	d.sub = sub
	for _, n := range d.nodes {
		d.uncount(n)
		n.synced = false
	}
	d.mu.Unlock()
	d.log.Warn("presence fell behind: asking every node for a snapshot")
	return nil
}

// handle applies one event. Called with d.mu held.
func (d *Directory) handle(e *broker.Event, now time.Time) {
	switch {
	case e.Channel == CensusChannel:
		if e.ID.Origin == d.origin {
			return
		}
		c, err := decodeCensus(e.Data)
		if err != nil {
			d.log.Warn("census refused", "node", hexOrigin(e.ID.Origin), "err", err)
			return
		}
		d.applyCensus(e.ID.Origin, c, now)
	default:
		d.applyNotice(e)
	}
}
