package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits on a Config: a run is always bounded in size and time.
const (
	MaxSubscribers = 100_000
	MaxChannels    = 100_000
	MaxPublishers  = 256
	MaxCount       = 100_000_000
	MaxRate        = 1_000_000 // events per second
	MaxSize        = 1 << 20
	MaxDuration    = time.Hour // of the publish phase, the connect phase, the drain and the hold each
)

// Event is one dispatched Server-Sent Event, as a reader reports it.
type Event struct {
	ID   string // the event's id field; empty when it had none
	Data string // the data lines, joined with LF
}

// EventReader reads the events of one stream the way a browser's
// EventSource dispatches them. One subscriber goroutine calls it.
type EventReader interface {
	// Next returns the next event. io.EOF means the stream ended cleanly;
	// an event cut off by the end is never returned.
	Next() (Event, error)
	// LastID is the resume position: the last id field dispatched.
	LastID() string
	// Retry is the stream's last retry: field, 0 when it sent none.
	Retry() time.Duration
	// Comment is the stream's last comment line, without the colon: where
	// rumor says why it ends a stream.
	Comment() string
}

// Config says what a Run does. cmd/rumor fills every field from its flags;
// Validate says what is wrong with one.
type Config struct {
	SubURLs     []string // base URLs (http://host:port) subscribers connect to, in turn
	PubURLs     []string // base URLs publishers publish to, in turn
	Subscribers int
	Channels    int // subscriber i streams channel i % Channels; event g goes to channel g % Channels
	Publishers  int
	// Count is the number of events to publish over all publishers. 0
	// makes an idle run: the streams open, stay open for Hold, and the
	// server's memory is read.
	Count          int
	Size           int           // bytes of data per event, at least MinSize
	Rate           float64       // events per second over all publishers; 0 publishes flat out
	Duration       time.Duration // the publish phase ends after it even if Count is not reached
	ConnectTimeout time.Duration // every subscriber must be connected within it
	Drain          time.Duration // after publishing, how long events in flight are waited for
	Hold           time.Duration // idle run: how long the streams stay open before the reading
	Ack            string        // ?ack= on every publish; empty means the server's default
	Prefix         string        // channels are PREFIX.RUN.INDEX
	// Envelope has every stream ask for ?envelope=json and checks that
	// each event names the subscriber's channel (Misrouted otherwise): a
	// test of the channel the server reports, at the envelope's cost. A
	// bare server does not envelope.
	Envelope      bool
	MaxEventBytes int // largest event data a reader accepts
	// MaxRetry caps how long a subscriber waits before reopening a stream
	// the server ended with a retry: field (a browser waits all of it);
	// 0 reopens at once, as without retry:.
	MaxRetry time.Duration
	// Mercure runs the workload through the Mercure face instead of
	// /channels (mercure.go); MercureToken, when set, is the publishers'
	// Bearer token (subscribers go without one: the hub must take
	// anonymous subscribers).
	Mercure      bool
	MercureToken string
	// NewReader wraps a stream's body (the bytes after the headers, chunked
	// encoding removed).
	NewReader func(body io.Reader, maxData int) EventReader
	// Servers are where the servers' memory and CPU time are read, one
	// Probe per server process; the readings are summed, so a cluster is
	// measured as a whole. Empty means none.
	Servers  []Probe
	Progress io.Writer // where progress goes; nil means nowhere
	// ProgressBar redraws one line in place (\r) instead of writing a line
	// every ProgressEvery: for a terminal.
	ProgressBar   bool
	ProgressEvery time.Duration // 0 means 1s for lines, 250ms for the bar
}

