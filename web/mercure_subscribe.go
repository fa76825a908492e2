package web

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rumorhq/rumor/broker"
	"github.com/rumorhq/rumor/mercure"
)

// earliest is the reserved Last-Event-ID that asks for every retained
// update, and the response header's value when no visible predecessor is
// known.
const earliest = "earliest"

// lastIDScan bounds the backward scan for the Last-Event-ID response
// header: the most recent event before the first one sent that the
// subscriber may see.
const lastIDScan = 256

// selectorParams maps the subscribe query parameters to the kind of
// selector they carry. 0.x's topic, 1.0's match and match<Type> as the
// specification spells them, and the reference hub 1.0's match_<type>.
var selectorParams = map[string]mercure.Kind{
	"topic":            mercure.Template,
	"match":            mercure.Exact,
	"matchExact":       mercure.Exact,
	"match_exact":      mercure.Exact,
	"matchURLPattern":  mercure.URLPattern,
	"match_urlpattern": mercure.URLPattern,
}

// selectors reads a subscription's topic selectors from the query, in
// the order of the query string. A parameter in the reserved match
// namespace that names no matcher type is refused, as 1.0 demands.
func (m *mercureFace) selectors(r *http.Request, base string) ([]*mercure.Selector, *mercureError) {
	var out []*mercure.Selector
	seen := make(map[*mercure.Selector]bool)
	raw := r.URL.RawQuery
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			return nil, mercureBadRequest("query parameter %q: bad escape", clip(k))
		}
		kind, ok := selectorParams[name]
		if !ok {
			if strings.HasPrefix(strings.ToLower(name), "match") {
				return nil, mercureBadRequest("query parameter %q: unknown topic matcher (want match, matchExact, matchURLPattern, match_exact or match_urlpattern)", clip(name))
			}
			continue
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return nil, mercureBadRequest("%s: bad escape", name)
		}
		if len(out) >= m.o.MaxSelectors {
			return nil, mercureBadRequest("more than %d topic selectors in one subscription", m.o.MaxSelectors)
		}
		sel, err := m.cache.Compile(kind, value, base)
		if err != nil {
			return nil, mercureBadRequest("%s: %v", name, err)
		}
		if !seen[sel] { // the same selector twice is one subscription
			seen[sel] = true
			out = append(out, sel)
		}
	}
	if len(out) == 0 {
		return nil, mercureBadRequest("no topic selector: add ?topic=... (0.x) or ?match=... (1.0), once per topic")
	}
	return out, nil
}

// resumeID reads the id a subscriber resumes after: the Last-Event-ID
// header, else the lastEventID query parameter (or 0.x's last_event_id
// and Last-Event-ID spellings). "" means live only.
func resumeID(r *http.Request) (string, bool) {
	if v, ok := r.Header["Last-Event-Id"]; ok && len(v) > 0 {
		return v[0], true
	}
	q := r.URL.Query()
	for _, name := range []string{"lastEventID", "last_event_id", "Last-Event-ID"} {
		if q.Has(name) {
			return q.Get(name), true
		}
	}
	return "", false
}

// visible reports whether a subscriber with c (nil without a token) may
// receive u: a public update, or a private one whose topics its grants
// cover.
func (c *credential) visible(u *update) bool {
	return !u.Private || c != nil && c.grants.CanReceive(u.Topics)
}

// indexKeys returns the keys the broker offers a subscription of sels
// updates by (Hub.Index, mercure.Selector.Key), or nil when one selector
// must see every update (a URL pattern, "*", a template without a long
// literal start): that subscription is offered every update. Filter
// decides either way.
func indexKeys(sels []*mercure.Selector) []string {
	keys := make([]string, 0, len(sels))
	for _, s := range sels {
		k, ok := s.Key()
		if !ok {
			return nil
		}
		keys = append(keys, k)
	}
	return keys
}

