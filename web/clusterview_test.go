package web

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rumorhq/rumor/broker"
)

// listCluster is a Cluster whose members the test sets.
type listCluster struct {
	self    string
	changes chan struct{}

	mu      sync.Mutex
	members []Member
}

func newListCluster(self string) *listCluster {
	return &listCluster{self: self, changes: make(chan struct{}, 1)}
}

func (c *listCluster) Self() string             { return c.self }
func (c *listCluster) Changes() <-chan struct{} { return c.changes }

func (c *listCluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Member, len(c.members))
	for i, m := range c.members {
		m.Self = m.Name == c.self
		out[i] = m
	}
	return out
}

// set replaces the members and signals a change, as memberlist would.
func (c *listCluster) set(ms ...Member) {
	c.mu.Lock()
	c.members = ms
	c.mu.Unlock()
	select {
	case c.changes <- struct{}{}:
	default:
	}
}

// viewCluster is two real nodes, "a" and "b", that list each other, plus a
// dead member "c" and an alive member "d" whose HTTP port refuses
// connections. ui serves a's cluster view with a short interval and no
// cache, so that tests need not wait for the production pace.
type viewCluster struct {
	a, b   *testServer
	ca, cb *listCluster
	ui     *httptest.Server
}

func newViewCluster(tb testing.TB) *viewCluster {
	tb.Helper()
	ca, cb := newListCluster("a"), newListCluster("b")
	vc := &viewCluster{
		a:  newServer(tb, broker.Options{HistorySize: 100}, Options{Cluster: ca}),
		b:  newServer(tb, broker.Options{HistorySize: 100}, Options{Cluster: cb}),
		ca: ca, cb: cb,
	}
	ms := vc.members("alive")
	ca.set(ms...)
	cb.set(ms...)
	v := newViewer(vc.a.h)
	v.interval = 20 * time.Millisecond
	v.nodes.ttl, v.chans.ttl = 0, 0
	r := chi.NewRouter()
	v.mount(r)
	vc.ui = httptest.NewServer(r)
	tb.Cleanup(func() {
		// The handler's streams end first (its own cleanup runs later).
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := vc.a.h.CloseStreams(ctx); err != nil {
			tb.Errorf("CloseStreams: %v", err)
		}
		vc.ui.Close()
	})
	return vc
}

// members lists the four members with b in state bState.
func (vc *viewCluster) members(bState string) []Member {
	return []Member{
		{Name: "a", Addr: "127.0.0.1:7001", HTTP: hostPort(vc.a.URL), State: "alive"},
		{Name: "b", Addr: "127.0.0.1:7002", HTTP: hostPort(vc.b.URL), State: bState},
		{Name: "c", Addr: "127.0.0.1:7003", HTTP: "127.0.0.1:1", State: "dead"},
		{Name: "d", Addr: "127.0.0.1:7004", HTTP: closedPort(), State: "alive"},
	}
}

func hostPort(url string) string { return strings.TrimPrefix(url, "http://") }

// closedPort is a loopback address nothing listens on.
func closedPort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// openSSE opens url as an event stream; the request ends at cleanup.
func openSSE(tb testing.TB, url string) *sseParser {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		tb.Fatalf("GET %s: %v", url, err)
	}
	tb.Cleanup(func() {
		cancel()
		resp.Body.Close()
	})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		tb.Fatalf("GET %s = %d %s, want 200 text/event-stream", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return newParser(resp.Body)
}

// nextSnapshot reads cluster events until ok accepts one.
func nextSnapshot(tb testing.TB, p *sseParser, what string, ok func(viewSnapshot) bool) viewSnapshot {
	tb.Helper()
	var last string
	for {
		ev, err := p.next()
		if err != nil {
			tb.Fatalf("waiting for a snapshot where %s: %v (last: %s)", what, err, last)
		}
		if ev.Type != "cluster" || ev.LastEventID != "" {
			tb.Fatalf("event = %+v, want type cluster and no id", ev)
		}
		last = ev.Data
		var s viewSnapshot
		if err := json.Unmarshal([]byte(ev.Data), &s); err != nil {
			tb.Fatalf("cluster event data %q: %v", ev.Data, err)
		}
		if ok(s) {
			return s
		}
	}
}

