package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// The resume model: hubs on an in-memory network that the test drives one
// message at a time, with freezes, partitions, crashes and restarts, and
// clients that hop between hubs carrying the id text of the last event they
// got as their Last-Event-ID. After every read, each client's position must
// say exactly what it has seen: it includes every event the client got and
// no other. Clients never get an event twice or out of its origin's
// sequence, every frame's id starts with the event's own id, and at the end
// every client has every event that survived.

// modelNet carries messages between slots; a slot holds one hub at a time
// (a restart puts a new incarnation in it).
type modelNet struct {
	tb        testing.TB
	wall      atomic.Int64
	hubs      []*broker.Hub
	origins   []uint64
	queues    map[[2]int][]netMsg
	up        map[[2]int]bool // to has the link from → to in its order (PeerUp)
	cut       map[[2]int]bool // partitioned: nothing moves from → to
	frozen    []int           // steps left while the slot's process is stopped
	next      uint64          // next origin
	unsettled []bool          // restarted and not yet caught up with every peer
}

type modelRelay struct {
	n    *modelNet
	from int
}

func (r *modelRelay) Send(e *broker.Event) {
	c := &broker.Event{ID: e.ID, Channel: e.Channel, Type: e.Type, Data: e.Data, Key: e.Key, Born: e.Born}
	r.n.queue(r.from, netMsg{e: c})
}
func (r *modelRelay) Watermark(w uint64)                                  { r.n.queue(r.from, netMsg{w: w}) }
func (r *modelRelay) Acked(ctx context.Context, e *broker.Event) error    { return nil }
func (r *modelRelay) AckedAll(ctx context.Context, e *broker.Event) error { return nil }

func (n *modelNet) queue(from int, m netMsg) {
	for to := range n.hubs {
		if to != from {
			k := [2]int{from, to}
			if m.e != nil {
				// Each link carries its own copy, as the wire does: a hub
				// owns the events delivered to it.
				m.e = &broker.Event{ID: m.e.ID, Channel: m.e.Channel, Type: m.e.Type, Data: m.e.Data, Key: m.e.Key, Born: m.e.Born}
			}
			n.queues[k] = append(n.queues[k], m)
		}
	}
}

func (n *modelNet) start(i int) {
	n.next++
	n.origins[i] = n.next << 32
	h := broker.NewHub(broker.Options{
		Origin:    n.origins[i],
		Relay:     &modelRelay{n: n, from: i},
		Now:       func() time.Time { return time.UnixMilli(n.wall.Load()) },
		QueueSize: 1 << 16,
		// A publish on a node still catching up waits this long, then
		// fails: here it fails at once.
		SettleWait: time.Nanosecond,
	})
	n.tb.Cleanup(h.Close)
	n.hubs[i] = h
	for j := range n.hubs {
		if j != i {
			n.up[[2]int{i, j}], n.up[[2]int{j, i}] = false, false
			n.queues[[2]int{i, j}], n.queues[[2]int{j, i}] = nil, nil
			// memberlist tells every member about every other.
			if n.hubs[j] != nil {
				n.hubs[j].Member(n.origins[i])
				h.Member(n.origins[j])
			}
		}
	}
	n.unsettled[i] = true
	if modelTrace {
		fmt.Printf("start slot %d origin %x\n", i, n.origins[i])
	}
	h.Tick() // the first watermark brings the link up at each peer
}

// moving reports whether messages can go from → to now.
func (n *modelNet) moving(from, to int) bool {
	return from != to && !n.cut[[2]int{from, to}] && n.frozen[from] == 0 && n.frozen[to] == 0
}

func (n *modelNet) step(from, to int) {
	if !n.moving(from, to) {
		return
	}
	k := [2]int{from, to}
	q := n.queues[k]
	if len(q) == 0 {
		return
	}
	m := q[0]
	n.queues[k] = q[1:]
	h := n.hubs[to]
	switch {
	case m.e != nil:
		h.Deliver(m.e)
	case !n.up[k]:
		// A link that comes up resends what the peer lacks of the
		// origin's own events (above its contig) before the watermark.
		for _, e := range n.hubs[from].OwnAbove(h.Contig(n.origins[from]), 1<<20) {
			h.Deliver(&broker.Event{ID: e.ID, Channel: e.Channel, Type: e.Type, Data: e.Data, Key: e.Key, Born: e.Born})
		}
		h.PeerUp(n.origins[from], m.w)
		n.up[k] = true
	default:
		h.Advance(n.origins[from], m.w)
	}
}