// handleSubscribe serves GET /.well-known/mercure: the updates matching
// the request's topic selectors as text/event-stream.
func (m *mercureFace) handleSubscribe(w http.ResponseWriter, r *http.Request) {
	h := m.h
	base := m.base(r)
	sels, merr := m.selectors(r, base)
	if merr != nil {
		m.refuse(w, r, merr)
		return
	}
	raw, _, merr := m.token(r)
	if merr != nil {
		m.refuse(w, r, merr)
		return
	}
	var cred *credential
	switch {
	case raw != "":
		if cred, merr = m.verify(m.o.Subscriber, "subscriber", raw, base); merr != nil {
			m.refuse(w, r, merr)
			return
		}
	case !m.o.Anonymous:
		m.refuse(w, r, noToken("subscribing needs a token: send Authorization: Bearer TOKEN or the "+m.o.Cookie+" cookie"))
		return
	}
	set := mercure.NewSet(sels)
	filter := func(e *broker.Event) bool {
		u := updateOf(e)
		return u != nil && set.MatchAny(u.Topics) && cred.visible(u)
	}

	// Where to resume: after the retained event carrying the id (found on
	// this node: every node holds every event), or from the start of the
	// history for "earliest"; an id not held here means live only.
	var from broker.Position
	lastID, resuming := resumeID(r)
	respID := earliest
	if resuming && lastID != "" {
		retained := h.hub.Retained(mercureChannel)
		if lastID == earliest {
			from = broker.Earliest()
		} else {
			for i := len(retained) - 1; i >= 0; i-- {
				if u := updateOf(retained[i]); u != nil && u.ID == lastID {
					from = retained[i].Position()
					// The most recent event the subscriber may see, at
					// or before the one asked for.
					for j := i; j >= 0 && j > i-lastIDScan; j-- {
						if u := updateOf(retained[j]); u != nil && cred.visible(u) {
							respID = u.ID
							break
						}
					}
					break
				}
			}
		}
	}

	client := h.clientAddr(r)
	if !h.acquireClient(client) {
		h.shed(w, r, rejectClientLimit)
		return
	}
	s := h.newStream(w)
	s.framer = func(e *broker.Event) []byte { return updateOf(e).frame }
	s.patterns, s.opened, s.expires = []broker.Pattern{m.system}, time.Now(), cred.expires()
	if cred != nil {
		s.who = cred.tok.Principal
	}
	if reason, ok := h.register(s); !ok {
		h.releaseClient(client)
		h.shed(w, r, reason)
		return
	}
	if cred != nil {
		if aerr := h.opts.Revocations.Check(s.who); aerr != nil {
			h.unregister(s)
			h.releaseClient(client)
			m.refuse(w, r, invalidToken(aerr.Reason, "%s", aerr.Msg))
			return
		}
	}
	sub, err := h.hub.Subscribe(broker.SubscribeRequest{Patterns: s.patterns, From: from, Filter: filter, Keys: indexKeys(sels)})
	if err != nil {
		h.subscribeFailed(w, r, s, client, err)
		return
	}
	// Mercure has no reset signal: a resume from an evicted or unknown id
	// says so with the Last-Event-ID response header only.
	sub.Reset = false
	leave := m.join(r, sels, cred)
	serve := func() {
		defer h.unregister(s) // last: CloseStreams waits for the whole stream
		defer h.releaseClient(client)
		defer s.hangUp()
		defer leave()
		defer sub.Close()
		reason := s.run(sub, broker.Position{}, false)
		h.metrics.streamsEnded.WithLabelValues(reason).Inc()
	}
	if resuming {
		w.Header().Set("Last-Event-ID", respID)
	}
	if via := r.URL.Query(); via.Has("access_token") || via.Has("authorization") {
		w.Header().Set("Cache-Control", "private, no-cache")
	}
	writeStreamHeader(w, r)
	s.gone = r.Context().Done()
	if !s.detach(r) {
		serve()
		return
	}
	go func() { // CloseStreams waits for it
		defer func() {
			if v := recover(); v != nil {
				h.log.Error("stream panic", "path", MercurePath, "panic", v)
			}
		}()
		serve()
	}()
}