func member(s viewSnapshot, name string) viewMember {
	for _, m := range s.Members {
		if m.Name == name {
			return m
		}
	}
	return viewMember{}
}

func subscribers(m viewMember) int {
	if m.Subscribers == nil {
		return -1
	}
	return *m.Subscribers
}

// subscribe opens a stream on ts that counts as one subscriber there.
func subscribe(tb testing.TB, ts *testServer, channel string) {
	tb.Helper()
	// The hub counts the subscriber before the answer's header is sent.
	ts.openStream(tb, "/channels/"+channel, nil)
}

func TestNodeInfo(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{Version: "v1.2.3"})
	subscribe(t, ts, "x")
	a := ts.do(t, http.MethodGet, "/node", nil, "")
	var got nodeInfo
	decode(t, a.body, &got)
	stats := got.Stats
	got.Stats = nil
	want := nodeInfo{Node: "test-node", Subscribers: 1, Streams: 1, Channels: 1, Version: "v1.2.3"}
	if a.status != http.StatusOK || got != want {
		t.Errorf("GET /node = %d %+v, want 200 %+v", a.status, got, want)
	}
	if stats == nil || stats.Refused == nil || stats.Relay != nil {
		t.Errorf("GET /node stats = %+v, want counters and no relay on a single node", stats)
	}
}

// TestNodeStats: GET /node carries the counters the UI charts, read from
// the node's metrics: events published and delivered, streams refused by
// reason, and the delivery latency histogram.
func TestNodeStats(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{MaxStreamsPerClient: 1})
	s := ts.openStream(t, "/channels/x", nil)
	for range 3 {
		ts.publish(t, "x", "hi")
	}
	s.read(t, 3)
	if a := ts.do(t, http.MethodGet, "/channels/y", nil, ""); !strings.Contains(a.body, "too many streams") {
		t.Fatalf("second stream from one address = %q, want refused", a.body)
	}
	// A delivery's latency is observed once its write returned, which may
	// be after the client read it.
	var got nodeInfo
	waitFor(t, "three delivery latencies in GET /node", func() bool {
		got = nodeInfo{}
		decode(t, ts.do(t, http.MethodGet, "/node", nil, "").body, &got)
		return got.Stats == nil || got.Stats.Latency == nil || got.Stats.Latency.Count >= 3
	})
	st := got.Stats
	if st == nil {
		t.Fatal("GET /node has no stats")
	}
	if st.Published != 3 || st.Delivered != 3 || st.Refused["client_limit"] != 1 {
		t.Errorf("stats published %d, delivered %d, refused %v; want 3, 3 and client_limit 1", st.Published, st.Delivered, st.Refused)
	}
	if l := st.Latency; l == nil || l.Count != 3 || len(l.Bounds) == 0 || len(l.Bounds) != len(l.Counts) || l.Counts[len(l.Counts)-1] > l.Count {
		t.Errorf("stats latency %+v, want a cumulative histogram of 3 deliveries", l)
	}
}

func TestClusterEventsSingleNode(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{NodeName: "solo", HTTPAddr: "127.0.0.1:9"})
	p := openSSE(t, ts.URL+"/cluster/events")
	s := nextSnapshot(t, p, "solo is listed", func(viewSnapshot) bool { return true })
	if s.Self != "solo" || len(s.Members) != 1 || !s.Members[0].Self || s.Members[0].State != "alive" || subscribers(s.Members[0]) != 0 {
		t.Errorf("snapshot = %+v, want solo alone, alive, 0 subscribers", s)
	}
	if p.retry <= 0 || len(p.comments) == 0 || !strings.Contains(p.comments[0], "solo") {
		t.Errorf("preamble: retry %d, comments %q; want a retry: and a comment naming the node", p.retry, p.comments)
	}
}