// down is what a stall, a partition or a crash looks like to the hub at
// to: the link from → from goes out of its order.
func (n *modelNet) down(from, to int) {
	k := [2]int{from, to}
	if n.up[k] {
		n.hubs[to].PeerDown(n.origins[from])
		n.up[k] = false
	}
}

// repair gives to what from retains and to lacks, as the digest exchange
// does. It reports whether it could.
func (n *modelNet) repair(from, to int) bool {
	if !n.moving(from, to) || !n.moving(to, from) {
		return false
	}
	for _, e := range n.hubs[from].Missing(n.hubs[to].Digest(), 1<<20, 0) {
		n.hubs[to].Deliver(&broker.Event{ID: e.ID, Channel: e.Channel, Type: e.Type, Data: e.Data, Key: e.Key, Born: e.Born})
	}
	return true
}

// catchUp repairs slot i from every peer; once that worked with all of
// them, the hub is settled, as the transport settles it once every link
// caught up.
func (n *modelNet) catchUp(i int) {
	all := true
	for j := range n.hubs {
		if j == i || !n.moving(j, i) || !n.moving(i, j) {
			all = all && j == i
			continue
		}
		// The peer's link comes up: it resends what we lack, then its
		// watermark brings our clock past every time it has promised.
		n.repair(j, i)
		n.hubs[j].Tick()
		for len(n.queues[[2]int{j, i}]) > 0 {
			n.step(j, i)
		}
	}
	if modelTrace {
		fmt.Printf("catchUp slot %d all=%v\n", i, all)
	}
	if all && n.unsettled[i] {
		n.hubs[i].Settle()
		n.unsettled[i] = false
	}
}

// modelClient is a browser: one stream at a time, resuming with the id of
// the last event it got.
type modelClient struct {
	pattern broker.Pattern
	hub     int
	sub     *broker.Subscription
	seen    map[broker.ID]bool
	last    map[uint64]uint64 // per origin, the last sequence got
	id      string            // the last id line
	hops    int
	// from is where the client's history starts: a client that had got
	// nothing when its stream ended reconnects live-only (no Last-Event-ID),
	// and the events published before that are none of its business.
	from int
	n    *int // how many events were published so far
}

func (c *modelClient) subscribe(tb testing.TB, n *modelNet, hub int) {
	tb.Helper()
	var from broker.Position
	if c.id == "" {
		c.from = *c.n
	} else {
		p, err := broker.ParsePosition(c.id)
		if err != nil {
			tb.Fatalf("ParsePosition(%q) = %v: a stream wrote an id it cannot read back", c.id, err)
		}
		from = p
	}
	if c.sub != nil {
		c.sub.Close()
	}
	if modelTrace && c.pattern.String() == modelTraceClient {
		fmt.Printf("  subscribe on hub %d (origin %x) from %q\n", hub, n.origins[hub], c.id)
	}
	s, err := n.hubs[hub].Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{c.pattern}, From: from})
	if err != nil {
		tb.Fatalf("Subscribe = %v", err)
	}
	if s.Reset {
		tb.Fatalf("resume from %q on hub %d: Reset, but nothing was evicted", c.id, hub)
	}
	c.sub, c.hub = s, hub
	c.hops++
	c.read(tb, s.Replay)
	s.Replay = nil
}

func (c *modelClient) read(tb testing.TB, events []*broker.Event) {
	tb.Helper()
	for _, e := range events {
		f := c.sub.Frame(e)
		line, _, _ := bytes.Cut(f, []byte("\n"))
		id, ok := strings.CutPrefix(string(line), "id: ")
		if !ok || !(id == e.ID.String() || strings.HasPrefix(id, e.ID.String()+"~")) {
			tb.Fatalf("frame for %v starts %q: want its own id first", e.ID, line)
		}
		if c.seen[e.ID] {
			tb.Fatalf("client got %v twice (hop %d, hub %d)", e.ID, c.hops, c.hub)
		}
		if e.ID.Seq <= c.last[e.ID.Origin] {
			tb.Fatalf("client got %v after seq %d of its origin", e.ID, c.last[e.ID.Origin])
		}
		c.seen[e.ID] = true
		c.last[e.ID.Origin] = e.ID.Seq
		c.id = id
		if modelTrace && c.pattern.String() == modelTraceClient {
			fmt.Printf("  read %v on hub %d: id %s\n", e.ID, c.hub, id)
		}
	}
}

