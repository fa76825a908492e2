package presence

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// Hub is what presence needs of the broker; *broker.Hub is one.
type Hub interface {
	Origin() uint64
	Publish(ctx context.Context, msgs []broker.Message, ack broker.Ack) ([]broker.ID, bool, error)
	Subscribe(req broker.SubscribeRequest) (*broker.Subscription, error)
}

var _ Hub = (*broker.Hub)(nil)

// Members tells which nodes are in the cluster. The transport's Cluster is
// one (through cmd's adapter).
type Members interface {
	// Origins returns the hub origins of the live members (alive or
	// suspect), this node's included.
	Origins() []uint64
}

// Options configures a Directory. Zero values mean the documented defaults.
type Options struct {
	Hub       Hub
	Members   Members       // nil means a single node
	Interval  time.Duration // changes are sent, and decisions taken, at most this often; 0 means 100ms
	Heartbeat time.Duration // a node with nothing to say still sends a census this often; 0 means 2s. A member silent for 3 heartbeats is stale, and nobody decides until it is fresh again or gone
	Grace     time.Duration // how long a channel stays empty before it is vacated, and a subject gone before it has left; 0 means 5s
	Handover  time.Duration // how long membership and freshness must hold still before a node decides; 0 means 1s
	Records   bool          // carry every stream's Record cluster-wide (Directory.Records)
	Remember  time.Duration // how long an announced vacated or leave is remembered, against older announcements arriving late (history's catch-up); 0 means 15m. Keep it above the hub's HistoryTTL
	Now       func() time.Time
	Logger    *slog.Logger // nil means discard
}

// Reserved channels.
const (
	// CensusChannel carries the nodes' summaries; no client may subscribe.
	CensusChannel = broker.ReservedToken + ".census"
	// NoticePrefix starts the channels of the transitions:
	// rumor.presence.<channel>.
	NoticePrefix = broker.ReservedToken + ".presence."
	// maxPayload bounds a Stream's Payload carried in Records.
	maxPayload = 4 << 10
)

// Stream is one open subscription, as the HTTP face reports it.
type Stream struct {
	ID       string          `json:"id"`                // unique cluster-wide; Join makes one when empty
	Patterns []string        `json:"patterns"`          // the channels and patterns it subscribed to
	Subject  string          `json:"subject,omitempty"` // its token's sub; "" without one
	Payload  json.RawMessage `json:"payload,omitempty"` // carried only with Options.Records, up to 4 KiB (dropped when larger)
}

// Record is an open stream somewhere in the cluster.
type Record struct {
	Stream
	Node  string    `json:"node"` // origin of the node that holds it, in hex
	Since time.Time `json:"since"`
}

// Status says how current the directory is.
type Status struct {
	Nodes    int  `json:"nodes"`    // live members
	Synced   int  `json:"synced"`   // of them, those whose census this node holds and heard from within three heartbeats (itself included)
	Deciding bool `json:"deciding"` // this node takes its channels' decisions now
}

// ErrClosed is returned once the directory is closed.
var ErrClosed = errors.New("presence closed")

// entry is a channel's (or pattern's) streams on one node, or summed.
type entry struct {
	n    int
	subs map[string]int // subject → streams; nil while none has one
}

func (e *entry) empty() bool { return e == nil || e.n == 0 && len(e.subs) == 0 }

// Directory is this node's view of who is here, cluster-wide. Create it
// with New before the cluster starts, so that it sees the census of every
// member that catch-up brings. All methods are safe for concurrent use.
type Directory struct {
	opts   Options
	log    *slog.Logger
	hub    Hub
	origin uint64
	self   string // origin in hex
	sub    *broker.Subscription

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	local   map[string]*entry // this node's streams by key
	streams map[string]Record // this node's streams by id (with Records)
	total   int               // this node's streams
	agg     map[string]*entry // every counted node, this one included
	nodes   map[uint64]*node  // other nodes' census
	live    map[uint64]bool   // the member list as last read
	order   []uint64          // live, sorted: the decider candidates
	census  censusState       // what this node sends next (census.go)
	ann     map[string]*announced
	heard   map[uint64]uint64 // of each other origin, the highest sequence of its announcements applied here
	timers  decideTimers
	closed  bool

	stableSince time.Time // membership and freshness last changed
	fresh       bool
	caughtUp    bool // holds every announcement of a departed member that a live one reported (decide.go)
	lastTick    time.Time
	forgot      time.Time         // when forget last ran
	changed     bool              // counts or announcements changed since decide last looked
	wasDeciding bool              // decide looked while deciding, and has not stopped since
	deciders    map[string]uint64 // decider by key, for the current order
}

