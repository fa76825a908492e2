package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// target is one node as the clients reach it.
type target struct {
	Name string // the harness's name: n1, n2, …
	URL  string // base URL
}

// publishRecord is one POST /channels/{channel} as its publisher saw it.
type publishRecord struct {
	Publisher string
	Node      string
	Channel   string
	Data      string
	Status    int    // HTTP status; 0 when the request failed
	ID        string // from the answer (200, or a 503 that names the stored id)
	Err       string
	Sent      time.Time
	Done      time.Time
}

// acked reports whether the publisher was told the event is stored: the
// promise the checker holds rumor to.
func (p publishRecord) acked() bool { return p.Status == http.StatusOK }

// delivery is one event as a subscriber received it.
type delivery struct {
	ID    string // the event id: the SSE id up to its first '~'
	SSEID string // the id line's whole value, which a resume sends back
	OwnID bool   // it came with an id line of its own
	Type  string
	Data  string
	Node  string // the node whose stream delivered it
	Conn  int    // the subscriber's connection number, from 1
	At    time.Time
}

// eventIDOf returns the event id an SSE id names: the part before the
// first '~' (what follows is resume information, opaque to clients).
func eventIDOf(sseID string) string {
	id, _, _ := strings.Cut(sseID, "~")
	return id
}

// connRecord is one of a subscriber's connections.
type connRecord struct {
	N      int
	Node   string
	Resume string // the Last-Event-ID it sent; "" for none
	Events int
	End    string // why it ended
}

func (c connRecord) String() string {
	resume := c.Resume
	if resume == "" {
		resume = "(none)"
	}
	return fmt.Sprintf("conn %d to %s, Last-Event-ID %s: %d events, ended: %s", c.N, c.Node, resume, c.Events, c.End)
}

// subscriberLog is everything one subscriber received, in order.
type subscriberLog struct {
	Name   string
	Events []delivery   // events, in arrival order
	Resets []delivery   // rumor.reset signals
	Conns  []connRecord // in order: Conns[i].N == i+1
}

// conn returns connection n's record, or one that says it is unknown.
func (s subscriberLog) conn(n int) connRecord {
	if n >= 1 && n <= len(s.Conns) && s.Conns[n-1].N == n {
		return s.Conns[n-1]
	}
	return connRecord{N: n, Node: "?", Resume: "?"}
}

// workloadConfig shapes the clients that run while faults are injected.
type workloadConfig struct {
	Nodes       []target
	Channels    []string      // every publish goes to one at random; every subscriber reads all
	Publishers  int           // publisher i prefers node i mod len(Nodes)
	Every       time.Duration // pause between a publisher's publishes
	Subscribers int           // subscriber i starts on node i mod len(Nodes)
	Stay        [2]time.Duration
	Transport   http.RoundTripper // nil means a plain transport (loopback)
}

// workload runs publishers and subscribers against a cluster. Publishers
// move to another ready node when theirs fails; subscribers reconnect to a
// random ready node with Last-Event-ID after a random stay, or at once when
// their stream ends.
type workload struct {
	cfg    workloadConfig
	client *http.Client

	pubCtx    context.Context
	pubCancel context.CancelFunc
	pubWG     sync.WaitGroup
	subCtx    context.Context
	subCancel context.CancelFunc
	subWG     sync.WaitGroup

	mu   sync.Mutex
	pubs []publishRecord
	subs []*subscriber
}

type subscriber struct {
	connected func() // called once its first stream is open
	// moveTo, when not -1, is the node its next connection goes to.
	moveTo atomic.Int32

	mu     sync.Mutex
	log    subscriberLog
	seen   map[string]bool
	nodes  map[string]bool // nodes it received an event from
	cancel context.CancelCauseFunc
	// arriving is set by MoveAll and cleared once a stream to the node it
	// was told to move to is open.
	arriving bool
}

func startWorkload(cfg workloadConfig) *workload {
	tr := cfg.Transport
	if tr == nil {
		tr = &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second}
	}
	w := &workload{cfg: cfg, client: &http.Client{Transport: tr}}
	w.pubCtx, w.pubCancel = context.WithCancel(context.Background())
	w.subCtx, w.subCancel = context.WithCancel(context.Background())
	var connected sync.WaitGroup
	for i := range cfg.Subscribers {
		s := &subscriber{log: subscriberLog{Name: fmt.Sprintf("s%d", i+1)}, seen: make(map[string]bool), nodes: make(map[string]bool)}
		s.moveTo.Store(-1)
		s.connected = connected.Done
		connected.Add(1)
		w.subs = append(w.subs, s)
		w.subWG.Add(1)
		go func() {
			defer w.subWG.Done()
			w.subscribe(s, i%len(cfg.Nodes))
		}()
	}
	// A first connection has no resume position: publishing starts once
	// every subscriber is registered, so that all see every event.
	waitGroupTimeout(&connected, 10*time.Second)
	for i := range cfg.Publishers {
		w.pubWG.Add(1)
		go func() {
			defer w.pubWG.Done()
			w.publishLoop(fmt.Sprintf("p%d", i+1), i%len(cfg.Nodes))
		}()
	}
	return w
}