func TestClusterEvents(t *testing.T) {
	vc := newViewCluster(t)
	p := openSSE(t, vc.ui.URL+"/cluster/events")

	s := nextSnapshot(t, p, "every member is listed", func(viewSnapshot) bool { return true })
	if s.Self != "a" || len(s.Members) != 4 {
		t.Fatalf("first snapshot = %+v, want self a and 4 members", s)
	}
	if m := member(s, "a"); !m.Self || subscribers(m) != 0 || m.HTTP != hostPort(vc.a.URL) {
		t.Errorf("member a = %+v, want self, 0 subscribers, http %s", m, hostPort(vc.a.URL))
	}
	if m := member(s, "b"); m.Self || subscribers(m) != 0 || m.Error != "" {
		t.Errorf("member b = %+v, want 0 subscribers from its GET /node", m)
	}
	if m := member(s, "c"); m.Subscribers != nil || m.Error != "" || m.State != "dead" {
		t.Errorf("member c = %+v, want dead, subscribers null and not asked", m)
	}
	if m := member(s, "d"); m.Subscribers != nil || !strings.Contains(m.Error, "refused") {
		t.Errorf("member d = %+v, want subscribers null and a connection refused", m)
	}

	// Counts change without a membership change: the periodic look sees it.
	subscribe(t, vc.b, "news")
	subscribe(t, vc.b, "sport")
	subscribe(t, vc.a, "news")
	s = nextSnapshot(t, p, "b has 2 subscribers and a 1", func(s viewSnapshot) bool {
		return subscribers(member(s, "b")) == 2 && subscribers(member(s, "a")) == 1
	})

	// A membership change is sent at once.
	vc.ca.set(vc.members("left")...)
	s = nextSnapshot(t, p, "b has left", func(s viewSnapshot) bool { return member(s, "b").State == "left" })
	if m := member(s, "b"); m.Subscribers != nil {
		t.Errorf("member b after leaving = %+v, want subscribers null", m)
	}
}

func TestClusterEventsHeartbeatAndClose(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{Heartbeat: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/cluster/events", nil)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	readUntil := func(want string) []string {
		t.Helper()
		var lines []string
		for {
			line, err := r.ReadString('\n')
			lines = append(lines, line)
			if strings.HasPrefix(line, want) {
				return lines
			}
			if err != nil {
				t.Fatalf("stream ended (%v) before a line %q; got %q", err, want, lines)
			}
		}
	}
	readUntil("event: cluster")
	readUntil(": ping") // idle: the snapshot does not change

	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		closed <- ts.h.CloseStreams(ctx)
	}()
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read the end of the stream: %v", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("CloseStreams: %v", err)
	}
	var retry int
	for _, line := range strings.Split(string(rest), "\n") {
		if v, ok := strings.CutPrefix(line, "retry: "); ok {
			retry, _ = strconv.Atoi(v)
		}
	}
	if retry < 2000 {
		t.Errorf("end of stream %q: want a jittered retry: of at least 2000 ms", rest)
	}
}

func TestClusterChannels(t *testing.T) {
	vc := newViewCluster(t)
	for range 3 {
		vc.a.publish(t, "news", "hello")
	}
	subscribe(t, vc.b, "news")
	subscribe(t, vc.a, "weather")

	get := func() clusterChannels {
		t.Helper()
		resp, err := http.Get(vc.ui.URL + "/cluster/channels")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out clusterChannels
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /cluster/channels = %d, %v", resp.StatusCode, err)
		}
		return out
	}
	got := get()
	if got.Self != "a" || len(got.Nodes) != 3 {
		t.Fatalf("nodes = %+v, want a, b and d (c is dead)", got.Nodes)
	}
	for _, n := range got.Nodes {
		switch {
		case n.Name == "d" && (n.OK || !strings.Contains(n.Error, "refused")):
			t.Errorf("node d = %+v, want not ok, connection refused", n)
		case n.Name != "d" && !n.OK:
			t.Errorf("node %s = %+v, want ok", n.Name, n)
		}
	}
	if len(got.Channels) != 2 || got.Channels[0].Name != "news" || got.Channels[1].Name != "weather" {
		t.Fatalf("channels = %+v, want news and weather", got.Channels)
	}
	news, weather := got.Channels[0], got.Channels[1]
	if news.Subscribers != 1 || news.Nodes["b"] != 1 || news.Nodes["a"] != 0 || news.Events != 3 || news.Published != 3 || news.LastPublished.IsZero() {
		t.Errorf("news = %+v, want 1 subscriber (on b), 3 retained and published", news)
	}
	if weather.Subscribers != 1 || weather.Nodes["a"] != 1 || len(weather.Nodes) != 1 || weather.Events != 0 {
		t.Errorf("weather = %+v, want 1 subscriber on a, nothing retained", weather)
	}
}