// New subscribes to the reserved channels and starts the directory. Call
// Close to stop it.
func New(o Options) (*Directory, error) {
	if o.Hub == nil {
		return nil, errors.New("presence: no hub")
	}
	o.Interval = cmp.Or(o.Interval, 100*time.Millisecond)
	o.Heartbeat = cmp.Or(o.Heartbeat, 2*time.Second)
	o.Grace = cmp.Or(o.Grace, 5*time.Second)
	o.Handover = cmp.Or(o.Handover, time.Second)
	o.Remember = cmp.Or(o.Remember, 15*time.Minute)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	census, _ := broker.ParsePattern(CensusChannel)
	notices, _ := broker.ParsePattern(NoticePrefix + ">")
	sub, err := o.Hub.Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{census, notices}, Own: true})
	if err != nil {
		return nil, err
	}
	d := &Directory{
		opts:     o,
		log:      o.Logger.With("component", "presence"),
		hub:      o.Hub,
		origin:   o.Hub.Origin(),
		sub:      sub,
		local:    make(map[string]*entry),
		streams:  make(map[string]Record),
		agg:      make(map[string]*entry),
		nodes:    make(map[uint64]*node),
		live:     make(map[uint64]bool),
		ann:      make(map[string]*announced),
		heard:    make(map[uint64]uint64),
		timers:   newDecideTimers(),
		deciders: make(map[string]uint64),
	}
	d.self = hexOrigin(d.origin)
	d.census = newCensusState()
	d.ctx, d.cancel = context.WithCancel(context.Background())
	now := o.Now()
	d.stableSince, d.lastTick = now, now
	d.wg.Add(2)
	go d.receive()
	go d.run()
	return d, nil
}

// Close stops the directory; Join still works and changes nothing. Safe to
// call more than once.
func (d *Directory) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.sub.Close()
	d.wg.Wait()
}

// Join counts a stream that opened, under each of its patterns (rumor's
// own channels are not counted). Call leave, once, when it ends; later
// calls do nothing.
func (d *Directory) Join(s Stream) (leave func()) {
	if s.ID == "" {
		s.ID = newID()
	}
	if len(s.Payload) > maxPayload || !d.opts.Records {
		s.Payload = nil
	}
	keys := make([]string, 0, len(s.Patterns))
	for _, p := range s.Patterns {
		if !broker.Reserved(p) && !slices.Contains(keys, p) {
			keys = append(keys, p)
		}
	}
	s.Patterns = keys
	d.mu.Lock()
	d.total++
	for _, k := range keys {
		d.change(k, s.Subject, +1)
	}
	if d.opts.Records {
		r := Record{Stream: s, Node: d.self, Since: d.opts.Now().UTC()}
		d.streams[s.ID] = r
		d.census.open(r)
	}
	d.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.total--
			for _, k := range keys {
				d.change(k, s.Subject, -1)
			}
			if d.opts.Records {
				delete(d.streams, s.ID)
				d.census.close(s.ID)
			}
		})
	}
}

// change adds delta streams of subject to key on this node. Called with
// d.mu held.
func (d *Directory) change(key, subject string, delta int) {
	e := d.local[key]
	if e == nil {
		e = &entry{}
		d.local[key] = e
	}
	e.n += delta
	bump(d.aggEntry(key), subject, delta)
	if subject != "" {
		if e.subs == nil {
			e.subs = make(map[string]int)
		}
		e.subs[subject] += delta
		if e.subs[subject] <= 0 {
			delete(e.subs, subject)
		}
	}
	if e.empty() {
		delete(d.local, key)
	}
	d.tidy(key)
	d.changed = true
	subs := d.census.dirty[key]
	if subs == nil {
		subs = make(map[string]struct{})
		d.census.dirty[key] = subs
	}
	if subject != "" {
		subs[subject] = struct{}{}
	}
}

