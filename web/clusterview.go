package web

// The cluster view is what the UI shows about the whole cluster, answered by
// whichever node the browser is on. Each node knows only its own counts, so
// this node asks its peers over HTTP (GET /node, GET /channels), server
// side: the browser talks to one origin and needs no CORS. Answers are
// cached for a moment, so any number of open UIs cost each peer about one
// request per second.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rumorhq/rumor/broker"
)

// Pace and limits of the cluster view.
const (
	viewInterval = 2 * time.Second // a /cluster/events stream looks for changed counts this often
	peerTimeout  = time.Second     // one request to a peer, connect to last byte
	peerTTL      = time.Second     // a peer's answer is reused this long
	peerForget   = time.Minute     // answers of members gone this long are dropped
	peerMaxBody  = 16 << 20        // largest peer answer read
	rateWindow   = 10 * time.Second
)

// nodeInfo is the answer of GET /node: this node's own numbers, which is
// what peers ask for to fill their cluster view.
type nodeInfo struct {
	Node        string     `json:"node"`
	Subscribers int        `json:"subscribers"` // local subscriptions (one per open event stream)
	Streams     int        `json:"streams"`     // open SSE responses, cluster watchers included
	Channels    int        `json:"channels"`    // active channels
	Version     string     `json:"version,omitempty"`
	Stats       *nodeStats `json:"stats,omitempty"` // for the UI's charts: stats.go
}

// viewMember is a member with its local subscriber count. Subscribers is
// null when it is unknown: the member is dead or left, or did not answer;
// Error then says why, for a member that should have answered.
type viewMember struct {
	Member
	Subscribers *int       `json:"subscribers"`
	Stats       *nodeStats `json:"stats,omitempty"`
	Error       string     `json:"error,omitempty"`
}

// viewSnapshot is the data of an "event: cluster" on GET /cluster/events.
type viewSnapshot struct {
	Self    string       `json:"self"`
	Members []viewMember `json:"members"`
}

// clusterChannel is one channel of GET /cluster/channels, across nodes.
type clusterChannel struct {
	Name          string         `json:"name"`
	Subscribers   int            `json:"subscribers"` // sum over the nodes that answered
	Nodes         map[string]int `json:"nodes"`       // subscribers by node name, for the nodes that hold the channel
	Events        int            `json:"events"`      // retained; the most any node holds
	Bytes         int64          `json:"bytes"`       // retained; the most any node holds
	Published     uint64         `json:"published"`   // stored since start; the most any node counts
	Rate          float64        `json:"rate"`        // events per second over the last 10 s of samples
	LastPublished time.Time      `json:"lastPublished,omitzero"`
}