func TestRateSamples(t *testing.T) {
	var r rateSamples
	t0 := time.Unix(1000, 0)
	if got := r.add(t0, map[string]uint64{"a": 10}); got["a"] != 0 {
		t.Errorf("first look: rate %v, want 0", got["a"])
	}
	got := r.add(t0.Add(2*time.Second), map[string]uint64{"a": 20, "b": 4})
	if got["a"] != 5 || got["b"] != 2 {
		t.Errorf("after 2 s: rates %v, want a 5/s, b 2/s (new channel)", got)
	}
	// Looks more often than every second add no sample.
	r.add(t0.Add(2500*time.Millisecond), map[string]uint64{"a": 21})
	if len(r.samples) != 2 {
		t.Errorf("%d samples, want 2", len(r.samples))
	}
	// Samples older than the window go, the newest of them stays as base.
	got = r.add(t0.Add(14*time.Second), map[string]uint64{"a": 44})
	if want := float64(44-20) / 12; got["a"] != want {
		t.Errorf("after 14 s: rate %v, want %v over the last 12 s", got["a"], want)
	}
	// A channel made again starts from 0.
	got = r.add(t0.Add(16*time.Second), map[string]uint64{"a": 2})
	if got["a"] <= 0 {
		t.Errorf("counter went down: rate %v, want it counted from 0", got["a"])
	}
}

func TestMemberURL(t *testing.T) {
	for _, tc := range []struct {
		m    Member
		want string
	}{
		{Member{HTTP: "10.0.0.5:8080", Addr: "10.0.0.5:7946"}, "http://10.0.0.5:8080"},
		{Member{HTTP: ":8080", Addr: "10.0.0.6:7946"}, "http://10.0.0.6:8080"},
		{Member{HTTP: "0.0.0.0:8080", Addr: "10.0.0.7:7946"}, "http://10.0.0.7:8080"},
		{Member{HTTP: "[::]:8080", Addr: "[fd00::1]:7946"}, "http://[fd00::1]:8080"},
		{Member{HTTP: "rumor-0.rumor:8080"}, "http://rumor-0.rumor:8080"},
		{Member{HTTP: ""}, ""},
		{Member{HTTP: ":8080"}, ""},
		// The views live on the admin listener when a member has one.
		{Member{HTTP: "10.0.0.8:8080", Admin: "10.0.0.8:9090"}, "http://10.0.0.8:9090"},
		{Member{HTTP: ":8080", Admin: ":9090", Addr: "10.0.0.9:7946"}, "http://10.0.0.9:9090"},
	} {
		if got := memberURL(tc.m, "http"); got != tc.want {
			t.Errorf("memberURL(%+v) = %q, want %q", tc.m, got, tc.want)
		}
	}
}

func TestPeerCacheShares(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // long enough for the callers to overlap
		writeJSON(w, http.StatusOK, nodeInfo{Node: "p", Subscribers: 7})
	}))
	defer srv.Close()
	c := newViewer(newServer(t, broker.Options{}, Options{}).h).nodes
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			res := c.get([]string{srv.URL})
			if res[0].err != nil || res[0].val.Subscribers != 7 {
				t.Errorf("get = %+v, want 7 subscribers", res[0])
			}
		})
	}
	wg.Wait()
	c.get([]string{srv.URL}) // still fresh
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Errorf("%d requests to the peer, want 1 shared by every caller", calls)
	}
}