func (d *Directory) aggEntry(key string) *entry {
	a := d.agg[key]
	if a == nil {
		a = &entry{}
		d.agg[key] = a
	}
	return a
}

// bump adds delta streams of subject to e.
func bump(e *entry, subject string, delta int) {
	e.n += delta
	if subject == "" {
		return
	}
	if e.subs == nil {
		e.subs = make(map[string]int)
	}
	e.subs[subject] += delta
	if e.subs[subject] <= 0 {
		delete(e.subs, subject)
	}
}

// count adds (sign +1) or removes (-1) a node's entry for key to the sum.
// Called with d.mu held.
func (d *Directory) count(key string, e *entry, sign int) {
	if e.empty() {
		return
	}
	d.changed = true
	a := d.aggEntry(key)
	a.n += sign * e.n
	for s, n := range e.subs {
		if a.subs == nil {
			a.subs = make(map[string]int)
		}
		a.subs[s] += sign * n
		if a.subs[s] <= 0 {
			delete(a.subs, s)
		}
	}
	d.tidy(key)
}

// tidy drops key's sum once nobody counts under it.
func (d *Directory) tidy(key string) {
	if a := d.agg[key]; a != nil && a.n <= 0 && len(a.subs) == 0 {
		delete(d.agg, key)
	}
}

// Count returns the streams subscribed to key (a channel, or a pattern as a
// stream wrote it) on every live node together.
func (d *Directory) Count(key string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a := d.agg[key]; a != nil {
		return a.n
	}
	return 0
}

// Counts returns every key with streams, cluster-wide.
func (d *Directory) Counts() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]int, len(d.agg))
	for k, a := range d.agg {
		if a.n > 0 {
			out[k] = a.n
		}
	}
	return out
}

// Subjects returns the distinct subjects of key's streams, cluster-wide,
// sorted. Streams without a subject are not in it.
func (d *Directory) Subjects(key string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.agg[key]
	if a == nil {
		return []string{}
	}
	return slices.Sorted(maps.Keys(a.subs))
}

// Records returns every open stream of the cluster's live, synced nodes,
// sorted by id; empty without Options.Records.
func (d *Directory) Records() []Record {
	d.mu.Lock()
	out := slices.Collect(maps.Values(d.streams))
	for _, n := range d.nodes {
		if n.counted {
			for _, r := range n.recs {
				out = append(out, r)
			}
		}
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b Record) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Status says how current the directory is.
func (d *Directory) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := Status{Nodes: len(d.order), Synced: 1}
	if st.Nodes == 0 {
		st.Nodes = 1
	}
	now := d.opts.Now()
	for o := range d.live {
		if n := d.nodes[o]; o != d.origin && n != nil && n.synced && now.Sub(n.at) < 3*d.opts.Heartbeat {
			st.Synced++
		}
	}
	st.Deciding = d.deciding(now)
	return st
}

// Decider returns the origin of the live member that decides key's
// transitions, as this node sees the members.
func (d *Directory) Decider(key string) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.order) == 0 {
		return d.origin
	}
	return d.decider(key)
}

// Notice is the data of an event on rumor.presence.<channel>; the event's
// type is Kind.
type Notice struct {
	Channel     string `json:"channel"`
	Kind        string `json:"kind"`              // occupied, vacated, join or leave
	Subject     string `json:"subject,omitempty"` // join and leave
	Subscribers int    `json:"subscribers"`       // the channel's streams, cluster-wide, when decided
	Node        string `json:"node"`              // the deciding node's origin, in hex
}

// The kinds of transitions, which are also their events' types.
const (
	KindOccupied = "occupied"
	KindVacated  = "vacated"
	KindJoin     = "join"
	KindLeave    = "leave"
)

// NoticeChannel returns the channel of key's transitions, and false when
// key has none: a pattern, a reserved channel, or a name too long to
// prefix.
func NoticeChannel(key string) (string, bool) {
	if broker.Reserved(key) || broker.ValidateChannel(key) != nil {
		return "", false
	}
	ch := NoticePrefix + key
	if broker.ValidateChannel(ch) != nil {
		return "", false
	}
	return ch, true
}

func hexOrigin(o uint64) string { return strconv.FormatUint(o, 16) }

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