// Publish sends one event to node i and records it like any other.
func (w *workload) Publish(publisher string, i int, channel, data string) publishRecord {
	n := w.cfg.Nodes[i]
	rec := publishRecord{Publisher: publisher, Node: n.Name, Channel: channel, Data: data, Sent: time.Now()}
	// Not the publisher's context: a publish in flight when publishing stops
	// finishes, so its answer is known.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL+"/channels/"+url.PathEscape(channel), strings.NewReader(data))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := w.client.Do(req)
	if err == nil {
		rec.Status = resp.StatusCode
		var body struct {
			ID    string `json:"id"`
			Error string `json:"error"`
		}
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if jerr := json.Unmarshal(b, &body); rerr != nil || jerr != nil {
			rec.Err = fmt.Sprintf("answer %q: %v", b, errors.Join(rerr, jerr))
			if rec.Status == http.StatusOK {
				rec.Status = -1 // a 200 without a readable id is no ack
			}
		}
		rec.ID = body.ID
		if body.Error != "" {
			rec.Err = body.Error
		}
	} else {
		rec.Err = err.Error()
	}
	rec.Done = time.Now()
	w.mu.Lock()
	w.pubs = append(w.pubs, rec)
	w.mu.Unlock()
	return rec
}

// publishLoop publishes to its home node, and to another ready node after
// the home node failed it, until the home node is ready again.
func (w *workload) publishLoop(name string, home int) {
	node, away := home, time.Time{}
	for n := 1; w.pubCtx.Err() == nil; n++ {
		// Back home once it is ready again, as a load balancer would
		// send it there.
		if node != home && time.Since(away) > 2*time.Second && w.ready(w.pubCtx, home) {
			node = home
		}
		ch := w.cfg.Channels[rand.N(len(w.cfg.Channels))]
		rec := w.Publish(name, node, ch, fmt.Sprintf("%s-%d", name, n))
		if !rec.acked() {
			if i, ok := w.readyNode(w.pubCtx, node); ok {
				node, away = i, time.Now()
			}
		}
		sleep(w.pubCtx, w.cfg.Every/2+rand.N(w.cfg.Every+1))
	}
}

// readyNode returns a random node whose /readyz answers 200, other than
// avoid unless no other is ready, trying for at most two seconds.
func (w *workload) readyNode(ctx context.Context, avoid int) (int, bool) {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		order := rand.Perm(len(w.cfg.Nodes))
		if i := slices.Index(order, avoid); i >= 0 {
			order = append(append(order[:i:i], order[i+1:]...), avoid)
		}
		for _, i := range order {
			if w.ready(ctx, i) {
				return i, true
			}
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return 0, false
}

func (w *workload) ready(ctx context.Context, i int) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.cfg.Nodes[i].URL+"/readyz", nil)
	resp, err := w.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// subscribe reads streams until the workload stops, resuming each from the
// last id received.
func (w *workload) subscribe(s *subscriber, first int) {
	q := url.Values{"channel": w.cfg.Channels}.Encode()
	lastID := ""
	node := first
	retries := 0 // of a move whose stream did not open
	for conn := 1; w.subCtx.Err() == nil; conn++ {
		moved := false
		if m := s.moveTo.Swap(-1); m >= 0 {
			node, moved = int(m), true
		} else if conn > 1 {
			i, ok := w.readyNode(w.subCtx, node)
			if !ok {
				conn--
				continue
			}
			node = i
		}
		stay := w.cfg.Stay[0] + rand.N(w.cfg.Stay[1]-w.cfg.Stay[0]+1)
		rec := connRecord{N: conn, Node: w.cfg.Nodes[node].Name, Resume: lastID}
		n, err := w.stream(s, node, conn, q, &lastID, stay, moved)
		rec.Events, rec.End = n, fmt.Sprint(err)
		s.mu.Lock()
		s.log.Conns = append(s.log.Conns, rec)
		if moved && s.arriving && retries < 20 {
			retries++
			s.moveTo.CompareAndSwap(-1, int32(node)) // try the same node again
		} else if moved {
			retries = 0
		}
		s.mu.Unlock()
		sleep(w.subCtx, time.Duration(20+rand.N(100))*time.Millisecond)
	}
}

var (
	errStay = errors.New("stayed long enough: reconnecting elsewhere")
	errMove = errors.New("told to move")
)

// idleTimeout ends a stream that received nothing, not even a heartbeat.
const idleTimeout = 10 * time.Second

var errIdle = errors.New("nothing received for 10s")

