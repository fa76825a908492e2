/*
 * The rumor UI: cluster view (live over GET /cluster/events), channels
 * (GET /cluster/channels) and a console built on rumor.js.
 *
 * Everything that came from the network reaches the page as text
 * (textContent, attribute values): never as markup.
 */
(function () {
  "use strict";

  var MAX_LOG = 1000;          // log entries kept; the oldest go first
  var LONG_DATA = 2000;        // data longer than this (or LONG_LINES lines) starts collapsed
  var LONG_LINES = 16;
  var CHANNELS_EVERY = 3000;   // ms between GET /cluster/channels while the page is visible

  function $(id) { return document.getElementById(id); }

  // el builds an element: attrs are set as attributes (or as properties for
  // on* handlers and className), children are nodes or text.
  function el(tag, attrs) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) {
      var v = attrs[k];
      if (v == null || v === false) continue;
      if (k === "className") node.className = v;
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c == null || c === false) continue;
      node.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function words(s) {
    return s.split(/[\s,]+/).filter(Boolean);
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  function clock(d) {
    function p(n, w) { return String(n).padStart(w, "0"); }
    return p(d.getHours(), 2) + ":" + p(d.getMinutes(), 2) + ":" + p(d.getSeconds(), 2) + "." + p(d.getMilliseconds(), 3);
  }

  function bytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(n < 10240 ? 1 : 0) + " KiB";
    return (n / 1024 / 1024).toFixed(1) + " MiB";
  }

  function ago(iso) {
    if (!iso) return "never";
    var s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 2) return "just now";
    if (s < 90) return Math.round(s) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 129600) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }

  // ---- connection state and the banner -----------------------------------

  var node = { name: "", http: location.host };
  var down = { cluster: false, console: false };

  function showBanner() {
    var b = $("banner");
    var broken = down.cluster || down.console;
    if (broken) b.textContent = "disconnected from " + (node.name || node.http) + ", retrying…";
    b.hidden = !broken;
    document.body.classList.toggle("offline", broken);
    $("cluster").classList.toggle("stale", down.cluster);
    $("channels-card").classList.toggle("stale", down.cluster);
  }

  function setDown(what, isDown) {
    if (down[what] === isDown) return;
    down[what] = isDown;
    showBanner();
  }

  // ---- cluster view -------------------------------------------------------

  var members = [];

  function renderWhereami() {
    var w = $("whereami");
    w.textContent = "";
    if (!node.name) {
      w.textContent = "connecting to " + node.http + "…";
      return;
    }
    w.append("you are on ", el("strong", { id: "self-name" }, node.name), " (" + node.http + ")");
  }

  function renderMembers(snap) {
    members = snap.members || [];
    node.name = snap.self || node.name;
    var me = members.find(function (m) { return m.name === snap.self; });
    if (me && me.http) node.http = me.http.charAt(0) === ":" ? location.hostname + me.http : me.http;
    renderWhereami();
    showBanner();

    var body = $("members");
    body.textContent = "";
    var alive = 0, subs = 0;
    members.forEach(function (m) {
      var self = m.name === snap.self;
      if (m.state === "alive") alive++;
      if (typeof m.subscribers === "number") subs += m.subscribers;
      var count = typeof m.subscribers === "number"
        ? String(m.subscribers)
        : el("span", { className: "unknown", title: m.error || "not known while the node is " + m.state }, "—");
      // A live member's address opens the UI on that node: on its admin
      // listener when it has one, where the UI lives then.
      var ui = m.admin || m.http || "";
      var addr = ui.charAt(0) === ":" ? location.hostname + ui : ui;
      var http = !addr ? el("span", { className: "sub-line mono" }, "no HTTP address")
        : m.state === "alive" || m.state === "suspect"
          ? el("a", { href: location.protocol + "//" + addr + "/", className: "sub-line mono", title: "Open the UI on " + m.name }, m.http || ui)
          : el("span", { className: "sub-line mono" }, m.http || ui);
      body.appendChild(el("tr", { className: self ? "self" : "", "data-member": m.name, "data-state": m.state },
        el("td", null, el("span", { className: "node-name" }, m.name), self ? el("span", { className: "tag" }, "this node") : null, http),
        el("td", null, el("span", { className: "state state-" + m.state }, m.state)),
        el("td", { className: "num", "data-subscribers": typeof m.subscribers === "number" ? m.subscribers : null }, count),
        relayCell(m)));
      if (m.stats) latest[m.name] = m.stats;
      else delete latest[m.name];
    });
    Object.keys(latest).forEach(function (n) {
      if (!members.some(function (m) { return m.name === n; })) delete latest[n];
    });
    if (!members.length) body.appendChild(el("tr", { className: "empty" }, el("td", { colspan: 4 }, "No members.")));
    renderLinks();
    $("cluster-summary").textContent = alive + " of " + members.length + " alive · " + plural(subs, "subscriber");
  }

  // relayCell says how a member's relay links are: live of expected, and
  // events queued or sent and not yet acknowledged.
  function relayCell(m) {
    var r = m.stats && m.stats.relay;
    if (!r) return el("td", { className: "num relay" }, el("span", { className: "unknown" }, "—"));
    var bad = r.connected < r.peers;
    return el("td", {
      className: "num relay" + (bad ? " bad" : ""), "data-links": r.connected + "/" + r.peers,
      title: r.connected + " of " + r.peers + " relay links up, " + r.queued + " queued, " + r.unacked + " unacknowledged" +
        (r.ackLatency ? ", ack p99 " + fmtMs(quantile(r.ackLatency, 0.99)) : "")
    }, r.connected + "/" + r.peers + " links", el("span", { className: "sub-line" }, r.queued + " queued · " + r.unacked + " unacked"));
  }

  // renderLinks draws the relay link matrix from the members' stats: row
  // node → column node, the events waiting for the column's
  // acknowledgement and how old the oldest is.
  function renderLinks() {
    var nodes = members.filter(function (m) { return m.stats && m.stats.relay && m.stats.relay.links; });
    $("links-wrap").hidden = nodes.length < 2;
    if (nodes.length < 2) return;
    var names = members.filter(function (m) { return m.state === "alive" || m.state === "suspect"; }).map(function (m) { return m.name; });
    var head = $("links-head"), body = $("links");
    head.textContent = "";
    body.textContent = "";
    head.appendChild(el("tr", null, el("th", { scope: "col" }, "from ↓ to →")));
    var hr = head.firstChild;
    names.forEach(function (n) { hr.appendChild(el("th", { scope: "col" }, n)); });
    nodes.forEach(function (m) {
      var byPeer = {};
      m.stats.relay.links.forEach(function (l) { byPeer[l.peer] = l; });
      var tr = el("tr", null, el("th", { scope: "row" }, m.name));
      names.forEach(function (to) {
        if (to === m.name) {
          tr.appendChild(el("td", { className: "self" }, "·"));
          return;
        }
        var l = byPeer[to];
        if (!l) {
          tr.appendChild(el("td", { className: "down", "data-from": m.name, "data-to": to, "data-up": "false", title: "no relay link" }, "no link"));
          return;
        }
        var waiting = l.queued + l.unacked;
        var cls = !l.up ? "down" : l.oldest > 1 ? "slow" : "ok";
        var text = !l.up ? "down" : waiting === 0 ? "0" : waiting + " · " + fmtMs(l.oldest);
        tr.appendChild(el("td", {
          className: cls, "data-from": m.name, "data-to": to, "data-up": String(l.up), "data-waiting": waiting,
          title: (l.up ? "up" : "down") + ", " + l.queued + " queued, " + l.unacked + " unacknowledged" +
            (l.unacked ? ", oldest " + fmtMs(l.oldest) : "") + (l.lastAck ? ", last acknowledgement " + fmtMs(l.lastAck) + " ago" : "")
        }, text));
      });
      body.appendChild(tr);
    });
  }

  // watchCluster follows GET /cluster/events. EventSource reconnects by
  // itself after a network error; after an answer it gives up on (a
  // proxy's 502) we open a new one.
  function watchCluster(backoff) {
    var es = new EventSource("/cluster/events");
    es.addEventListener("cluster", function (e) {
      try {
        renderMembers(JSON.parse(e.data));
      } catch (err) {
        console.error("rumor: bad cluster event", err);
      }
    });
    es.onopen = function () {
      backoff = 0;
      if (down.cluster) refreshChannels(); // what was shown is stale
      setDown("cluster", false);
    };
    es.onerror = function () {
      setDown("cluster", true);
      if (es.readyState === 2) {
        var delay = Math.min(30000, 1000 * Math.pow(2, backoff));
        setTimeout(function () { watchCluster(backoff + 1); }, delay * (0.5 + Math.random()));
      }
    };
  }

  // ---- activity: live charts ----------------------------------------------
  //
  // Every "cluster" event carries each node's cumulative counters (stats).
  // Once a second the page turns the latest ones into rates and windowed
  // percentiles and redraws four small SVG charts over the last WINDOW.

  var WINDOW = 300;            // seconds shown at most
  var MIN_SPAN = 30;           // seconds shown at least, while the page is younger
  var LAT_WINDOW = 10;         // seconds of deliveries behind each latency point
  var latest = {};             // node name → its last stats
  var samples = [];            // {t, nodes: {name: published}, refused: {reason: n}, latency: buckets}
  var channelRates = {};       // channel → [{t, v}] from /cluster/channels

  function quantile(b, q) {
    if (!b || !b.count) return null;
    var want = q * b.count;
    for (var i = 0; i < b.counts.length; i++) {
      if (b.counts[i] >= want) {
        var lo = i ? b.bounds[i - 1] : 0, below = i ? b.counts[i - 1] : 0;
        var inBucket = b.counts[i] - below;
        return lo + (b.bounds[i] - lo) * (inBucket ? (want - below) / inBucket : 1);
      }
    }
    return b.bounds[b.bounds.length - 1];
  }

  function fmtMs(sec) {
    if (sec == null) return "–";
    var ms = sec * 1000;
    return (ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)) + " ms";
  }

  function fmtRate(v) {
    return v < 10 ? v.toFixed(v < 0.05 ? 0 : 1) : Math.round(v).toString();
  }

  // addBuckets sums cumulative histograms with the same bounds.
  function addBuckets(a, b) {
    if (!b) return a;
    if (!a) return { bounds: b.bounds, counts: b.counts.slice(), count: b.count };
    for (var i = 0; i < a.counts.length && i < b.counts.length; i++) a.counts[i] += b.counts[i];
    a.count += b.count;
    return a;
  }

  function subBuckets(a, b) {
    if (!a || !b || a.counts.length !== b.counts.length) return a;
    return { bounds: a.bounds, counts: a.counts.map(function (c, i) { return Math.max(0, c - b.counts[i]); }), count: Math.max(0, a.count - b.count) };
  }

  function sample() {
    var now = Date.now() / 1000;
    var cur = { t: now, nodes: {}, refused: {}, latency: null };
    Object.keys(latest).forEach(function (name) {
      var st = latest[name];
      cur.nodes[name] = st.published;
      Object.keys(st.refused || {}).forEach(function (r) { cur.refused[r] = (cur.refused[r] || 0) + st.refused[r]; });
      cur.latency = addBuckets(cur.latency, st.latency);
    });
    samples.push(cur);
    while (samples.length && samples[0].t < now - WINDOW - LAT_WINDOW - 2) samples.shift();
    drawActivity(now);
  }

  // rates returns, per key of field, the points {t, v} of its rate per
  // second between successive samples (a restarted node's counter going
  // down counts as 0).
  function rates(field) {
    var out = {};
    for (var i = 1; i < samples.length; i++) {
      var a = samples[i - 1], b = samples[i], dt = b.t - a.t;
      if (dt <= 0) continue;
      Object.keys(b[field]).forEach(function (k) {
        if (!(k in a[field])) return;
        (out[k] = out[k] || []).push({ t: b.t, v: Math.max(0, b[field][k] - a[field][k]) / dt });
      });
    }
    return out;
  }

  function latencyLines() {
    var lines = { p50: [], p90: [], p99: [] };
    var j = 0;
    for (var i = 0; i < samples.length; i++) {
      var b = samples[i];
      while (j < i && samples[j].t < b.t - LAT_WINDOW) j++;
      if (j === i) continue;
      var d = subBuckets(b.latency, samples[j].latency);
      if (!d || !d.count) continue;
      lines.p50.push({ t: b.t, v: quantile(d, 0.5) * 1000 });
      lines.p90.push({ t: b.t, v: quantile(d, 0.9) * 1000 });
      lines.p99.push({ t: b.t, v: quantile(d, 0.99) * 1000 });
    }
    return lines;
  }

  var SVGNS = "http://www.w3.org/2000/svg";

  function svgEl(tag, attrs) {
    var n = document.createElementNS(SVGNS, tag);
    for (var k in attrs) n.setAttribute(k, attrs[k]);
    return n;
  }

  // draw renders series ({name: [{t, v}]}) into the figure, newest at the
  // right edge, with the largest value as the scale; the legend lists the
  // series with their last value. keep limits the series to the largest.
  function draw(id, series, now, span, fmt, keep) {
    var fig = $(id), svg = fig.querySelector("svg"), legend = fig.querySelector(".legend");
    var names = Object.keys(series).filter(function (n) { return series[n].length; });
    var last = function (n) { return series[n][series[n].length - 1].v; };
    names.sort(function (a, b) { return keep ? last(b) - last(a) || (a < b ? -1 : 1) : (a < b ? -1 : 1); });
    if (keep) names = names.slice(0, keep);
    var max = 0;
    names.forEach(function (n) { series[n].forEach(function (p) { if (p.t >= now - span) max = Math.max(max, p.v); }); });
    var top = max > 0 ? max * 1.15 : 1;
    svg.textContent = "";
    svg.appendChild(svgEl("line", { x1: 0, x2: 300, y1: 35, y2: 35, "class": "grid-line" }));
    names.forEach(function (n, i) {
      var pts = series[n].filter(function (p) { return p.t >= now - span; }).map(function (p) {
        return ((p.t - (now - span)) / span * 300).toFixed(1) + "," + (70 - p.v / top * 68 - 1).toFixed(1);
      });
      if (pts.length === 1) pts.push(pts[0]);
      svg.appendChild(svgEl("polyline", { points: pts.join(" "), "class": "s" + (i % 6), "data-series": n }));
    });
    var label = svgEl("text", { x: 2, y: 9 });
    label.textContent = "max " + fmt(max);
    svg.appendChild(label);
    svg.setAttribute("data-max", String(max));
    legend.textContent = "";
    names.forEach(function (n, i) {
      legend.appendChild(el("li", { className: "s" + (i % 6), "data-series": n },
        el("span", null, n), el("span", { className: "value" }, fmt(last(n)))));
    });
    if (!names.length) legend.appendChild(el("li", { className: "empty" }, "no data yet"));
  }

  function drawActivity(now) {
    // The charts span the page's life, from MIN_SPAN up to WINDOW.
    var span = Math.min(WINDOW, Math.max(MIN_SPAN, samples.length ? now - samples[0].t : 0));
    var perNode = rates("nodes");
    draw("chart-nodes", perNode, now, span, fmtRate);
    draw("chart-channels", channelRates, now, span, fmtRate, 6);
    draw("chart-latency", latencyLines(), now, span, function (v) { return v == null ? "–" : fmtMs(v / 1000); });
    var refused = rates("refused");
    draw("chart-refused", refused, now, span, fmtRate);
    var total = 0;
    Object.keys(perNode).forEach(function (n) { var p = perNode[n]; total += p[p.length - 1].v; });
    $("activity-summary").textContent = "last " + (span < 90 ? Math.round(span) + " s" : Math.round(span / 60) + " min") + ", live · " + fmtRate(total) + " events/s now";
  }

  function recordChannelRates(view) {
    var now = Date.now() / 1000;
    (view.channels || []).forEach(function (c) {
      if (/^rumor(\.|$)/.test(c.name)) return; // rumor's own
      var pts = channelRates[c.name] = channelRates[c.name] || [];
      pts.push({ t: now, v: c.rate || 0 });
      while (pts.length && pts[0].t < now - WINDOW) pts.shift();
    });
    Object.keys(channelRates).forEach(function (n) {
      var pts = channelRates[n];
      if (!pts.length || pts[pts.length - 1].t < now - WINDOW) delete channelRates[n];
    });
  }

  // ---- channels -----------------------------------------------------------

  var channelsBusy = false;

  // presenceCell shows who is here: streams that asked for the channel or
  // pattern itself, cluster-wide (GET /presence), and their subjects.
  function presenceCell(p) {
    var n = p ? p.subscribers : 0;
    var subjects = (p && p.subjects) || [];
    var line = subjects.slice(0, 3).join(", ") + (subjects.length > 3 ? " +" + (subjects.length - 3) : "");
    return el("td", { className: "num", "data-present": n, title: subjects.join(", ") }, String(n),
      line ? el("span", { className: "sub-line" }, line) : null);
  }

  function renderChannels(view, present) {
    var body = $("channels");
    body.textContent = "";
    // rumor's own channels (rumor.census, rumor.presence.*) are not shown.
    var chans = (view.channels || []).filter(function (c) { return !/^rumor(\.|$)/.test(c.name); });
    var byKey = {};
    ((present && present.channels) || []).forEach(function (p) { byKey[p.channel] = p; });
    chans.forEach(function (c) {
      // Where the subscribers are: only the nodes that have some.
      var where = Object.keys(c.nodes || {}).sort().filter(function (n) { return c.nodes[n] > 0; })
        .map(function (n) { return n + ": " + c.nodes[n]; }).join(", ");
      body.appendChild(el("tr", { "data-channel": c.name },
        el("td", null,
          el("button", {
            type: "button", className: "linkish", title: "Use " + c.name + " in the console",
            onclick: function () { useChannel(c.name); }
          }, c.name),
          el("span", { className: "sub-line" }, where || "no subscribers")),
        el("td", { className: "num", "data-subscribers": c.subscribers }, String(c.subscribers)),
        presenceCell(byKey[c.name]),
        el("td", { className: "num" }, (c.rate || 0) < 0.05 ? "0/s" : c.rate.toFixed(c.rate < 10 ? 1 : 0) + "/s"),
        el("td", { className: "num", title: c.published + " stored since the node started" }, plural(c.events, "event"), el("span", { className: "sub-line" }, bytes(c.bytes))),
        el("td", { className: "narrow-hide", title: c.lastPublished || "" }, ago(c.lastPublished))));
    });
    // Patterns have presence but are not channels: a row each.
    Object.keys(byKey).sort().forEach(function (k) {
      if (chans.some(function (c) { return c.name === k; })) return;
      body.appendChild(el("tr", { "data-channel": k, className: "pattern" },
        el("td", null, k, el("span", { className: "sub-line" }, "pattern")),
        el("td", { className: "num" }, "–"), presenceCell(byKey[k]),
        el("td", { className: "num" }, "–"), el("td", { className: "num" }, "–"), el("td", { className: "narrow-hide" }, "")));
    });
    if (!body.children.length) {
      body.appendChild(el("tr", { className: "empty" }, el("td", { colspan: 6 }, "No active channels yet: subscribe or publish in the console.")));
    }
    var missing = (view.nodes || []).filter(function (n) { return !n.ok; });
    $("channels-summary").textContent = chans.length + " active" +
      (missing.length ? " · no answer from " + missing.map(function (n) { return n.name + " (" + (n.error || "?") + ")"; }).join(", ") : "");
  }

  function refreshChannels() {
    if (channelsBusy || document.hidden) return;
    channelsBusy = true;
    var json = function (r) {
      if (!r.ok) throw new Error(r.status + " " + r.statusText);
      return r.json();
    };
    // Presence is optional: without it (or without a grant) the column shows 0.
    var present = fetch("/presence", { headers: { Accept: "application/json" } }).then(json).catch(function () { return null; });
    Promise.all([fetch("/cluster/channels", { headers: { Accept: "application/json" } }).then(json), present])
      .then(function (r) { recordChannelRates(r[0]); renderChannels(r[0], r[1]); }, function (err) {
        $("channels-summary").textContent = "unavailable: " + err.message;
      })
      .then(function () { channelsBusy = false; });
  }

  // ---- console: subscribe -------------------------------------------------

  var sub = null;
  var log = $("log");

  function stickToBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }

  function append(item) {
    var stick = stickToBottom();
    log.appendChild(item);
    while (log.childElementCount > MAX_LOG) log.removeChild(log.firstElementChild);
    if (stick) log.scrollTop = log.scrollHeight;
  }

  function note(text, kind, attrs) {
    var a = attrs || {};
    a.className = "note" + (kind ? " " + kind : "");
    append(el("li", a, text));
  }

  function showEvent(ev) {
    var data = ev.data;
    var long = data.length > LONG_DATA || data.split("\n").length > LONG_LINES;
    var pre = el("pre", { className: "ev-data" + (long ? " long" : ""), tabindex: long ? 0 : null });
    pre.textContent = data; // text, never markup
    var toggle = long ? el("button", {
      type: "button", className: "quiet toggle", "aria-expanded": "false",
      onclick: function () {
        var open = pre.classList.toggle("open");
        toggle.setAttribute("aria-expanded", String(open));
        toggle.textContent = open ? "Collapse" : "Expand";
      }
    }, "Expand") : null;
    append(el("li", { className: "event fresh", "data-id": ev.id || "" },
      el("div", { className: "meta" },
        el("time", { className: "ev-time", datetime: ev.time.toISOString() }, clock(ev.time)),
        el("code", { className: "ev-id" }, ev.id || "(no id)"),
        el("span", { className: "ev-channel", title: "channel" }, ev.channel || ""),
        el("span", { className: "ev-type" }, ev.type),
        el("span", { className: "ev-size" }, bytes(new Blob([data]).size))),
      pre, toggle));
  }

  function setSubscribed(on) {
    $("sub-button").textContent = on ? "Unsubscribe" : "Subscribe";
    $("sub-channels").disabled = on;
    $("sub-types").disabled = on;
    if (!on) $("sub-status").textContent = "not subscribed";
  }

  function unsubscribe() {
    if (!sub) return;
    sub.close();
    note("unsubscribed from " + sub.channels.join(" "));
    sub = null;
    setSubscribed(false);
    setDown("console", false);
  }

  function subscribe(channels, types) {
    unsubscribe();
    var lost = false;
    sub = rumor.subscribe(channels, {
      types: types,
      onOpen: function (info) {
        setDown("console", false);
        lost = false;
        $("sub-status").textContent = "subscribed to " + channels.join(" ");
        if (!info.reconnected) {
          note("subscribed to " + channels.join(" ") + " on " + (node.name || node.http) + ", types " + sub.types.join(" "), "", { "data-kind": "open" });
        } else if (info.lastEventId) {
          // The id line is the event's id, then resume information after "~".
          var after = info.lastEventId.split("~")[0];
          note("reconnected, resumed after " + after, "good", { "data-kind": "resumed", "data-after": after });
        } else {
          note("reconnected; no event had arrived, so there was nothing to resume after", "good", { "data-kind": "resumed" });
        }
      },
      onError: function (info) {
        if (info.state === "closed" && info.retryIn == null) {
          // Refused for good (a missing or bad token, a forbidden or bad
          // pattern): say why and stop.
          note("refused by " + (node.name || node.http) + ": " + (info.message || "HTTP " + info.status) + " (" + info.status + ")", "warn", { "data-kind": "refused" });
          unsubscribe();
          return;
        }
        setDown("console", true);
        $("sub-status").textContent = "reconnecting…";
        if (!lost) {
          lost = true;
          note("connection lost, retrying…", "warn", { "data-kind": "lost" });
        }
      },
      onReset: function (info) {
        note("the node no longer holds the events after " + ((info.lastEventId || "").split("~")[0] || "the requested id") +
          ": some may have been missed; reload any state built from them", "warn", { "data-kind": "reset" });
      },
      onEvent: showEvent
    });
    setSubscribed(true);
    $("sub-status").textContent = "connecting…";
  }

  function useChannel(name) {
    if (sub) unsubscribe();
    $("sub-channels").value = name;
    $("pub-channel").value = name;
    $("sub-channels").focus();
  }

  $("subscribe-form").addEventListener("submit", function (e) {
    e.preventDefault();
    if (sub) {
      unsubscribe();
      $("sub-channels").focus();
      return;
    }
    var channels = words($("sub-channels").value);
    var types = words($("sub-types").value);
    if (!channels.length) return;
    if (!$("pub-channel").value && channels.length === 1 && !/[*>]/.test(channels[0])) $("pub-channel").value = channels[0];
    subscribe(channels, types.length ? types : ["message"]);
  });

  $("clear-log").addEventListener("click", function () { log.textContent = ""; });

  // ---- console: publish ---------------------------------------------------

  var publishing = false;

  function publish() {
    if (publishing) return;
    var channel = $("pub-channel").value.trim();
    var type = $("pub-type").value.trim();
    var data = $("pub-data").value;
    var out = $("pub-result");
    if (!channel) {
      $("pub-channel").focus();
      return;
    }
    // A browser sees only the event types it listens for: listen for this
    // one before it can arrive.
    var listenType = type || "message";
    if (sub && sub.types.indexOf(listenType) < 0) {
      sub.listen(listenType);
      $("sub-types").value = sub.types.join(" ");
      note("now also listening for type " + listenType);
    }
    publishing = true;
    $("pub-button").disabled = true;
    out.className = "";
    out.textContent = "publishing…";
    rumor.publish(channel, data, { type: type }).then(function (res) {
      out.textContent = "published " + res.id + " to " + res.channel;
      out.setAttribute("data-id", res.id);
    }, function (err) {
      out.className = "error";
      out.textContent = "not published: " + err.message;
      out.removeAttribute("data-id");
    }).then(function () {
      publishing = false;
      $("pub-button").disabled = false;
      refreshChannels();
    });
  }

  // A type typed for publishing is one the page should show: add it to the
  // types to subscribe to (and listen for it at once when subscribed), so
  // that it never stays invisible behind the default "message".
  $("pub-type").addEventListener("change", function () {
    var t = $("pub-type").value.trim();
    if (!t) return;
    if (sub) {
      if (sub.types.indexOf(t) < 0) {
        sub.listen(t);
        note("now also listening for type " + t);
      }
      $("sub-types").value = sub.types.join(" ");
    } else if (words($("sub-types").value).indexOf(t) < 0) {
      $("sub-types").value = words($("sub-types").value).concat([t]).join(" ");
    }
  });

  $("publish-form").addEventListener("submit", function (e) {
    e.preventDefault();
    publish();
  });
  $("pub-data").addEventListener("keydown", function (e) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      publish();
    }
  });

  // ---- start --------------------------------------------------------------

  renderWhereami();
  watchCluster(0);
  setInterval(sample, 1000);
  refreshChannels();
  setInterval(refreshChannels, CHANNELS_EVERY);
  document.addEventListener("visibilitychange", refreshChannels);
  // For tests and the curious: the console's subscription.
  window.rumorConsole = { get subscription() { return sub; } };
})();