// drain reads what the stream has queued; a stream its hub ended hops.
func (c *modelClient) drain(tb testing.TB) bool {
	tb.Helper()
	events, err := c.sub.Drain(nil)
	c.read(tb, events)
	return err == nil
}

// exact checks the client's position against what it has seen.
func (c *modelClient) exact(tb testing.TB, published []*broker.Event, lost map[broker.ID]bool) {
	tb.Helper()
	if c.id == "" {
		return
	}
	p, err := broker.ParsePosition(c.id)
	if err != nil {
		tb.Fatalf("ParsePosition(%q) = %v", c.id, err)
	}
	for _, e := range published[c.from:] {
		if !c.pattern.Match(e.Channel) {
			continue
		}
		if got := p.Includes(e.ID); got != c.seen[e.ID] && !(lost[e.ID] && got) {
			tb.Fatalf("position %q includes %v = %v, but the client has seen it: %v", c.id, e.ID, got, c.seen[e.ID])
		}
	}
}

func TestClusterResumeModel(t *testing.T) {
	seeds := uint64(60)
	if testing.Short() {
		seeds = 15
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, seed) })
	}
}

func runModel(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 11))
	size := 3 + int(seed%2)
	n := &modelNet{tb: t, hubs: make([]*broker.Hub, size), origins: make([]uint64, size), frozen: make([]int, size), unsettled: make([]bool, size),
		queues: map[[2]int][]netMsg{}, up: map[[2]int]bool{}, cut: map[[2]int]bool{}}
	n.wall.Store(1_700_000_000_000)
	for i := range size {
		n.start(i)
	}
	for i := range size {
		n.catchUp(i)
	}
	channels := []string{"a", "b", "c.d"}
	var clients []*modelClient
	var npub int
	for i, p := range []string{">", "a", "b", "c.>", ">", "a"} {
		pat, err := broker.ParsePattern(p)
		if err != nil {
			t.Fatal(err)
		}
		c := &modelClient{pattern: pat, seen: map[broker.ID]bool{}, last: map[uint64]uint64{}, n: &npub}
		c.subscribe(t, n, i%size)
		clients = append(clients, c)
	}
	var published []*broker.Event
	partitioned := -1
	lost := map[broker.ID]bool{} // died with the last hub that held them
	for step := range 600 {
		for i := range n.frozen {
			if n.frozen[i] > 0 {
				n.frozen[i]--
			}
		}
		switch k := r.IntN(100); {
		case k < 25: // publish
			i := r.IntN(size)
			if n.frozen[i] > 0 {
				break
			}
			msgs := make([]broker.Message, 1+r.IntN(2))
			for j := range msgs {
				msgs[j] = broker.Message{Channel: channels[r.IntN(len(channels))], Data: []byte(fmt.Sprint(step))}
			}
			ids, _, err := n.hubs[i].Publish(context.Background(), msgs, broker.AckLocal)
			if errors.Is(err, broker.ErrJoining) {
				if !n.unsettled[i] {
					t.Fatalf("hub %d: Publish = %v, but it caught up", i, err)
				}
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for j, id := range ids {
				published = append(published, &broker.Event{ID: id, Channel: msgs[j].Channel})
			}
			npub = len(published)
		case k < 60:
			n.step(r.IntN(size), r.IntN(size))
		case k < 68:
			if i := r.IntN(size); n.frozen[i] == 0 {
				n.hubs[i].Tick()
			}
		case k < 72:
			n.wall.Add(int64(r.IntN(5)))
		case k < 74: // a process stops (SIGSTOP, a throttled cgroup) for a while
			n.frozen[r.IntN(size)] = 5 + r.IntN(40)
		case k < 76: // peers' stall detection takes a frozen one out of their order
			for i := range size {
				if n.frozen[i] > 0 {
					for j := range size {
						n.down(i, j)
					}
				}
			}
		case k < 78: // partition one slot away, or heal
			if partitioned < 0 {
				partitioned = r.IntN(size)
				for j := range size {
					if j != partitioned {
						n.cut[[2]int{partitioned, j}], n.cut[[2]int{j, partitioned}] = true, true
						n.down(partitioned, j)
						n.down(j, partitioned)
					}
				}
			} else {
				clear(n.cut)
				for i := range size {
					n.hubs[i].Tick()
				}
				partitioned = -1
			}
		case k < 79: // kill -9 and restart: each link keeps a prefix of what was queued
			i := r.IntN(size)
			for j := range size {
				if j != i {
					k := [2]int{i, j}
					n.queues[k] = n.queues[k][:r.IntN(len(n.queues[k])+1)]
					for range len(n.queues[k]) {
						n.step(i, j)
					}
					n.down(i, j)
				}
			}
			if modelTrace {
				fmt.Printf("crash slot %d origin %x (frozen %v cut %v)\n", i, n.origins[i], n.frozen, n.cut)
			}
			n.hubs[i].Close()
			held := map[broker.ID]bool{}
			for j, h := range n.hubs {
				if j != i {
					for _, e := range h.Missing(nil, 1<<20, 0) {
						held[e.ID] = true
					}
				}
			}
			for _, e := range published {
				if !held[e.ID] {
					lost[e.ID] = true
				}
			}
			n.frozen[i] = 0
			// A restart takes longer than the clocks' skew: the new
			// incarnation's clock starts past every time the old one could
			// have written in a position nobody else observed.
			n.wall.Add(1000)
			n.start(i)
			n.catchUp(i) // before ready
		case k < 84:
			n.repair(r.IntN(size), r.IntN(size))
			n.catchUp(r.IntN(size))
		case k < 95:
			c := clients[r.IntN(len(clients))]
			if n.frozen[c.hub] > 0 {
				break
			}
			if !c.drain(t) {
				c.subscribe(t, n, r.IntN(size)) // its hub ended the stream
			}
			c.exact(t, published, lost)
		default: // hop to another hub with Last-Event-ID
			c := clients[r.IntN(len(clients))]
			to := r.IntN(size)
			if n.frozen[c.hub] > 0 || n.frozen[to] > 0 || c.id == "" {
				break
			}
			if !c.drain(t) {
				c.subscribe(t, n, to)
				break
			}
			c.subscribe(t, n, to)
			c.exact(t, published, lost)
		}
		if t.Failed() {
			t.Fatalf("after step %d", step)
		}
	}
	// Heal everything, then let the network and repair settle.
	clear(n.cut)
	clear(n.frozen)
	for range 4 {
		for i := range size {
			n.hubs[i].Tick()
		}
		for from := range size {
			for to := range size {
				for len(n.queues[[2]int{from, to}]) > 0 && n.moving(from, to) {
					n.step(from, to)
				}
			}
		}
		for from := range size {
			for to := range size {
				n.repair(from, to)
			}
		}
		for i := range size {
			n.catchUp(i)
		}
	}
	held := map[broker.ID]bool{}
	for _, h := range n.hubs {
		if modelTrace {
			fmt.Printf("hub %x holds %d, stats %+v\n", h.Origin(), len(h.Missing(nil, 1<<20, 0)), h.Stats())
		}
		for _, e := range h.Missing(nil, 1<<20, 0) {
			held[e.ID] = true
		}
		// Events can wait behind a lost one until the gap timeout.
		if st := h.Stats(); st.Late != 0 || st.Pending != 0 && len(lost) == 0 {
			t.Errorf("hub Stats() = %+v, want nothing late or pending", st)
		}
	}
	for i, c := range clients {
		if !c.drain(t) {
			c.subscribe(t, n, 0)
		}
		c.exact(t, published, lost)
		for _, e := range published[c.from:] {
			if held[e.ID] && c.pattern.Match(e.Channel) && !c.seen[e.ID] {
				t.Errorf("client %d (%s, %d hops) never got %v", i, c.pattern, c.hops, e.ID)
			}
		}
	}
	if t.Failed() {
		return
	}
	hops, got := 0, map[broker.ID]bool{}
	for _, c := range clients {
		hops += c.hops
		for id := range c.seen {
			got[id] = true
		}
	}
	if hops < 2*len(clients) || len(got) < len(published)/2 {
		t.Fatalf("model exercised too little: %d hops, %d of %d events reached a client", hops, len(got), len(published))
	}
}

var modelTrace = os.Getenv("MODEL_TRACE") != ""
var modelTraceClient = os.Getenv("MODEL_TRACE")