// Validate returns every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(len(c.SubURLs) > 0 && len(c.PubURLs) > 0, "no server URL")
	for _, u := range append(append([]string(nil), c.SubURLs...), c.PubURLs...) {
		pu, err := url.Parse(u)
		check(err == nil && pu.Scheme == "http" && pu.Host != "" && pu.RawQuery == "", "server URL %q: want http://host:port (streams are read over plain HTTP/1.1)", u)
	}
	check(c.Subscribers >= 0 && c.Subscribers <= MaxSubscribers, "subscribers %d: want 0 to %d", c.Subscribers, MaxSubscribers)
	check(c.Channels >= 1 && c.Channels <= MaxChannels, "channels %d: want 1 to %d", c.Channels, MaxChannels)
	check(c.Publishers >= 1 && c.Publishers <= MaxPublishers, "publishers %d: want 1 to %d", c.Publishers, MaxPublishers)
	check(c.Count >= 0 && c.Count <= MaxCount, "count %d: want 0 to %d", c.Count, MaxCount)
	check(c.Count > 0 || c.Subscribers > 0, "nothing to do: no events and no subscribers")
	check(c.Size >= MinSize && c.Size <= MaxSize, "size %d: want %d to %d bytes", c.Size, MinSize, MaxSize)
	check(c.Rate >= 0 && c.Rate <= MaxRate && !math.IsNaN(c.Rate), "rate %v: want 0 (flat out) to %d events/s", c.Rate, MaxRate)
	for _, d := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{{"duration", c.Duration, time.Nanosecond}, {"connect timeout", c.ConnectTimeout, time.Nanosecond}, {"drain", c.Drain, 0}, {"hold", c.Hold, 0}} {
		check(d.v >= d.min && d.v <= MaxDuration, "%s %v: want %v to %v", d.name, d.v, d.min, MaxDuration)
	}
	check(c.Ack == "" || c.Ack == "peer" || c.Ack == "local", "ack %q: want peer, local or empty", c.Ack)
	check(!c.Mercure || c.Ack == "", "ack %q: the Mercure face has no ack", c.Ack)
	check(c.Mercure || c.MercureToken == "", "a Mercure token without the Mercure face")
	check(!c.Mercure || !c.Envelope, "the Mercure face has no envelope")
	check(c.Prefix != "" && !strings.ContainsAny(c.Prefix, "/?#%* >"), "channel prefix %q: want a channel name", c.Prefix)
	check(c.MaxEventBytes >= c.Size, "max event bytes %d: want at least the size %d", c.MaxEventBytes, c.Size)
	check(c.NewReader != nil, "no event reader")
	return errors.Join(errs...)
}

// Result is what a run measured. Rates are per second; latencies are
// publish→receive, from the publisher's clock right before the request to
// the subscriber's once the event is parsed (one process, one clock).
type Result struct {
	Subscribers int     `json:"subscribers"`
	Connected   int     `json:"connected"` // subscribers whose stream opened in the connect phase
	Channels    int     `json:"channels"`
	Publishers  int     `json:"publishers"`
	Size        int     `json:"size"`
	Rate        float64 `json:"rate"` // asked for; 0 is flat out

	Published         uint64  `json:"published"`     // publishes answered 2xx
	PublishErrors     uint64  `json:"publishErrors"` // publishes that failed: not expected, counted if delivered
	FirstPublishError string  `json:"firstPublishError,omitempty"`
	PublishSeconds    float64 `json:"publishSeconds"` // first publish sent to last answered
	PublishRate       float64 `json:"publishRate"`
	LateSends         uint64  `json:"lateSends"`       // publishes sent over 1ms behind the --rate schedule
	MaxScheduleLag    float64 `json:"maxScheduleLag"`  // ms
	Expected          uint64  `json:"expected"`        // deliveries of confirmed events the subscribers should get
	Delivered         uint64  `json:"delivered"`       // distinct events received, over all subscribers
	DeliverySeconds   float64 `json:"deliverySeconds"` // first publish sent to last event received
	DeliveryRate      float64 `json:"deliveryRate"`
	Latency           Latency `json:"latency"`

	Lost                  uint64 `json:"lost"`       // confirmed events a subscriber never got
	Duplicated            uint64 `json:"duplicated"` // events a subscriber got again
	OutOfOrder            uint64 `json:"outOfOrder"` // events that came after a later one of the same publisher
	Foreign               uint64 `json:"foreign"`    // events not of this run, or not a payload it wrote
	Misrouted             uint64 `json:"misrouted"`  // this run's events on the wrong channel
	SubscribersLosing     int    `json:"subscribersLosing"`
	SubscribersDuplicated int    `json:"subscribersDuplicated"`
	SubscribersOutOfOrder int    `json:"subscribersOutOfOrder"`
	MaxLostPerSubscriber  uint64 `json:"maxLostPerSubscriber"`
	Reconnects            uint64 `json:"reconnects"`    // streams that ended during the run and were reopened
	ConnectErrors         uint64 `json:"connectErrors"` // failed attempts to open a stream
	// Refused counts streams the server refused: answered 200 and ended
	// cleanly before any event, as rumor does over a stream limit (with a
	// retry: and a comment saying why, kept in FirstRefusal).
	Refused      uint64 `json:"refused"`
	FirstRefusal string `json:"firstRefusal,omitempty"`
	// SubscribersRefused were refused every time they tried: nothing was
	// lost on the way to them, they were never served. Unserved counts the
	// confirmed events they did not get, which Lost leaves out.
	SubscribersRefused int    `json:"subscribersRefused"`
	Unserved           uint64 `json:"unserved"`

	// ServerCPU is the CPU time the server used from the first publish to
	// the end of the drain, when the probe can read it, and per delivery
	// in microseconds: steadier than deliveries per second on a shared
	// machine. With several servers probed it is their sum.
	ServerCPU            float64 `json:"serverCPU,omitempty"`
	ServerCPUPerDelivery float64 `json:"serverCPUPerDelivery,omitempty"`

	Memory *MemoryReport `json:"memory,omitempty"`
}

