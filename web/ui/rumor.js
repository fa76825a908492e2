/*
 * rumor.js: a tiny, dependency-free browser client for rumor.
 *
 *   const sub = rumor.subscribe(["orders.>", "chat"], {
 *     types: ["message", "order.created"],
 *     onEvent(ev) { console.log(ev.id, ev.channel, ev.type, ev.data); },
 *     onReset(info) { reloadState(); },
 *     refreshToken(info) { return fetch("/session", {method: "POST"}); },
 *   });
 *   ...
 *   sub.close();
 *
 * One EventSource carries every channel and pattern (GET /events?channel=…),
 * with ?envelope=json so that each event says which channel it came from.
 * The browser resumes after a dropped connection by sending Last-Event-ID;
 * when the server answers in a way EventSource gives up on (a proxy's 502,
 * say), this helper opens a new one with ?lastEventId= after a jittered
 * backoff. Events are deduplicated by id. When the stream's token expires
 * (event rumor.end, or a 401 with reason "expired" on a reconnect), it asks
 * refreshToken for a fresh one and resumes after the last event it
 * delivered. Documented in docs/UI.md.
 */
(function (global) {
  "use strict";

  var RESET = "rumor.reset";
  var END = "rumor.end";
  var MAX_REFRESHES = 2; // token refreshes in a row without the stream opening

  function noop() {}

  // Calls a user callback; its exception must not break the stream.
  function safely(fn, arg) {
    try {
      fn(arg);
    } catch (err) {
      setTimeout(function () { throw err; });
    }
  }

  function list(v) {
    if (v == null) return [];
    return (Array.isArray(v) ? v : [v]).map(String).filter(Boolean);
  }

  function base(url) {
    return (url || "").replace(/\/+$/, "");
  }

  /**
   * Subscription is one EventSource for a set of channels and patterns.
   * Create it with rumor.subscribe.
   */
  function Subscription(channels, opts) {
    opts = opts || {};
    this.channels = list(channels);
    if (this.channels.length === 0) throw new TypeError("rumor.subscribe: no channel");
    this.url = base(opts.url);
    this.types = [];
    this.lastEventId = opts.lastEventId || null;
    this.onEvent = opts.onEvent || noop;
    this.onOpen = opts.onOpen || noop;
    this.onError = opts.onError || noop;
    this.onReset = opts.onReset || noop;
    this.refreshToken = opts.refreshToken || null;
    this._token = opts.token ? String(opts.token) : null;
    this._refreshes = 0; // since the stream last opened
    this._withCredentials = !!opts.withCredentials;
    this._envelope = opts.envelope !== false;
    this._last = opts.last > 0 ? Math.floor(opts.last) : 0;
    this._remember = opts.dedupe == null ? 1000 : Math.max(0, opts.dedupe | 0);
    this._seen = new Set();
    this._order = [];
    this._es = null;
    this._timer = 0;
    this._backoff = 0;
    this._opened = false; // was open at least once
    this._closed = false;
    /** Events dropped because their id was seen already. */
    this.duplicates = 0;
    this._onMessage = this._onMessage.bind(this);
    this._onReset = this._onReset.bind(this);
    this._onEnd = this._onEnd.bind(this);
    var types = list(opts.types);
    (types.length ? types : ["message"]).forEach(this.listen, this);
    this._connect();
  }

  /** "connecting", "open" or "closed". */
  Object.defineProperty(Subscription.prototype, "readyState", {
    get: function () {
      if (this._closed) return "closed";
      if (this._es && this._es.readyState === 1) return "open";
      return "connecting";
    }
  });

  /** Dispatch events of one more type from now on. */
  Subscription.prototype.listen = function (type) {
    type = String(type);
    if (!type || type === RESET || type === END || this.types.indexOf(type) >= 0) return;
    this.types.push(type);
    if (this._es) this._es.addEventListener(type, this._onMessage);
  };

  /** Close the stream for good. Safe to call more than once. */
  Subscription.prototype.close = function () {
    this._closed = true;
    clearTimeout(this._timer);
    if (this._es) this._es.close();
  };

  Subscription.prototype._connect = function () {
    var q = this.channels.map(function (c) { return "channel=" + encodeURIComponent(c); });
    // A new EventSource cannot set Last-Event-ID; rumor takes the query
    // parameter instead. The browser's own reconnects send the header.
    if (this.lastEventId) q.push("lastEventId=" + encodeURIComponent(this.lastEventId));
    else if (this._last) q.push("last=" + this._last); // the node ignores it on a resume
    // Each event's data comes wrapped as {"id","channel","type","data"}:
    // onEvent gets the channel and the data as published.
    if (this._envelope) q.push("envelope=json");
    // A token in the URL needs --auth-query-token; a cookie travels by itself.
    if (this._token) q.push("token=" + encodeURIComponent(this._token));
    var es = new EventSource(this.url + "/events?" + q.join("&"), { withCredentials: this._withCredentials });
    this._es = es;
    var self = this;
    this.types.forEach(function (t) { es.addEventListener(t, self._onMessage); });
    es.addEventListener(RESET, this._onReset);
    es.addEventListener(END, this._onEnd);
    es.onopen = function () {
      if (self._es !== es || self._closed) return;
      var info = { reconnected: self._opened, lastEventId: self.lastEventId };
      self._opened = true;
      self._backoff = 0;
      self._refreshes = 0;
      safely(self.onOpen, info);
    };
    es.onerror = function (event) {
      if (self._es !== es || self._closed) return;
      if (es.readyState !== 2) {
        // A network error: the browser reconnects by itself, with
        // Last-Event-ID.
        safely(self.onError, { state: "connecting", event: event, status: 0, message: "", reason: "", retryIn: null });
        return;
      }
      // EventSource gave up: the answer was not a 200 event stream. Ask
      // once more with fetch to learn why, since EventSource cannot tell.
      self._why(function (status, message, reason) {
        if (self._es !== es || self._closed) return;
        var info = { state: "closed", event: event, status: status, message: message, reason: reason, retryIn: null };
        // The token expired or was revoked while no stream was open (a
        // laptop asleep, a cookie older than the page): fetch a fresh one
        // and resume.
        if (status === 401 && (reason === "expired" || reason === "revoked") && self._refresh(info)) return;
        // A refusal (bad token, forbidden pattern, bad request) will not
        // change by asking again; anything else (a proxy's 502, a restart)
        // may, after a jittered backoff.
        var final = status >= 400 && status < 500 && status !== 408 && status !== 429;
        if (!final) {
          var delay = Math.min(30000, 1000 * Math.pow(2, self._backoff++));
          info.retryIn = Math.round(delay * (0.5 + Math.random()));
          self._timer = setTimeout(function () {
            if (!self._closed) self._connect();
          }, info.retryIn);
        }
        safely(self.onError, info);
      });
    };
  };

  // _why fetches the stream's URL and reports the answer's status, error
  // message and reason (0, "" and "" when the node cannot be reached).
  Subscription.prototype._why = function (done) {
    if (typeof fetch !== "function") return done(0, "", "");
    var ctl = typeof AbortController === "function" ? new AbortController() : null;
    var url = this._es.url;
    fetch(url, { credentials: this._withCredentials ? "include" : "same-origin", signal: ctl && ctl.signal })
      .then(function (resp) {
        if (resp.ok) { // a stream after all: do not read it
          if (ctl) ctl.abort();
          return done(resp.status, "", "");
        }
        return resp.text().then(function (text) {
          var msg = resp.statusText, reason = "";
          try {
            var body = JSON.parse(text);
            msg = body.error || msg;
            reason = body.reason || "";
          } catch (err) { /* not JSON */ }
          done(resp.status, msg, reason);
        });
      })
      .catch(function () { done(0, "", ""); });
  };

  // _onEnd handles rumor.end: the node ends the stream because of its
  // token (expired, revoked) or an admin's kick. The browser would
  // reconnect with the same token, refused but for a kick, so the stream
  // is closed here, and resumed with a fresh token from refreshToken;
  // without one, a kicked stream comes back with the token it has.
  Subscription.prototype._onEnd = function (e) {
    if (e.target !== this._es || this._closed) return;
    var data = {};
    try { data = JSON.parse(e.data) || {}; } catch (err) { /* still an end */ }
    this._es.close();
    var info = { state: "closed", event: e, status: 0, message: String(data.message || ""),
      reason: String(data.reason || ""), retryIn: null };
    if (this._refresh(info)) return;
    if (info.reason === "kicked") {
      // An admin ended the stream, not the token: come back with it, later.
      var self = this;
      info.retryIn = Math.round(1000 * (1 + Math.random()));
      this._timer = setTimeout(function () {
        if (!self._closed) self._connect();
      }, info.retryIn);
    }
    safely(this.onError, info);
  };

  // _refresh asks refreshToken for a fresh token and reconnects after the
  // last event delivered. It reports false, doing nothing, without a
  // refreshToken or after MAX_REFRESHES refreshes in a row that did not
  // open a stream (a token server handing out tokens rumor refuses).
  Subscription.prototype._refresh = function (info) {
    if (!this.refreshToken || this._refreshes >= MAX_REFRESHES) return false;
    this._refreshes++;
    var self = this, es = this._es;
    new Promise(function (resolve) {
      resolve(self.refreshToken({ reason: info.reason, message: info.message }));
    }).then(function (token) {
      if (self._es !== es || self._closed) return;
      if (typeof token === "string" && token) self._token = token;
      self._connect();
    }, function (err) {
      if (self._es !== es || self._closed) return;
      info.message = "refreshToken failed: " + (err && err.message ? err.message : String(err));
      safely(self.onError, info);
    });
    return true;
  };

  Subscription.prototype._onMessage = function (e) {
    if (e.target !== this._es || this._closed) return;
    // The id line is the event's id, then, after "~", where a resume on
    // any node starts (docs/API.md, Resume): resume with all of it, know
    // the event by the part before "~".
    var pos = e.lastEventId || null;
    var id = pos ? pos.split("~")[0] : null;
    if (id) {
      if (this._seen.has(id)) { // a duplicate: never from rumor, kept as a guard
        this.duplicates++;
        return;
      }
      if (this._remember > 0) {
        this._seen.add(id);
        this._order.push(id);
        if (this._order.length > this._remember) this._seen.delete(this._order.shift());
      }
      this.lastEventId = pos;
    }
    var data = e.data, channel = null;
    if (this._envelope) {
      try {
        var env = JSON.parse(e.data);
        if (env && typeof env.channel === "string" && typeof env.data === "string") {
          channel = env.channel;
          data = env.data;
        }
      } catch (err) { /* not an envelope: a node without it; give the data as is */ }
    }
    safely(this.onEvent, { id: id, channel: channel, type: e.type, data: data, time: new Date(), event: e });
  };

  Subscription.prototype._onReset = function (e) {
    if (e.target !== this._es || this._closed) return;
    var after = null;
    try {
      after = JSON.parse(e.data).lastEventId || null;
    } catch (err) { /* a reset is a reset, whatever its data */ }
    safely(this.onReset, { lastEventId: after, time: new Date() });
  };

  /**
   * subscribe opens one EventSource for channels (a name, a pattern, or an
   * array of them). Options:
   *   url          base URL of a rumor node; default the page's origin
   *   types        event types to dispatch; default ["message"]
   *   lastEventId  resume after this id on the first connect
   *   last         start with the last N retained events (when not resuming)
   *   envelope     false: do not ask for the channel of each event (the
   *                data is then as published either way); default true
   *   dedupe       how many recent ids to remember; default 1000, 0 for none
   *   withCredentials  send cookies to another origin
 *   token        a token sent as ?token= (the node needs --auth-query-token);
 *                without it the browser sends the cookie, if any
 *   refreshToken({reason, message})  called when the stream's token has
 *                expired or was revoked, or an admin kicked the stream:
 *                return (or resolve to) a fresh token for ?token=, or
 *                nothing once the cookie is renewed; rumor.js then resumes
 *                after lastEventId. Without it the stream closes (but for
 *                a kick, after which it comes back in 1 to 2 s).
   *   onEvent({id, channel, type, data, time, event})   channel: where the
   *                event was published (null with envelope false); data is
   *                as published; event.data is the raw envelope
   *   onOpen({reconnected, lastEventId})   reconnected: resumed after lastEventId
   *   onError({state, status, message, reason, retryIn, event})
   *                state "connecting": the browser retries by itself;
   *                state "closed": status and message say why; rumor.js
   *                retries in retryIn ms, or never (retryIn null) after a
   *                4xx refusal such as 401, 403 or 400; reason is the
 *                node's (expired, missing, invalid, forbidden) or ""
   *   onReset({lastEventId, time})         history after lastEventId is gone
   */
  function subscribe(channels, opts) {
    return new Subscription(channels, opts);
  }

  /**
   * publish posts data (a string; anything else is sent as JSON) to a
   * channel and resolves to {id, channel}. Options: url, type, ack
   * ("local" or "peer"), idempotencyKey. It rejects with an Error whose
   * status is the HTTP status (0 when the node is unreachable).
   */
  function publish(channel, data, opts) {
    opts = opts || {};
    var q = [];
    if (opts.type) q.push("event=" + encodeURIComponent(opts.type));
    if (opts.ack) q.push("ack=" + encodeURIComponent(opts.ack));
    var headers = {};
    if (opts.idempotencyKey) headers["Idempotency-Key"] = opts.idempotencyKey;
    var body = typeof data === "string" ? data : JSON.stringify(data);
    var url = base(opts.url) + "/channels/" + encodeURIComponent(channel) + (q.length ? "?" + q.join("&") : "");
    return fetch(url, { method: "POST", body: body, headers: headers }).then(function (resp) {
      return resp.text().then(function (text) {
        var json = null;
        try { json = JSON.parse(text); } catch (err) { /* not JSON */ }
        if (!resp.ok) {
          var e = new Error((json && json.error) || resp.status + " " + resp.statusText);
          e.status = resp.status;
          throw e;
        }
        return json;
      });
    }, function (err) {
      var e = new Error("unreachable: " + err.message);
      e.status = 0;
      throw e;
    });
  }

  // get fetches a JSON read of a channel (history, head) and resolves to
  // its answer, or rejects like publish does.
  function get(channel, what, params, opts) {
    opts = opts || {};
    var q = [];
    Object.keys(params).forEach(function (k) {
      if (params[k] != null && params[k] !== "") q.push(k + "=" + encodeURIComponent(params[k]));
    });
    var headers = { Accept: "application/json" };
    if (opts.token) headers.Authorization = "Bearer " + opts.token;
    var url = base(opts.url) + "/channels/" + encodeURIComponent(channel) + "/" + what + (q.length ? "?" + q.join("&") : "");
    return fetch(url, { headers: headers, credentials: opts.withCredentials ? "include" : "same-origin" }).then(function (resp) {
      return resp.text().then(function (text) {
        var json = null;
        try { json = JSON.parse(text); } catch (err) { /* not JSON */ }
        if (!resp.ok) {
          var e = new Error((json && json.error) || resp.status + " " + resp.statusText);
          e.status = resp.status;
          e.reason = (json && json.reason) || "";
          throw e;
        }
        return json;
      });
    }, function (err) {
      var e = new Error("unreachable: " + err.message);
      e.status = 0;
      throw e;
    });
  }

  /**
   * head resolves to {channel, node, last, head}: the channel's latest id
   * (null for none) and the position to stream from. Snapshot, then
   * stream: read the head, load your state, then
   * rumor.subscribe(channel, {lastEventId: h.head, ...}). Options: url,
   * token (sent as Authorization: Bearer), withCredentials.
   */
  function head(channel, opts) {
    return get(channel, "head", {}, opts);
  }

  /**
   * history resolves to a page {channel, node, events, next, more, reset}
   * of the channel's retained events. Options: after, since, cursor, last,
   * limit (docs/API.md, History), and url, token, withCredentials.
   */
  function history(channel, opts) {
    opts = opts || {};
    return get(channel, "history", { after: opts.after, since: opts.since, cursor: opts.cursor, last: opts.last, limit: opts.limit }, opts);
  }

  var rumor = { subscribe: subscribe, publish: publish, head: head, history: history, Subscription: Subscription, RESET: RESET, END: END };
  if (typeof module === "object" && module.exports) module.exports = rumor;
  else global.rumor = rumor;
})(typeof self !== "undefined" ? self : this);