// clusterNode says whether a member's channels are part of the answer.
type clusterNode struct {
	Name  string `json:"name"`
	HTTP  string `json:"http"`
	Admin string `json:"admin,omitempty"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// clusterChannels is the answer of GET /cluster/channels.
type clusterChannels struct {
	Self     string           `json:"self"`
	Nodes    []clusterNode    `json:"nodes"`
	Channels []clusterChannel `json:"channels"`
}

// viewer serves the cluster-wide endpoints of the UI. Its only state
// is the cache of peer answers and the publish-rate samples; it starts no
// goroutine that outlives a request.
type viewer struct {
	h        *Handler
	interval time.Duration
	nodes    *peerCache[nodeInfo]
	chans    *peerCache[channelList]
	rates    rateSamples
}

// mountClusterView registers GET /node, GET /cluster/events and
// GET /cluster/channels on r.
func (h *Handler) mountClusterView(r chi.Router) {
	newViewer(h).mount(r)
}

func newViewer(h *Handler) *viewer {
	// Keep-alives off: a peer is asked about once a second, and a pool of
	// idle connections would outlive the Handler, which has no Close.
	client := &http.Client{
		Timeout: peerTimeout,
		Transport: &http.Transport{
			Proxy:                 nil, // peers are reached directly, never through HTTP_PROXY
			DialContext:           (&net.Dialer{Timeout: peerTimeout}).DialContext,
			DisableKeepAlives:     true,
			ResponseHeaderTimeout: peerTimeout,
			TLSClientConfig:       h.opts.PeerTLS,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &viewer{
		h:        h,
		interval: viewInterval,
		nodes:    newPeerCache[nodeInfo](client, "/node"),
		chans:    newPeerCache[channelList](client, "/channels"),
	}
}

func (v *viewer) mount(r chi.Router) {
	r.Get("/node", v.handleNode)
	r.Get("/cluster/events", v.handleEvents)
	r.Get("/cluster/channels", v.handleChannels)
}

// handleNode serves GET /node: this node's name and counts.
func (v *viewer) handleNode(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, v.self())
}

func (v *viewer) self() nodeInfo {
	st := v.h.hub.Stats()
	return nodeInfo{
		Node:        v.h.nodeName(),
		Subscribers: st.Subscribers,
		Streams:     v.h.openStreams(),
		Channels:    st.Channels,
		Version:     v.h.opts.Version,
		Stats:       v.h.stats(),
	}
}

// handleEvents serves GET /cluster/events: an event stream of "cluster"
// events, each a whole snapshot of the members and their subscriber counts:
// one at connect, one after every membership change, and one whenever a
// periodic look finds that anything changed. Snapshots carry no id: they
// are state, not a log, and a reconnecting client just gets the current
// one. Like event streams it counts against MaxStreams and ends with a
// retry: on CloseStreams.
func (v *viewer) handleEvents(w http.ResponseWriter, r *http.Request) {
	h := v.h
	s := h.newStream(w)
	if reason, ok := h.register(s); !ok {
		h.shed(w, r, reason)
		return
	}
	defer h.unregister(s)
	var changed <-chan struct{} // nil for a single node: never ready
	if h.members != nil {
		var leave func()
		changed, leave = h.members.watch()
		defer leave()
	}
	writeStreamHeader(w, r)
	// The preamble goes out before the first snapshot, which may wait for
	// slow peers: the browser sees the stream open at once.
	b := h.getBatch()
	b.buf = h.appendPreamble(b.buf)
	err := s.write(b.buf)
	h.putBatch(b)
	if err != nil {
		return
	}
	var last []byte
	// send writes a snapshot, unless it is the one last sent and force is
	// false; it reports whether it wrote.
	send := func(force bool) (wrote bool, err error) {
		snap, err := json.Marshal(v.snapshot())
		if err != nil || !force && bytes.Equal(snap, last) {
			return false, err
		}
		last = snap
		b := h.getBatch()
		b.buf = append(b.buf, "event: cluster\ndata: "...)
		b.buf = append(b.buf, snap...) // compact JSON: one line
		b.buf = append(b.buf, '\n', '\n')
		err = s.write(b.buf)
		h.putBatch(b)
		return err == nil, err
	}
	if _, err := send(true); err != nil {
		return
	}
	tick := time.NewTicker(v.interval)
	defer tick.Stop()
	heartbeat := time.NewTimer(h.opts.Heartbeat)
	defer heartbeat.Stop()
	for {
		var wrote bool
		var err error
		select {
		case <-r.Context().Done():
			return
		case <-s.stop:
			s.end(jitter(h.opts.Retry, 5*time.Second), "node shutting down: reconnect")
			return
		case <-heartbeat.C:
			err = s.writeString(": ping\n")
			wrote = err == nil
		case <-changed:
			// Take the next signal before reading the members, so that no
			// change goes unseen.
			changed = h.members.next()
			wrote, err = send(true)
		case <-tick.C:
			wrote, err = send(false)
		}
		if err != nil {
			return
		}
		if wrote {
			heartbeat.Reset(h.opts.Heartbeat)
		}
	}
}

// snapshot is the cluster as this node sees it, with every member's local
// subscriber count: this node's from its hub, live members' from their
// GET /node, asked concurrently.
func (v *viewer) snapshot() viewSnapshot {
	cv := v.h.clusterView()
	out := viewSnapshot{Self: cv.Self, Members: make([]viewMember, len(cv.Members))}
	var urls []string
	var asked []int // indexes into out.Members, parallel to urls
	for i, m := range cv.Members {
		out.Members[i] = viewMember{Member: m}
		switch {
		case m.Self || m.Name == cv.Self:
			self := v.self()
			out.Members[i].Subscribers = &self.Subscribers
			out.Members[i].Stats = self.Stats
		case reachable(m.State):
			u := memberURL(m, v.scheme())
			if u == "" {
				out.Members[i].Error = "no HTTP address"
				continue
			}
			urls = append(urls, u)
			asked = append(asked, i)
		}
	}
	for j, res := range v.nodes.get(urls) {
		m := &out.Members[asked[j]]
		if res.err != nil {
			m.Error = res.err.Error()
			continue
		}
		n := res.val.Subscribers
		m.Subscribers = &n
		m.Stats = res.val.Stats
	}
	return out
}

// handleChannels serves GET /cluster/channels: the active channels of
// every live member, asked concurrently (this node's from its hub), with
// subscriber counts per node and in total, retained history and the recent
// publish rate. A member that does not answer within a second is listed in
// nodes with its error and left out of the counts.
func (v *viewer) handleChannels(w http.ResponseWriter, r *http.Request) {
	cv := v.h.clusterView()
	type part struct {
		node  string
		chans []broker.ChannelInfo
	}
	var parts []part
	var nodes []clusterNode
	var urls []string
	var asked []int // indexes into nodes, parallel to urls
	for _, m := range cv.Members {
		switch {
		case m.Self || m.Name == cv.Self:
			nodes = append(nodes, clusterNode{Name: m.Name, HTTP: m.HTTP, Admin: m.Admin, OK: true})
			parts = append(parts, part{m.Name, v.h.hub.Channels()})
		case reachable(m.State):
			nodes = append(nodes, clusterNode{Name: m.Name, HTTP: m.HTTP, Admin: m.Admin})
			u := memberURL(m, v.scheme())
			if u == "" {
				nodes[len(nodes)-1].Error = "no HTTP address"
				continue
			}
			urls = append(urls, u)
			asked = append(asked, len(nodes)-1)
		}
	}
	for j, res := range v.chans.get(urls) {
		n := &nodes[asked[j]]
		if res.err != nil {
			n.Error = res.err.Error()
			continue
		}
		n.OK = true
		parts = append(parts, part{n.Name, res.val.Channels})
	}

	byName := make(map[string]*clusterChannel)
	for _, p := range parts {
		for _, c := range p.chans {
			a := byName[c.Name]
			if a == nil {
				a = &clusterChannel{Name: c.Name, Nodes: make(map[string]int)}
				byName[c.Name] = a
			}
			a.Subscribers += c.Subscribers
			a.Nodes[p.node] = c.Subscribers
			// Every node stores every event, so history and counts are
			// about the same everywhere: the largest is the best guess.
			a.Events = max(a.Events, c.Events)
			a.Bytes = max(a.Bytes, c.Bytes)
			a.Published = max(a.Published, c.Published)
			if c.LastPublished.After(a.LastPublished) {
				a.LastPublished = c.LastPublished
			}
		}
	}
	out := clusterChannels{Self: cv.Self, Nodes: nodes, Channels: make([]clusterChannel, 0, len(byName))}
	published := make(map[string]uint64, len(byName))
	for name, a := range byName {
		out.Channels = append(out.Channels, *a)
		published[name] = a.Published
	}
	rates := v.rates.add(time.Now(), published)
	for i := range out.Channels {
		out.Channels[i].Rate = rates[out.Channels[i].Name]
	}
	slices.SortFunc(out.Channels, func(a, b clusterChannel) int { return cmp.Compare(a.Name, b.Name) })
	if out.Nodes == nil {
		out.Nodes = []clusterNode{}
	}
	writeJSON(w, http.StatusOK, out)
}

// reachable reports whether a member in state should answer HTTP: a
// suspect member may just be slow to gossip.
func reachable(state string) bool { return state == "alive" || state == "suspect" }

// memberURL is the base URL where a member serves the views: its admin
// listener if it has one, else its HTTP API; "" if it has neither. A
// member that listens on every interface advertises ":PORT"; its gossip
// host is then the best guess.
func memberURL(m Member, scheme string) string {
	host, port, err := net.SplitHostPort(cmp.Or(m.Admin, m.HTTP))
	if err != nil || port == "" {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host, _, err = net.SplitHostPort(m.Addr)
		if err != nil || host == "" {
			return ""
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// scheme is how peers are reached: https when every node serves TLS.
func (v *viewer) scheme() string {
	if v.h.opts.PeerTLS != nil {
		return "https"
	}
	return "http"
}

// peerCache fetches one JSON path from many peers concurrently and keeps
// each answer for a moment, so that concurrent viewers share the requests.
type peerCache[T any] struct {
	client *http.Client
	path   string
	ttl    time.Duration // how long an answer is reused

	mu      sync.Mutex
	entries map[string]*peerEntry[T] // by base URL
}

type peerEntry[T any] struct {
	done chan struct{} // closed when val and err are set
	at   time.Time     // when the fetch ended
	val  T
	err  error
}

type peerResult[T any] struct {
	val T
	err error
}

func newPeerCache[T any](client *http.Client, path string) *peerCache[T] {
	return &peerCache[T]{client: client, path: path, ttl: peerTTL, entries: make(map[string]*peerEntry[T])}
}

// get returns the answer of each base URL, in order: a cached one younger
// than ttl, one that another caller is fetching now, or a fresh one.
// It waits for the fetches it starts and for those it shares; each takes at
// most peerTimeout. Fetches do not follow any caller's context, because
// other callers may be waiting for the same answer.
func (c *peerCache[T]) get(urls []string) []peerResult[T] {
	if len(urls) == 0 {
		return nil
	}
	now := time.Now()
	entries := make([]*peerEntry[T], len(urls))
	var wg sync.WaitGroup
	c.mu.Lock()
	for u, e := range c.entries {
		if isDone(e.done) && now.Sub(e.at) > peerForget {
			delete(c.entries, u)
		}
	}
	for i, u := range urls {
		e := c.entries[u]
		if e == nil || isDone(e.done) && now.Sub(e.at) >= c.ttl {
			e = &peerEntry[T]{done: make(chan struct{})}
			c.entries[u] = e
			wg.Go(func() {
				e.val, e.err = c.fetch(u)
				e.at = time.Now()
				close(e.done)
			})
		}
		entries[i] = e
	}
	c.mu.Unlock()
	wg.Wait()
	out := make([]peerResult[T], len(urls))
	for i, e := range entries {
		<-e.done // set by this call or by another one that is waiting for it
		out[i] = peerResult[T]{e.val, e.err}
	}
	return out
}

func (c *peerCache[T]) fetch(base string) (T, error) {
	var v T
	ctx, cancel := context.WithTimeout(context.Background(), peerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+c.path, nil)
	if err != nil {
		return v, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) && ue.Timeout() {
			return v, errors.New("timed out")
		}
		return v, fmt.Errorf("unreachable: %s", lastPart(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("GET %s: %s", c.path, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, peerMaxBody+1))
	if err != nil {
		return v, fmt.Errorf("GET %s: %s", c.path, lastPart(err))
	}
	if len(body) > peerMaxBody {
		return v, fmt.Errorf("GET %s: answer larger than %d bytes", c.path, peerMaxBody)
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return v, fmt.Errorf("GET %s: %w", c.path, err)
	}
	return v, nil
}

// lastPart shortens a chain of wrapped network errors to its cause, which
// is what an operator looking at the UI needs ("connection refused").
func lastPart(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// rateSamples turns the per-channel "published" counters of successive
// GET /cluster/channels answers into rates. It keeps a sample at most every
// second for rateWindow, so the rate is over the last ~10 s in which
// somebody looked, and 0 for the first look.
type rateSamples struct {
	mu      sync.Mutex
	samples []rateSample // oldest first
}

type rateSample struct {
	at        time.Time
	published map[string]uint64
}

// add records the counters at now and returns the rate of each channel.
func (r *rateSamples) add(now time.Time, published map[string]uint64) map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Drop samples out of the window, but keep the newest of them as the
	// base so a viewer that looks every few seconds still gets a rate.
	for len(r.samples) > 1 && now.Sub(r.samples[1].at) >= rateWindow {
		r.samples = r.samples[1:]
	}
	if len(r.samples) == 1 && now.Sub(r.samples[0].at) > 3*rateWindow {
		r.samples = r.samples[:0]
	}
	rates := make(map[string]float64, len(published))
	if len(r.samples) > 0 {
		base := r.samples[0]
		if dt := now.Sub(base.at).Seconds(); dt > 0 {
			for name, n := range published {
				was := base.published[name] // 0 for a channel created since
				if n < was {
					was = 0 // the channel was dropped and made again
				}
				rates[name] = float64(n-was) / dt
			}
		}
	}
	if len(r.samples) == 0 || now.Sub(r.samples[len(r.samples)-1].at) >= time.Second {
		r.samples = append(r.samples, rateSample{at: now, published: published})
	}
	return rates
}