// Latency holds percentiles in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
}

// MemoryReport is the server's memory before the streams opened, once
// they were open (after Hold in an idle run, after publishing otherwise),
// and what that makes per stream.
type MemoryReport struct {
	Before Sample `json:"before"`
	After  Sample `json:"after"`
	// RSSPerStream is the growth of the resident set per open stream.
	RSSPerStream float64 `json:"rssPerStream,omitempty"`
	// GoPerStream is the growth of the Go heap in use plus goroutine
	// stacks per open stream: with a GC URL, live memory only.
	GoPerStream float64 `json:"goPerStream,omitempty"`
	Error       string  `json:"error,omitempty"`
}

// OK reports whether nothing went wrong: nothing lost, duplicated, out of
// order or misrouted, and every publish confirmed.
func (r *Result) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.OutOfOrder == 0 && r.Misrouted == 0 && r.PublishErrors == 0 &&
		r.Connected == r.Subscribers && r.SubscribersRefused == 0
}

// run is one Run in progress.
type run struct {
	cfg   Config
	id    uint32
	names []string // channel names
	start time.Time

	subs   []*subscriber
	pubs   []*publisher
	shards []Histogram

	published, pubErrors, attempted  atomic.Uint64
	delivered, dups, ooo, foreign    atomic.Uint64
	misrouted, reconnects, connErrs  atomic.Uint64
	refused                          atomic.Uint64
	lastDelivery, lastAnswer, maxLag atomic.Int64 // Unix nanoseconds; maxLag in ns
	lateSends                        atomic.Uint64
	firstErr, firstRefusal           atomic.Pointer[string]
}

// histShards is how many histograms the subscribers share.
const histShards = 16

// Run runs one load test and returns what it measured. It returns an error
// when the test could not run as asked (a subscriber that never
// connected, a server that cannot be reached); lost or duplicated events
// are in the Result, not an error. It always returns within the sum of the
// Config's durations plus a minute, and leaves no connection or goroutine
// behind.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = time.Second
		if cfg.ProgressBar {
			cfg.ProgressEvery = 250 * time.Millisecond
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout+cfg.Hold+cfg.Duration+cfg.Drain+time.Minute)
	defer cancel()
	r := &run{cfg: cfg, id: rand.Uint32(), shards: make([]Histogram, histShards)}
	r.names = make([]string, cfg.Channels)
	for i := range r.names {
		r.names[i] = fmt.Sprintf("%s.%08x.%d", cfg.Prefix, r.id, i)
	}
	return r.run(ctx)
}

