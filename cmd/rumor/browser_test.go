package main

// End-to-end tests of the web UI in a real browser: a three-node cluster
// wired by startNode, as `rumor dev` does, in this process, and headless
// Chromium driven over the DevTools protocol by chromedp.
//
// The tests skip with -short, and when no browser is installed;
// RUMOR_REQUIRE_BROWSER=1 (set by CI, which runs without -short) turns the
// second skip into a failure. RUMOR_BROWSER names the
// browser binary when it is not on PATH as chromium, chromium-browser,
// google-chrome or google-chrome-stable.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goruntime "runtime"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

var updateDocs = flag.Bool("update-ui-png", false, "also write the UI screenshot to docs/ui.png")

// Bounds of the browser tests. The test takes about 20 s on an idle
// 2-core machine, a third of it Chromium's start; on a saturated one the
// start alone has taken 40 s, hence the wider hard cap.
const (
	browserBudget = 2 * time.Minute  // hard cap on the whole test, browser start to cleanup
	domWait       = 15 * time.Second // one wait for the page to show something
)

func TestBrowserUI(t *testing.T) {
	exe := browserPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), browserBudget)
	defer cancel()

	start := time.Now()
	c := startCluster(t, ctx, 3)
	t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	// The page reaches node 2 through a proxy the test can cut, the way a
	// load balancer or a flaky network drops connections.
	proxy := newCutProxy(t, n2.public.ln.Addr().String())
	b := startBrowser(t, ctx, exe)
	t.Logf("browser up in %v", time.Since(start).Round(time.Millisecond))
	page := b.open(t, "http://"+proxy.addr()+"/")

	// Each step needs the ones before it: the first failure ends the test.
	step := func(name string, f func(t *testing.T)) {
		if !t.Failed() {
			t.Run(name, f)
		}
	}

	step("cluster view", func(t *testing.T) {
		page.wait(t, "three alive members", `document.querySelectorAll('#members tr[data-state="alive"]').length === 3`)
		page.wait(t, "node 2 shown as this node", fmt.Sprintf(
			`document.querySelector('#members tr.self')?.dataset.member === %q && document.getElementById('self-name')?.textContent === %[1]q`,
			n2.name()))
		for _, n := range c.nodes {
			page.wait(t, n.name()+"'s HTTP address, linking to its UI", fmt.Sprintf(
				`document.querySelector('#members tr[data-member=%q]')?.textContent.includes(%q) &&
				 document.querySelector('#members tr[data-member=%[1]q] a')?.href === %[3]q`, n.name(), hostPort(n.URL()), n.URL()+"/"))
		}
		if banner := page.eval(t, `document.getElementById('banner').hidden`); banner != true {
			t.Errorf("banner hidden = %v, want true while connected", banner)
		}
	})

	var ids []string // every event the page should show, in order
	step("subscribe and publish over HTTP on another node", func(t *testing.T) {
		if unlabeled := page.eval(t, `[...document.querySelectorAll('input, textarea')].filter(e => e.labels.length === 0).map(e => e.id)`); len(unlabeled.([]any)) != 0 {
			t.Errorf("inputs without a label: %v", unlabeled)
		}
		// A refusal is final and says why: no retry loop.
		page.do(t, "subscribe to a bad pattern", chromedp.SendKeys(chromedp.ID("sub-channels"), "a..b\n"))
		page.wait(t, "the refusal", `document.querySelector('#log li[data-kind="refused"]')?.textContent.includes("(400)") &&
			document.getElementById('sub-button').textContent === "Subscribe" && document.getElementById('banner').hidden`)
		// The Publish form is in the first screen at 1280×900, next to the
		// subscription, not below the event log.
		if bottom := page.eval(t, `window.scrollTo(0, 0), document.getElementById('pub-button').getBoundingClientRect().bottom`); bottom.(float64) > 900 {
			t.Errorf("the Publish button ends at y=%v, want it above the fold at 900", bottom)
		}
		// A type typed for publishing before subscribing joins the types
		// the subscription will listen for, instead of staying invisible
		// behind the default "message".
		page.do(t, "type an event type to publish",
			chromedp.SendKeys(chromedp.ID("pub-type"), "order.created"),
			chromedp.Focus(chromedp.ID("pub-data")))
		page.wait(t, "the type among those to subscribe to", `document.getElementById('sub-types').value === "message order.created"`)
		page.eval(t, `document.getElementById('pub-type').value = ""`)
		// Keyboard only: type the channels and the types, Enter submits.
		page.eval(t, `document.getElementById('sub-channels').value = document.getElementById('sub-types').value = ""`)
		page.do(t, "subscribe",
			chromedp.SendKeys(chromedp.ID("sub-types"), "message greeting"),
			chromedp.SendKeys(chromedp.ID("sub-channels"), "demo\n"))
		page.wait(t, "the subscription to open", `document.querySelector('#log li[data-kind="open"]') !== null`)

		for i := range 3 {
			ids = append(ids, c.publish(t, n1, "demo", "", "hello "+strconv.Itoa(i)))
		}
		ids = append(ids, c.publish(t, n1, "demo", "greeting", "typed"))
		page.waitIDs(t, ids)
		ev := page.event(t, ids[3])
		if ev.Type != "greeting" || ev.Data != "typed" || ev.Time == "" {
			t.Errorf("event %s shows %+v, want type greeting, data typed and an arrival time", ids[3], ev)
		}
	})

	step("subscriber counts per node", func(t *testing.T) {
		// One more subscriber, on node 3, next to the page's own on node 2.
		c.openStream(t, n3, "/channels/demo")
		page.wait(t, "node 2 and node 3 with one subscriber each", fmt.Sprintf(
			`document.querySelector('#members tr[data-member=%q] td[data-subscribers]')?.dataset.subscribers === "1" &&
			 document.querySelector('#members tr[data-member=%q] td[data-subscribers]')?.dataset.subscribers === "1"`,
			n2.name(), n3.name()))
		page.wait(t, "channel demo with 2 subscribers", `document.querySelector('#channels tr[data-channel="demo"] td[data-subscribers]')?.dataset.subscribers === "2"`)
	})

	step("presence per channel, cluster-wide", func(t *testing.T) {
		// The page's stream on node 2 and one on node 3 are present on
		// demo; a pattern's stream on node 1 is present on the pattern.
		c.openStream(t, n3, "/channels/demo")
		c.openStream(t, n1, "/events?channel=orders.%3E")
		page.wait(t, "demo present 2, orders.> present 1, rumor's own channels hidden",
			`document.querySelector('#channels tr[data-channel="demo"] td[data-present]')?.dataset.present === "2" &&
			 document.querySelector('#channels tr[data-channel="orders.>"] td[data-present]')?.dataset.present === "1" &&
			 document.querySelector('#channels tr[data-channel^="rumor."]') === null`)
	})

	step("publish from the form on node 1", func(t *testing.T) {
		other := b.open(t, n1.URL()+"/")
		other.wait(t, "node 1's page to know its node", fmt.Sprintf(`document.getElementById('self-name')?.textContent === %q`, n1.name()))
		other.do(t, "publish",
			chromedp.SendKeys(chromedp.ID("pub-channel"), "demo"),
			chromedp.SendKeys(chromedp.ID("pub-type"), "greeting"),
			chromedp.SetValue(chromedp.ID("pub-data"), "from the form\n  on node 1"),
			chromedp.Click(chromedp.ID("pub-button")))
		id := other.publishedID(t)
		ids = append(ids, id)
		page.waitIDs(t, ids)
		if ev := page.event(t, id); ev.Type != "greeting" || ev.Data != "from the form\n  on node 1" {
			t.Errorf("event %s shows %+v, want type greeting and the two lines", id, ev)
		}
		other.close()
	})

	step("publish from the form with a new type", func(t *testing.T) {
		page.do(t, "publish",
			chromedp.SetValue(chromedp.ID("pub-channel"), "demo"),
			chromedp.SetValue(chromedp.ID("pub-type"), "note"),
			chromedp.SetValue(chromedp.ID("pub-data"), "a type the page did not listen for"),
			chromedp.Focus(chromedp.ID("pub-data")),
			chromedp.KeyEvent("\r", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
		id := page.publishedID(t)
		ids = append(ids, id)
		page.waitIDs(t, ids)
		if ev := page.event(t, id); ev.Type != "note" {
			t.Errorf("event %s shows type %q, want note", id, ev.Type)
		}
	})

	step("activity charts and relay links", func(t *testing.T) {
		for i := range 20 {
			ids = append(ids, c.publish(t, n1, "demo", "", "load "+strconv.Itoa(i)))
		}
		page.waitIDs(t, ids)
		page.wait(t, "events per node charted", fmt.Sprintf(
			`+document.querySelector('#chart-nodes svg').dataset.max > 0 &&
			 document.querySelector('#chart-nodes polyline[data-series=%q]') !== null &&
			 document.querySelectorAll('#chart-nodes .legend li[data-series]').length === 3`, n1.name()))
		page.wait(t, "channel demo charted", `document.querySelector('#chart-channels polyline[data-series="demo"]') !== null`)
		page.wait(t, "delivery latency percentiles", `["p50", "p90", "p99"].every(q =>
			/ms$/.test(document.querySelector('#chart-latency .legend li[data-series="' + q + '"] .value')?.textContent || ""))`)
		page.wait(t, "refused streams by reason", `["limit", "client_limit", "draining"].every(r =>
			document.querySelector('#chart-refused .legend li[data-series="' + r + '"]') !== null)`)
		page.wait(t, "every node's relay links up", `[...document.querySelectorAll('#members td.relay')].length === 3 &&
			[...document.querySelectorAll('#members td.relay')].every(td => td.dataset.links === "2/2")`)
		page.wait(t, "the link matrix: every node to every other, up", fmt.Sprintf(
			`[...document.querySelectorAll('#links td[data-from]')].length === 6 &&
			 [...document.querySelectorAll('#links td[data-from]')].every(td => td.dataset.up === "true") &&
			 document.querySelector('#links td[data-from=%q][data-to=%q]') !== null`, n1.name(), n3.name()))
	})

	step("resume after the stream breaks", func(t *testing.T) {
		last := ids[len(ids)-1]
		proxy.cut(true)
		page.wait(t, "the disconnected banner", fmt.Sprintf(
			`!document.getElementById('banner').hidden && document.getElementById('banner').textContent === "disconnected from %s, retrying…"`, n2.name()))
		for i := range 3 {
			ids = append(ids, c.publish(t, n1, "demo", "", "while away "+strconv.Itoa(i)))
		}
		proxy.cut(false)
		page.wait(t, "the resume note", fmt.Sprintf(
			`[...document.querySelectorAll('#log li[data-kind="resumed"]')].some(li => li.dataset.after === %q && li.textContent === "reconnected, resumed after %[1]s")`, last))
		page.waitIDs(t, ids)
		page.wait(t, "the banner to go", `document.getElementById('banner').hidden`)
		if d := page.eval(t, `window.rumorConsole.subscription.duplicates`); d != 0.0 {
			t.Errorf("the server sent %v duplicates, want 0", d)
		}
	})

	step("screenshot", func(t *testing.T) {
		page.wait(t, "channel demo with the page's subscription", `document.querySelector('#channels tr[data-channel="demo"] td[data-subscribers]')?.dataset.subscribers === "1"`)
		page.eval(t, `document.activeElement.blur(), document.getElementById('log').scrollTop = 1e9, window.scrollTo(0, 0)`)
		page.wait(t, "the arrival highlights to fade", `document.getAnimations().length === 0`)
		png := page.screenshot(t)
		root := moduleRoot(t)
		writeFile(t, filepath.Join(root, "artifacts", "ui.png"), png)
		if *updateDocs {
			writeFile(t, filepath.Join(root, "docs", "ui.png"), png)
		}
	})

	step("markup in data is text", func(t *testing.T) {
		const payload = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold</b>` + "\n" + `</pre><h1 id="injected">x</h1>&amp;`
		id := c.publish(t, n1, "demo", "", payload)
		ids = append(ids, id)
		page.waitIDs(t, ids)
		if ev := page.event(t, id); ev.Data != payload {
			t.Errorf("event %s shows %q, want the payload as text %q", id, ev.Data, payload)
		}
		created := page.eval(t, `document.querySelectorAll('img, script:not([src]), b, #injected').length + (window.__pwned ? 100 : 0)`)
		if created != 0.0 {
			t.Errorf("the payload created elements or ran (%v), want text only", created)
		}
	})

	step("large multi-line payload", func(t *testing.T) {
		var sb strings.Builder
		for i := range 4000 {
			fmt.Fprintf(&sb, "line %04d: %s\n", i, strings.Repeat("x", 40))
		}
		payload := strings.TrimSuffix(sb.String(), "\n")
		id := c.publish(t, n1, "demo", "", payload)
		ids = append(ids, id)
		page.waitIDs(t, ids)
		if ev := page.event(t, id); ev.Data != payload || !ev.Long {
			t.Errorf("event %s shows %d bytes (long %v), want all %d, collapsed", id, len(ev.Data), ev.Long, len(payload))
		}
	})

	step("a node leaves", func(t *testing.T) {
		c.stop(t, n3)
		page.wait(t, "node 3 gone", fmt.Sprintf(
			`["left", "dead"].includes(document.querySelector('#members tr[data-member=%q]')?.dataset.state)`, n3.name()))
		page.wait(t, "two alive members", `document.querySelectorAll('#members tr[data-state="alive"]').length === 2`)
	})

	step("phone width", func(t *testing.T) {
		page.do(t, "emulate a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
		page.wait(t, "no horizontal scrolling", `document.documentElement.scrollWidth <= window.innerWidth`)
		writeFile(t, filepath.Join(moduleRoot(t), "artifacts", "ui-phone.png"), page.screenshot(t))
	})

	b.checkExceptions(t)
}

// TestBrowserAdminUI: with --admin-addr the UI lives on the admin port; it
// shows the cluster, links every member to the UI on its admin port, and
// its console publishes and subscribes there, while the public port
// serves no UI.
func TestBrowserAdminUI(t *testing.T) {
	exe := browserPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), browserBudget)
	defer cancel()
	c := startClusterWith(t, ctx, 2, func(cfg *Config) { cfg.AdminAddr = "127.0.0.1:0" })
	n1, n2 := c.nodes[0], c.nodes[1]
	if code, _ := get(t, n1.URL()+"/"); code != http.StatusNotFound {
		t.Errorf("GET / on the public port = %d, want 404", code)
	}
	b := startBrowser(t, ctx, exe)
	page := b.open(t, n1.AdminURL()+"/")
	page.wait(t, "two alive members", `document.querySelectorAll('#members tr[data-state="alive"]').length === 2`)
	for _, n := range c.nodes {
		page.wait(t, n.name()+"'s link to the UI on its admin port", fmt.Sprintf(
			`document.querySelector('#members tr[data-member=%q] a')?.href === %q`, n.name(), n.AdminURL()+"/"))
	}
	page.do(t, "subscribe", chromedp.SendKeys(chromedp.ID("sub-channels"), "demo\n"))
	page.wait(t, "the subscription to open", `document.querySelector('#log li[data-kind="open"]') !== null`)
	ids := []string{c.publish(t, n2, "demo", "", "from node 2's public port")}
	page.waitIDs(t, ids)
	page.do(t, "publish from the form",
		chromedp.SetValue(chromedp.ID("pub-channel"), "demo"),
		chromedp.SetValue(chromedp.ID("pub-data"), "from the admin page"),
		chromedp.Click(chromedp.ID("pub-button")))
	ids = append(ids, page.publishedID(t))
	page.waitIDs(t, ids)
	c.openStream(t, n2, "/channels/demo")
	page.wait(t, "channel demo with a subscriber on each node", `document.querySelector('#channels tr[data-channel="demo"] td[data-subscribers]')?.dataset.subscribers === "2"`)
	b.checkExceptions(t)
}

// ---- the cluster ----------------------------------------------------------

// testCluster is nodes started by startNode with rumor dev's settings.
type testCluster struct {
	nodes  []*testNode
	client *http.Client
	logs   *output
}

type testNode struct {
	*node
	mu      sync.Mutex
	stopped bool
}

func (n *testNode) name() string { return n.cluster.Self() }

// startCluster starts count nodes on 127.0.0.1 with free ports, each joined
// to the first, and waits until every node sees every other alive.
func startCluster(tb testing.TB, ctx context.Context, count int) *testCluster {
	tb.Helper()
	return startClusterWith(tb, ctx, count, func(*Config) {})
}

// startClusterWith is startCluster with each node's Config adjusted by
// tune after the test's settings.
func startClusterWith(tb testing.TB, ctx context.Context, count int, tune func(*Config)) *testCluster {
	tb.Helper()
	if count > 1 {
		clusterScenario(tb)
	}
	base, err := parseServe(nil, env(nil))
	if err != nil {
		tb.Fatal(err)
	}
	base.ClusterLabel = "rumor-browser-test"
	base.DrainTimeout = 5 * time.Second
	base.AdvertiseAddr = ""
	c := &testCluster{
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}},
		logs:   newOutput(),
	}
	log := newLogger(c.logs, "text", "info")
	tb.Cleanup(func() {
		c.client.CloseIdleConnections()
		for i := len(c.nodes) - 1; i >= 0; i-- {
			c.stop(tb, c.nodes[i])
		}
		// memberlist's last probe can outlive Shutdown by a probe
		// interval; wait for it so that goleak finds a quiet process.
		waitGoroutines(tb, "hashicorp/memberlist.", 5*time.Second)
		if tb.Failed() {
			tb.Logf("node logs:\n%s", c.logs)
		}
	})
	var seed string
	for i := range count {
		cfg := base
		cfg.NodeName = "n" + strconv.Itoa(i+1)
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.GossipAddr = "127.0.0.1:0"
		if seed != "" {
			cfg.Join = []string{seed}
		}
		tune(&cfg)
		n, err := startNode(ctx, cfg, log.With("node", cfg.NodeName), nodeOptions{local: true})
		if err != nil {
			tb.Fatalf("start %s: %v", cfg.NodeName, err)
		}
		c.nodes = append(c.nodes, &testNode{node: n})
		if seed == "" {
			seed = n.cluster.GossipAddr()
		}
	}
	deadline := time.Now().Add(domWait)
	for _, n := range c.nodes {
		for {
			alive := 0
			for _, m := range n.cluster.Members() {
				if m.State == "alive" {
					alive++
				}
			}
			if alive == count && n.cluster.Ready() == nil {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("%s sees %d of %d members alive (ready: %v)", n.name(), alive, count, n.cluster.Ready())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
}

// waitGoroutines waits until no goroutine has pkg in its stack, or for at
// most d; it does not fail the test (goleak reports real leaks).
func waitGoroutines(tb testing.TB, pkg string, d time.Duration) {
	tb.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !bytes.Contains(buf[:goruntime.Stack(buf, true)], []byte(pkg)) {
			return
		}
	}
}

// stop shuts n down as `rumor serve` does on SIGTERM, once.
func (c *testCluster) stop(tb testing.TB, n *testNode) {
	tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return
	}
	n.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.DrainTimeout)
	defer cancel()
	if err := n.shutdown(ctx); err != nil {
		tb.Errorf("shutdown %s: %v", n.name(), err)
	}
}

// publish posts data to channel on n and returns the event's id.
func (c *testCluster) publish(tb testing.TB, n *testNode, channel, typ, data string) string {
	tb.Helper()
	u := n.URL() + "/channels/" + channel
	if typ != "" {
		u += "?event=" + typ
	}
	resp, err := c.client.Post(u, "text/plain", strings.NewReader(data))
	if err != nil {
		tb.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct{ ID, Channel string }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil || out.ID == "" {
		tb.Fatalf("POST %s = %d %s, want 200 and an id", u, resp.StatusCode, body)
	}
	return out.ID
}

// openStream opens an event stream on n that stays open until the node
// stops or the test ends.
func (c *testCluster) openStream(tb testing.TB, n *testNode, path string) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL()+path, nil)
	resp, err := c.client.Do(req)
	if err != nil {
		cancel()
		tb.Fatalf("GET %s: %v", path, err)
	}
	tb.Cleanup(func() {
		cancel()
		resp.Body.Close()
	})
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s = %d, want 200", path, resp.StatusCode)
	}
}

func hostPort(url string) string { return strings.TrimPrefix(url, "http://") }

// ---- the proxy ------------------------------------------------------------

// cutProxy forwards TCP connections to a node and can drop them all at
// once, and refuse new ones for a while, like a network that fails.
type cutProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	refuse bool
	closed bool
}

func newCutProxy(tb testing.TB, target string) *cutProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Go(p.serve)
	tb.Cleanup(p.close)
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(conn) {
			conn.Close()
			continue
		}
		p.wg.Go(func() { p.pipe(conn) })
	}
}

// track registers conn, unless the proxy refuses connections now.
func (p *cutProxy) track(conn net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refuse || p.closed {
		return false
	}
	p.conns[conn] = struct{}{}
	return true
}

func (p *cutProxy) untrack(conn net.Conn) {
	p.mu.Lock()
	delete(p.conns, conn)
	p.mu.Unlock()
	conn.Close()
}

func (p *cutProxy) pipe(client net.Conn) {
	defer p.untrack(client)
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(server) {
		server.Close()
		return
	}
	defer p.untrack(server)
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(server, client)
		server.Close()
	})
	_, _ = io.Copy(client, server)
	client.Close()
	wg.Wait()
}

// cut drops every open connection; while refuse is true, new connections
// are closed as soon as they are accepted.
func (p *cutProxy) cut(refuse bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = refuse
	if refuse {
		for c := range p.conns {
			c.Close()
		}
	}
}

func (p *cutProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// ---- the browser ----------------------------------------------------------

// browserPath finds the browser, or skips the test; with
// RUMOR_REQUIRE_BROWSER=1 a missing browser fails it instead.
func browserPath(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("drives a real browser: not with -short")
	}
	candidates := []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}
	if p := os.Getenv("RUMOR_BROWSER"); p != "" {
		candidates = []string{p}
	}
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("no browser found (tried %s; set RUMOR_BROWSER, or apt-get install chromium)", strings.Join(candidates, ", "))
	if os.Getenv("RUMOR_REQUIRE_BROWSER") == "1" {
		tb.Fatalf("%s, and RUMOR_REQUIRE_BROWSER=1", msg)
	}
	tb.Skip(msg)
	return ""
}

// browser is one headless browser process for a test.
type browser struct {
	ctx  context.Context // has the browser; a child context is a tab
	logs *output

	mu         sync.Mutex
	exceptions []string
}

func startBrowser(tb testing.TB, ctx context.Context, exe string) *browser {
	tb.Helper()
	// The profile lives in the test's temp dir; Chrome's helpers can still
	// write there for a moment after it exits, so it is removed (with
	// retries) before the temp dir's own cleanup checks it is empty.
	profile := filepath.Join(tb.TempDir(), "profile")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox, // CI runs as root, where Chrome's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 960),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("hide-scrollbars", true),
	)
	b := &browser{logs: newOutput()}
	allocCtx, allocCancel := chromedp.NewExecAllocator(ctx, append(opts, chromedp.CombinedOutput(b.logs))...)
	bctx, cancel := chromedp.NewContext(allocCtx,
		chromedp.WithErrorf(func(format string, args ...any) { fmt.Fprintf(b.logs, "chromedp: "+format+"\n", args...) }),
		chromedp.WithLogf(func(string, ...any) {}))
	b.ctx = bctx
	tb.Cleanup(func() {
		_ = chromedp.Cancel(bctx) // closes the browser gracefully
		cancel()
		allocCancel() // waits for the browser process
		for i := 0; ; i++ {
			err := os.RemoveAll(profile)
			if err == nil || i == 50 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if tb.Failed() {
			tb.Logf("browser output:\n%s", b.logs)
		}
	})
	if err := chromedp.Do(bctx); err != nil {
		tb.Fatalf("start %s: %v\n%s", exe, err, b.logs)
	}
	return b
}

// page is one tab.
type page struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// open opens url in a new tab and waits for it to load.
func (b *browser) open(tb testing.TB, url string) *page {
	tb.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithListener(func(ev any) {
		if ev, ok := ev.(*runtime.EventExceptionThrown); ok {
			b.mu.Lock()
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			b.exceptions = append(b.exceptions, fmt.Sprintf("%s at %s:%d", desc, d.URL, d.LineNumber+1))
			b.mu.Unlock()
		}
	}))
	p := &page{ctx: ctx, cancel: cancel}
	tb.Cleanup(cancel)
	// The first run on a context opens its tab and binds the tab's life to
	// the context it is given: that must not be one with a timeout.
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("open a tab: %v", err)
	}
	p.do(tb, "open "+url, chromedp.Navigate(url))
	return p
}

func (p *page) close() { p.cancel() }

// checkExceptions fails the test if a page threw.
func (b *browser) checkExceptions(tb testing.TB) {
	tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.exceptions {
		tb.Errorf("the page threw: %s", e)
	}
}

// do runs actions in the page, bounded by domWait.
func (p *page) do(tb testing.TB, what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, domWait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression and returns its JSON value.
func (p *page) eval(tb testing.TB, expr string) any {
	tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, domWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr))
	if err != nil {
		tb.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// wait polls a JavaScript condition until it holds, for at most domWait.
func (p *page) wait(tb testing.TB, what, cond string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, domWait+time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+cond+")",
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(domWait)))
	if err != nil {
		tb.Fatalf("waiting for %s: %v\npage: %s", what, err, p.state(tb))
	}
}

// state describes the page for a failure message.
func (p *page) state(tb testing.TB) string {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`["banner: " + (document.getElementById('banner').hidden ? "(hidden)" : document.getElementById('banner').textContent),
		  "whereami: " + document.getElementById('whereami').textContent,
		  "members: " + [...document.querySelectorAll('#members tr')].map(r => r.dataset.member + "=" + r.dataset.state + "/" + (r.querySelector('[data-subscribers]')?.dataset.subscribers ?? "?")).join(" "),
		  "channels: " + [...document.querySelectorAll('#channels tr')].map(r => r.textContent).join(" | "),
		  "log: " + [...document.querySelectorAll('#log li')].map(li => li.dataset.id || li.textContent).join("\n  ").slice(-4000),
		  "publish: " + document.getElementById('pub-result').textContent].join("\n")`))
	if err != nil {
		return "(unavailable: " + err.Error() + ")"
	}
	return s
}

// ids returns the ids of the events in the console, in order.
func (p *page) ids(tb testing.TB) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, domWait)
	defer cancel()
	ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#log li.event')].map(li => li.dataset.id)`))
	if err != nil {
		tb.Fatalf("read the console: %v", err)
	}
	return ids
}

// waitIDs waits until the console shows the last of want, then checks that
// it shows exactly want, in order: no gap, no duplicate.
func (p *page) waitIDs(tb testing.TB, want []string) {
	tb.Helper()
	p.wait(tb, "event "+want[len(want)-1], fmt.Sprintf(`document.querySelector('#log li.event[data-id=%q]') !== null`, want[len(want)-1]))
	if got := p.ids(tb); !slices.Equal(got, want) {
		tb.Fatalf("console shows events\n  %q\nwant\n  %q", got, want)
	}
}

// shownEvent is an event as the console shows it.
type shownEvent struct {
	ID, Type, Data, Time string
	Long                 bool
}

func (p *page) event(tb testing.TB, id string) shownEvent {
	tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, domWait)
	defer cancel()
	ev, err := chromedp.Run(ctx, chromedp.Evaluate[shownEvent](fmt.Sprintf(`(() => {
		const li = document.querySelector('#log li.event[data-id=%q]');
		return li && {
			ID: li.querySelector('.ev-id').textContent,
			Type: li.querySelector('.ev-type').textContent,
			Data: li.querySelector('.ev-data').textContent,
			Time: li.querySelector('.ev-time').textContent,
			Long: li.querySelector('.ev-data').classList.contains('long'),
		};
	})()`, id)))
	if err != nil {
		tb.Fatalf("read event %s: %v", id, err)
	}
	if ev.ID != id {
		tb.Fatalf("event %s shows id %q", id, ev.ID)
	}
	return ev
}

// publishedID waits for the publish form's answer and returns the id.
func (p *page) publishedID(tb testing.TB) string {
	tb.Helper()
	p.wait(tb, "the publish answer", `document.getElementById('pub-result').dataset.id`)
	v, _ := p.eval(tb, `document.getElementById('pub-result').dataset.id`).(string)
	return v
}

func (p *page) screenshot(tb testing.TB) []byte {
	tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, domWait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.Fatalf("screenshot: %v", err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		tb.Fatalf("screenshot is not a PNG")
	}
	return png
}

// moduleRoot is the directory of go.mod, where artifacts/ and docs/ are.
func moduleRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal(errors.New("no go.mod above the test's directory"))
		}
		dir = parent
	}
}

func writeFile(tb testing.TB, path string, b []byte) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("wrote %s", path)
}