// stream runs one connection to node and returns how many events it
// delivered and why it ended.
// moved says it is the connection MoveAll asked for.
func (w *workload) stream(s *subscriber, node, conn int, query string, lastID *string, stay time.Duration, moved bool) (int, error) {
	ctx, cancel := context.WithCancelCause(w.subCtx)
	defer cancel(nil)
	s.mu.Lock()
	s.cancel = cancel
	s.mu.Unlock()
	if s.moveTo.Load() >= 0 {
		return 0, errMove // MoveAll came between the choice of node and here
	}
	leave := time.AfterFunc(stay, func() { cancel(errStay) })
	defer leave.Stop()
	idle := time.AfterFunc(idleTimeout, func() { cancel(errIdle) })
	defer idle.Stop()
	n := w.cfg.Nodes[node]
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+"/events?"+query, nil)
	req.Header.Set("Accept", "text/event-stream")
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %s", resp.Status)
	}
	if s.connected != nil {
		s.connected() // the hub registers the subscription before the headers go out
		s.connected = nil
	}
	if moved {
		s.mu.Lock()
		s.arriving = s.arriving && s.moveTo.Load() >= 0 // told to move again meanwhile
		s.mu.Unlock()
	}
	r := newSSEReader(idleReader{resp.Body, idle})
	count := 0
	for {
		ev, err := r.Next()
		if err != nil {
			if c := context.Cause(ctx); c != nil {
				err = c
			}
			return count, err
		}
		d := delivery{ID: eventIDOf(ev.ID), OwnID: ev.HasID, Type: ev.Type, Data: ev.Data, Node: n.Name, Conn: conn, At: time.Now()}
		if ev.HasID {
			d.SSEID = ev.ID
		}
		s.mu.Lock()
		if ev.Type == "rumor.reset" && !ev.HasID && !ev.CommentID {
			s.log.Resets = append(s.log.Resets, d)
		} else {
			s.log.Events = append(s.log.Events, d)
			s.seen[d.ID] = true
			s.nodes[n.Name] = true
			count++
		}
		s.mu.Unlock()
		if ev.HasID {
			*lastID = ev.ID
		}
	}
}

// idleReader pushes the idle timer back whenever bytes arrive.
type idleReader struct {
	r io.Reader
	t *time.Timer
}

func (r idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.Reset(idleTimeout)
	}
	return n, err
}

// MoveAll ends every subscriber's stream and has it resume on node i with
// its Last-Event-ID. WaitArrived waits for them to get there.
func (w *workload) MoveAll(i int) {
	for _, s := range w.subs {
		s.mu.Lock()
		s.arriving = true
		s.moveTo.Store(int32(i))
		if s.cancel != nil {
			s.cancel(errMove)
		}
		s.mu.Unlock()
	}
}

// WaitArrived waits up to timeout until every subscriber has opened the
// stream the last MoveAll asked for, and says whether they all did.
func (w *workload) WaitArrived(timeout time.Duration) bool {
	return everySubscriber(w.subs, timeout, func(s *subscriber) bool { return !s.arriving })
}

// WaitDelivered waits up to timeout until every subscriber has every event
// acknowledged so far.
func (w *workload) WaitDelivered(timeout time.Duration) bool {
	w.mu.Lock()
	var acked []string
	for _, p := range w.pubs {
		if p.acked() {
			acked = append(acked, eventIDOf(p.ID))
		}
	}
	w.mu.Unlock()
	return everySubscriber(w.subs, timeout, func(s *subscriber) bool {
		for _, id := range acked {
			if !s.seen[id] {
				return false
			}
		}
		return true
	})
}

// WaitMoved waits up to timeout until every subscriber has received events
// from at least two nodes, so that a scenario exercises resume across
// nodes however the random stays fell.
func (w *workload) WaitMoved(timeout time.Duration) bool {
	return everySubscriber(w.subs, timeout, func(s *subscriber) bool { return len(s.nodes) >= 2 })
}

// everySubscriber polls until ok holds for every subscriber (called with
// its lock held), for at most timeout, and says whether it did.
func everySubscriber(subs []*subscriber, timeout time.Duration, ok func(*subscriber) bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		all := true
		for _, s := range subs {
			s.mu.Lock()
			all = all && ok(s)
			s.mu.Unlock()
		}
		if all {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// StopPublishing stops the publishers and waits for their last answers.
func (w *workload) StopPublishing() {
	w.pubCancel()
	w.pubWG.Wait()
}

// Finish stops publishing, waits up to timeout until every subscriber has
// received every acknowledged event, then stops the subscribers and
// returns what everyone saw. complete says whether the wait succeeded.
func (w *workload) Finish(timeout time.Duration) (pubs []publishRecord, subs []subscriberLog, complete bool) {
	w.StopPublishing()
	complete = w.WaitDelivered(timeout)
	w.subCancel()
	w.subWG.Wait()
	w.Close()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.subs {
		subs = append(subs, s.log)
	}
	return slices.Clone(w.pubs), subs, complete
}

// Close stops every client; Finish calls it. Safe to call more than once.
func (w *workload) Close() {
	w.pubCancel()
	w.subCancel()
	w.pubWG.Wait()
	w.subWG.Wait()
	w.client.CloseIdleConnections()
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// waitGroupTimeout waits for wg, at most d.
func waitGroupTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