func (r *run) run(ctx context.Context) (*Result, error) {
	cfg := r.cfg
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: cfg.Publishers + 2,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}}
	defer client.CloseIdleConnections()

	var mem *MemoryReport
	if probing(cfg.Servers) {
		mem = &MemoryReport{}
		m, err := readSamples(ctx, client, cfg.Servers, true)
		if err != nil {
			mem.Error = err.Error()
		}
		mem.Before = m
	}

	// Open the subscribers. Their goroutines run until subCtx ends.
	subCtx, stopSubs := context.WithCancel(ctx)
	var subWG sync.WaitGroup
	defer func() { stopSubs(); subWG.Wait() }()
	connected := make(chan struct{}, cfg.Subscribers)
	dialing := make(chan struct{}, 128) // connections being opened at once
	for i := range cfg.Subscribers {
		s := &subscriber{
			r:    r,
			ch:   i % cfg.Channels,
			base: cfg.SubURLs[i%len(cfg.SubURLs)],
			hist: &r.shards[i%histShards],
			seqs: make([]seqs, cfg.Publishers),
		}
		s.path = streamPath(s.base, r.names[s.ch])
		if cfg.Envelope {
			s.path += "?envelope=json"
		}
		if cfg.Mercure {
			s.path = mercurePath(s.base, r.names[s.ch])
		}
		r.subs = append(r.subs, s)
		subWG.Go(func() { s.run(subCtx, dialing, connected) })
	}
	progress := r.startProgress(ctx)
	defer progress.stop()
	nConnected := 0
	connectBy := time.NewTimer(cfg.ConnectTimeout)
	defer connectBy.Stop()
	for nConnected < cfg.Subscribers {
		select {
		case <-connected:
			nConnected++
			progress.connected.Store(int64(nConnected))
		case <-connectBy.C:
			return nil, fmt.Errorf("%d of %d subscribers connected within %v (%d failed attempts; first error: %s)",
				nConnected, cfg.Subscribers, cfg.ConnectTimeout, r.connErrs.Load(), r.firstError())
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	res := &Result{Subscribers: cfg.Subscribers, Connected: nConnected, Channels: cfg.Channels,
		Publishers: cfg.Publishers, Size: cfg.Size, Rate: cfg.Rate, Memory: mem}

	if cfg.Count == 0 {
		// An idle run: hold the streams, then read the memory.
		progress.setPhase("hold")
		select {
		case <-time.After(cfg.Hold):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	} else {
		var cpu0 Sample
		if probing(cfg.Servers) {
			cpu0, _ = readSamples(ctx, client, cfg.Servers, false)
		}
		r.publish(ctx, client, progress)
		progress.setPhase("drain")
		r.drain(ctx)
		if cpu0.CPUSeconds > 0 {
			if cpu1, _ := readSamples(ctx, client, cfg.Servers, false); cpu1.CPUSeconds > 0 {
				res.ServerCPU = cpu1.CPUSeconds - cpu0.CPUSeconds
			}
		}
	}
	if mem != nil {
		m, err := readSamples(ctx, client, cfg.Servers, true)
		if err != nil && mem.Error == "" {
			mem.Error = err.Error()
		}
		mem.After = m
		if n := float64(nConnected); n > 0 {
			if m.RSS > 0 && mem.Before.RSS > 0 {
				mem.RSSPerStream = float64(m.RSS-mem.Before.RSS) / n
			}
			if m.HeapInuse > 0 && mem.Before.HeapInuse > 0 {
				mem.GoPerStream = float64(m.HeapInuse+m.StackInuse-mem.Before.HeapInuse-mem.Before.StackInuse) / n
			}
		}
	}
	progress.stop()
	stopSubs()
	subWG.Wait()
	r.account(res)
	return res, nil
}

// firstError is the first error a publisher or subscriber met.
func (r *run) firstError() string {
	if p := r.firstErr.Load(); p != nil {
		return *p
	}
	return "none"
}

func (r *run) noteError(err error) {
	s := err.Error()
	r.firstErr.CompareAndSwap(nil, &s)
}

// publish runs the publishers until they have published Count events or
// Duration has passed.
func (r *run) publish(ctx context.Context, client *http.Client, progress *progress) {
	cfg := r.cfg
	r.start = time.Now()
	progress.setPhase("publish")
	until := r.start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for j := range cfg.Publishers {
		p := &publisher{
			r:      r,
			j:      j,
			base:   cfg.PubURLs[j%len(cfg.PubURLs)],
			seq:    make([]uint64, cfg.Channels),
			failed: make(map[int][]uint64),
		}
		r.pubs = append(r.pubs, p)
		wg.Go(func() { p.run(ctx, client, until) })
	}
	wg.Wait()
}

// drain waits, after publishing, until every subscriber has every event
// sent, or every confirmed one and nothing arrived for a moment (an event
// whose publish failed may never come), or nothing arrived for a while, or
// Drain has passed.
func (r *run) drain(ctx context.Context) {
	const (
		quiet      = 2 * time.Second
		quietShort = 100 * time.Millisecond
	)
	perChannel := make([]uint64, r.cfg.Channels)
	for i := range r.cfg.Subscribers {
		perChannel[i%r.cfg.Channels]++
	}
	var sent, confirmed uint64 // events times their channel's subscribers
	for _, p := range r.pubs {
		for c, n := range p.seq {
			sent += n * perChannel[c]
			confirmed += (n - uint64(len(p.failed[c]))) * perChannel[c]
		}
	}
	deadline := time.Now().Add(r.cfg.Drain)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		now := time.Now()
		idle := time.Duration(now.UnixNano() - max(r.lastDelivery.Load(), r.lastAnswer.Load()))
		got := r.delivered.Load()
		if got >= sent || got >= confirmed && idle > quietShort || idle > quiet || now.After(deadline) {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// account fills res from the publishers and subscribers, which have stopped.
func (r *run) account(res *Result) {
	var all Histogram
	for i := range r.shards {
		all.Add(&r.shards[i])
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	res.Latency = Latency{
		Count: all.Count(),
		P50:   ms(all.Quantile(0.50)),
		P90:   ms(all.Quantile(0.90)),
		P99:   ms(all.Quantile(0.99)),
		P999:  ms(all.Quantile(0.999)),
		Max:   ms(all.Max()),
		Mean:  ms(all.Mean()),
	}
	res.Published = r.published.Load()
	res.PublishErrors = r.pubErrors.Load()
	if res.PublishErrors > 0 {
		res.FirstPublishError = r.firstError()
	}
	res.LateSends = r.lateSends.Load()
	res.MaxScheduleLag = ms(time.Duration(r.maxLag.Load()))
	if !r.start.IsZero() {
		if a := r.lastAnswer.Load(); a > 0 {
			res.PublishSeconds = time.Duration(a - r.start.UnixNano()).Seconds()
		}
		if d := r.lastDelivery.Load(); d > 0 {
			res.DeliverySeconds = time.Duration(d - r.start.UnixNano()).Seconds()
		}
	}
	if res.PublishSeconds > 0 {
		res.PublishRate = float64(r.attempted.Load()) / res.PublishSeconds
	}
	res.Delivered = r.delivered.Load()
	if res.DeliverySeconds > 0 {
		res.DeliveryRate = float64(res.Delivered) / res.DeliverySeconds
	}
	if res.ServerCPU > 0 && res.Delivered > 0 {
		res.ServerCPUPerDelivery = res.ServerCPU / float64(res.Delivered) * 1e6
	}
	res.Duplicated, res.OutOfOrder = r.dups.Load(), r.ooo.Load()
	res.Foreign, res.Misrouted = r.foreign.Load(), r.misrouted.Load()
	res.Reconnects, res.ConnectErrors = r.reconnects.Load(), r.connErrs.Load()
	res.Refused = r.refused.Load()
	if p := r.firstRefusal.Load(); p != nil {
		res.FirstRefusal = *p
	}

	// Loss is exact: per subscriber and publisher, the confirmed sequence
	// numbers of its channel that it does not hold.
	for _, s := range r.subs {
		var lost uint64
		for j, p := range r.pubs {
			n := p.seq[s.ch]
			if n == 0 {
				continue
			}
			failed := p.failed[s.ch]
			got := s.seqs[j].count(n)
			for _, f := range failed {
				if s.seqs[j].has(f) {
					got--
				}
			}
			want := n - uint64(len(failed))
			res.Expected += want
			lost += want - got
		}
		if s.refused > 0 && !s.served {
			res.SubscribersRefused++
			res.Unserved += lost
			continue
		}
		res.Lost += lost
		res.MaxLostPerSubscriber = max(res.MaxLostPerSubscriber, lost)
		if lost > 0 {
			res.SubscribersLosing++
		}
		if s.dups > 0 {
			res.SubscribersDuplicated++
		}
		if s.ooo > 0 {
			res.SubscribersOutOfOrder++
		}
	}
}

// streamPath is the request target of a channel's stream under base.
func streamPath(base, channel string) string {
	u, _ := url.Parse(base) // Validate parsed it
	return strings.TrimSuffix(u.EscapedPath(), "/") + "/channels/" + url.PathEscape(channel)
}

// subscriber is one stream: its goroutine owns every field until it ends.
type subscriber struct {
	r    *run
	ch   int
	base string // server base URL
	path string // request target
	hist *Histogram

	seqs    []seqs // by publisher
	lastID  string
	dups    uint64
	ooo     uint64
	refused uint64 // streams the server refused
	served  bool   // a stream delivered events, or was open when the run ended
}

// Buffer sizes of a subscriber's connection: small, since a run may hold
// tens of thousands; the reader grows its own buffer for large events.
const subReadBuffer = 2048

// run opens the stream, reads it, and reopens it (with Last-Event-ID)
// whenever it ends before ctx does. It signals connected once, after the
// first stream's headers arrived.
func (s *subscriber) run(ctx context.Context, dialing, connected chan struct{}) {
	first := true
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		select {
		case dialing <- struct{}{}:
		case <-ctx.Done():
			return
		}
		conn, er, err := s.connect(ctx)
		<-dialing
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.r.connErrs.Add(1)
			s.r.noteError(err)
			select {
			case <-time.After(backoff + rand.N(backoff)):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		if first {
			first = false
			connected <- struct{}{}
		} else {
			s.r.reconnects.Add(1)
		}
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		events := 0
		for {
			var ev Event
			if ev, err = er.Next(); err != nil {
				break
			}
			s.receive(ev)
			events++
		}
		stop()
		conn.Close()
		s.lastID = er.LastID()
		switch {
		case ctx.Err() != nil:
			s.served = true // the stream was open when the run ended
			return
		case events > 0:
			s.served = true
		case errors.Is(err, io.EOF):
			// 200 and a clean end before any event: rumor over a limit.
			s.refused++
			s.r.refused.Add(1)
			why := strings.TrimSpace(er.Comment())
			s.r.firstRefusal.CompareAndSwap(nil, &why)
		}
		// Come back when the server asked to, within the cap: reopening
		// at once would hammer a server that refuses.
		if d := min(er.Retry(), s.r.cfg.MaxRetry); d > 0 {
			select {
			case <-time.After(d/2 + rand.N(d/2+1)):
			case <-ctx.Done():
				return
			}
		}
	}
}

// connect opens the stream: a raw HTTP/1.1 request, so that a stream
// costs one goroutine and one small buffer.
func (s *subscriber) connect(ctx context.Context) (net.Conn, EventReader, error) {
	u, _ := url.Parse(s.base)
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", host)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(dctx, func() { conn.Close() }) // unblocks the handshake below
	var req bytes.Buffer
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n", s.path, u.Host)
	if s.lastID != "" && !strings.ContainsAny(s.lastID, "\r\n") {
		fmt.Fprintf(&req, "Last-Event-ID: %s\r\n", s.lastID)
	}
	req.WriteString("\r\n")
	_, err = conn.Write(req.Bytes())
	var resp *http.Response
	if err == nil {
		resp, err = http.ReadResponse(bufio.NewReaderSize(conn, subReadBuffer), nil)
	}
	if !stop() {
		err = errors.Join(err, dctx.Err())
	}
	if err == nil {
		ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
			err = fmt.Errorf("GET %s%s: %s, %q", s.base, s.path, resp.Status, ct)
		}
	}
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, s.r.cfg.NewReader(resp.Body, s.r.cfg.MaxEventBytes), nil
}

// receive counts one event, once.
func (s *subscriber) receive(ev Event) {
	now := time.Now().UnixNano()
	r := s.r
	data := ev.Data
	if r.cfg.Envelope {
		var env struct{ Channel, Data *string }
		if json.Unmarshal([]byte(data), &env) != nil || env.Channel == nil || env.Data == nil {
			r.foreign.Add(1)
			return
		}
		if *env.Channel != r.names[s.ch] {
			r.misrouted.Add(1) // the envelope names another channel than the stream's
			return
		}
		data = *env.Data
	}
	st, ok := parsePayload(data)
	switch {
	case !ok || st.run != r.id || st.pub >= len(s.seqs) || st.seq == 0:
		r.foreign.Add(1)
		return
	case st.ch != s.ch:
		r.misrouted.Add(1)
		return
	}
	switch s.seqs[st.pub].add(st.seq) {
	case duplicate:
		s.dups++
		r.dups.Add(1)
		return
	case outOfOrder:
		s.ooo++
		r.ooo.Add(1)
	}
	s.hist.Record(time.Duration(now - st.sent))
	r.delivered.Add(1)
	if now > r.lastDelivery.Load() {
		r.lastDelivery.Store(now) // a race between subscribers only loses nanoseconds
	}
}

// publisher publishes its share of the events, one request at a time.
type publisher struct {
	r      *run
	j      int
	base   string
	seq    []uint64         // by channel: the last sequence number sent
	failed map[int][]uint64 // by channel: sequence numbers whose publish failed
}

// run publishes events j, j+P, j+2P… of the run until Count is reached or
// until passes; each goes to channel g % Channels, at its time on the
// --rate schedule if there is one.
func (p *publisher) run(ctx context.Context, client *http.Client, until time.Time) {
	r, cfg := p.r, p.r.cfg
	buf := make([]byte, 0, cfg.Size+64)
	var mbuf []byte // the Mercure form
	ack := ""
	if cfg.Ack != "" {
		ack = "?ack=" + cfg.Ack
	}
	prefix := strings.TrimSuffix(p.base, "/") + "/channels/"
	for g := p.j; g < cfg.Count; g += cfg.Publishers {
		if cfg.Rate > 0 {
			at := r.start.Add(time.Duration(float64(g) / cfg.Rate * float64(time.Second)))
			if d := time.Until(at); d > 0 {
				if at.After(until) {
					return
				}
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			} else if -d > time.Millisecond {
				r.lateSends.Add(1)
				for {
					m := r.maxLag.Load()
					if int64(-d) <= m || r.maxLag.CompareAndSwap(m, int64(-d)) {
						break
					}
				}
			}
		}
		if ctx.Err() != nil || time.Now().After(until) {
			return
		}
		c := g % cfg.Channels
		p.seq[c]++
		seq := p.seq[c]
		buf = appendPayload(buf[:0], stamp{run: r.id, pub: p.j, ch: c, seq: seq, sent: time.Now().UnixNano()}, cfg.Size)
		r.attempted.Add(1)
		target, body, form := prefix+r.names[c]+ack, buf, false
		if cfg.Mercure {
			form = true
			target = mercureHub(p.base)
			mbuf = appendMercureForm(mbuf[:0], r.names[c], buf)
			body = mbuf
		}
		if err := p.post(ctx, client, target, body, form); err != nil {
			p.failed[c] = append(p.failed[c], seq)
			r.pubErrors.Add(1)
			r.noteError(err)
		} else {
			r.published.Add(1)
		}
		now := time.Now().UnixNano()
		if now > r.lastAnswer.Load() {
			r.lastAnswer.Store(now)
		}
	}
}

// post publishes body to u: the event's data, or with form a Mercure
// publish form.
func (p *publisher) post(ctx context.Context, client *http.Client, u string, body []byte, form bool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if form {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if t := p.r.cfg.MercureToken; t != "" {
			req.Header.Set("Authorization", "Bearer "+t)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", u, resp.Status, bytes.TrimSpace(answer))
	}
	return nil
}

// count formats n with thousands separators: 1,234,567.
func count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Millis formats d in milliseconds with three significant digits or so.
func Millis(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 1:
		return strconv.FormatFloat(ms, 'f', 3, 64) + "ms"
	case ms < 100:
		return strconv.FormatFloat(ms, 'f', 2, 64) + "ms"
	default:
		return strconv.FormatFloat(ms, 'f', 0, 64) + "ms"
	}
}
