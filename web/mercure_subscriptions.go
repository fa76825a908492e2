package web

// Active subscriptions (--mercure-subscriptions): each subscription of the
// Mercure face is announced by a private update on its own topic under
// /.well-known/mercure/subscriptions when it opens and when it ends, and
// GET /.well-known/mercure/subscriptions[/...] lists the active ones of the
// whole cluster. With a MercureDirectory (the presence directory, which
// carries every node's records to every node) the list is that
// directory's. Without one, the node asks every reachable peer for its own
// over HTTP with the caller's own token (each peer checks it as this node
// did), the way /cluster/channels asks peers for theirs; a peer that does
// not answer makes the answer a 503 rather than a partial list.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rumorhq/rumor/broker"
	"github.com/rumorhq/rumor/mercure"
	"github.com/rumorhq/rumor/presence"
)

// subscriptionsPath is the root of the subscriptions API and of the
// subscription events' topics.
const subscriptionsPath = MercurePath + "/subscriptions"

// mercureContext is the JSON-LD context of the documents.
const mercureContext = "https://mercure.rocks/"

// localHeader marks a peer's request for its own subscriptions only.
const localHeader = "Rumor-Mercure-Local"

// subscriptionDoc is one subscription, as subscription events and the
// API show it: 0.x documents name their topic, 1.0 ones their matchType
// and match.
type subscriptionDoc struct {
	Context     string          `json:"@context,omitempty"`
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Topic       *string         `json:"topic,omitempty"`
	MatchType   string          `json:"matchType,omitempty"`
	Match       *string         `json:"match,omitempty"`
	Subscriber  string          `json:"subscriber"`
	Active      bool            `json:"active"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	LastEventID string          `json:"lastEventID,omitempty"`
}

// subscriptionList is a collection document; also what peers answer.
type subscriptionList struct {
	Context       string            `json:"@context"`
	ID            string            `json:"id"`
	Type          string            `json:"type"`
	LastEventID   string            `json:"lastEventID"`
	Subscriptions []subscriptionDoc `json:"subscriptions"`
}

// escapeVar percent-encodes s as RFC 6570 simple expansion does: every
// byte but the unreserved ones, once.
func escapeVar(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// docFor returns the document of the subscription sel of subscriber.
func docFor(sel *mercure.Selector, subscriber string, payload json.RawMessage) subscriptionDoc {
	text := sel.String()
	d := subscriptionDoc{Context: mercureContext, Type: "Subscription", Subscriber: subscriber, Active: true, Payload: payload}
	if sel.Kind() == mercure.Template {
		d.Topic = &text
		d.ID = subscriptionsPath + "/" + escapeVar(text) + "/" + escapeVar(subscriber)
	} else {
		d.MatchType, d.Match = sel.Kind().String(), &text
		d.ID = subscriptionsPath + "/" + d.MatchType + "/" + escapeVar(text) + "/" + escapeVar(subscriber)
	}
	return d
}

// mercureRecord starts the ids of the directory records of Mercure
// subscriptions, which the directory carries beside other streams.
const mercureRecord = "mercure:"

// maxRecord is the largest record the directory carries (presence drops
// larger payloads).
const maxRecord = 4 << 10

// recordOf is the directory record of d: the document itself, without its
// token payload when that would make it too large to carry.
func recordOf(d subscriptionDoc) json.RawMessage {
	b, err := json.Marshal(d)
	if err == nil && len(b) > maxRecord {
		d.Payload = nil
		b, err = json.Marshal(d)
	}
	if err != nil {
		return nil
	}
	return b
}

// directoryDocs returns the subscriptions the directory holds, every node's.
func (m *mercureFace) directoryDocs() []subscriptionDoc {
	var out []subscriptionDoc
	for _, r := range m.o.Directory.Records() {
		if !strings.HasPrefix(r.ID, mercureRecord) {
			continue
		}
		var d subscriptionDoc
		if err := json.Unmarshal(r.Payload, &d); err == nil && d.Type == "Subscription" {
			out = append(out, d)
		}
	}
	return out
}

// mercureRegistry holds this node's active subscriptions.
type mercureRegistry struct {
	mu   sync.Mutex
	docs map[string]subscriptionDoc // by id
}

func newMercureRegistry() *mercureRegistry {
	return &mercureRegistry{docs: make(map[string]subscriptionDoc)}
}

func (g *mercureRegistry) list() []subscriptionDoc {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]subscriptionDoc, 0, len(g.docs))
	for _, d := range g.docs {
		out = append(out, d)
	}
	return out
}

// join records a new stream's subscriptions and announces them; the
// returned function, called when the stream ends, forgets and announces
// their end. Without Subscriptions it does nothing.
func (m *mercureFace) join(r *http.Request, sels []*mercure.Selector, cred *credential) (leave func()) {
	if !m.o.Subscriptions {
		return func() {}
	}
	// The subscriber's id is the hub's, never the client's: random, so
	// that it is unique among active subscriptions and cannot be forged.
	subscriber := newUUID()
	docs := make([]subscriptionDoc, len(sels))
	m.registry.mu.Lock()
	for i, sel := range sels {
		var payload json.RawMessage
		if cred != nil {
			payload = cred.grants.Payload(sel.String())
		}
		docs[i] = docFor(sel, subscriber, payload)
		m.registry.docs[docs[i].ID] = docs[i]
	}
	m.registry.mu.Unlock()
	var leaves []func()
	if dir := m.o.Directory; dir != nil {
		subject := ""
		if cred != nil {
			subject = cred.tok.Subject
		}
		for _, d := range docs {
			leaves = append(leaves, dir.Join(presence.Stream{ID: mercureRecord + d.ID, Subject: subject, Payload: recordOf(d)}))
		}
	}
	m.announce(docs)
	return func() {
		for _, leave := range leaves {
			leave()
		}
		m.registry.mu.Lock()
		for i := range docs {
			delete(m.registry.docs, docs[i].ID)
			docs[i].Active = false
		}
		m.registry.mu.Unlock()
		m.announce(docs)
	}
}

// announce publishes a subscription event per document: a private update
// whose topic is the document's id.
func (m *mercureFace) announce(docs []subscriptionDoc) {
	msgs := make([]broker.Message, 0, len(docs))
	for _, d := range docs {
		data, err := json.Marshal(d)
		if err != nil {
			continue
		}
		body, err := (&update{Topics: []string{d.ID}, Private: true, ID: newUUID(), Data: string(data)}).encode()
		if err != nil {
			continue
		}
		msgs = append(msgs, broker.Message{Channel: mercureChannel, Data: body})
	}
	if len(msgs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := m.h.hub.Publish(ctx, msgs, broker.AckLocal); err != nil && !errors.Is(err, broker.ErrClosed) {
		m.h.log.Warn("mercure subscription event not published", "err", err)
	}
}

// lastEventID is the id of the most recent retained update c may see, or
// "earliest".
func (m *mercureFace) lastEventID(c *credential) string {
	retained := m.h.hub.Retained(mercureChannel)
	for i := len(retained) - 1; i >= 0 && i >= len(retained)-lastIDScan; i-- {
		if u := updateOf(retained[i]); u != nil && c.visible(u) {
			return u.ID
		}
	}
	return earliest
}

// handleSubscriptions serves GET /.well-known/mercure/subscriptions and
// the paths below it: the active subscriptions of the whole cluster, in
// JSON-LD. The caller's token must grant subscribe on the requested path,
// as for the subscription events of the same subscriptions.
func (m *mercureFace) handleSubscriptions(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	canon, segs, ok := canonicalSubscriptionsPath(path)
	if !ok {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	raw, _, merr := m.token(r)
	if merr == nil && raw == "" {
		merr = noToken("the subscriptions API needs a token: send Authorization: Bearer TOKEN")
	}
	var cred *credential
	if merr == nil {
		cred, merr = m.verify(m.o.Subscriber, "subscriber", raw, m.base(r))
	}
	if merr == nil && !cred.grants.CanReceive([]string{path, canon}) {
		merr = insufficientScope("the token does not grant subscribe on %s", clip(path))
	}
	if merr != nil {
		m.refuse(w, r, merr)
		return
	}
	match := func(d subscriptionDoc) bool { return d.ID == canon || strings.HasPrefix(d.ID, canon+"/") }
	var docs []subscriptionDoc
	all := m.registry.list()
	if m.o.Directory != nil {
		all = m.directoryDocs()
	}
	for _, d := range all {
		if match(d) {
			docs = append(docs, d)
		}
	}
	if m.o.Directory == nil && r.Header.Get(localHeader) == "" {
		theirs, err := m.askPeers(r, raw)
		if err != nil {
			writeUnavailable(w, errorBody{Error: err.Error()})
			return
		}
		for _, d := range theirs {
			if match(d) {
				docs = append(docs, d)
			}
		}
	}
	slices.SortFunc(docs, func(a, b subscriptionDoc) int { return strings.Compare(a.ID, b.ID) })
	last := m.lastEventID(cred)
	w.Header().Set("Link", "<"+MercurePath+`>; rel="mercure"`)
	w.Header().Set("Cache-Control", "must-revalidate")
	w.Header().Set("ETag", `"`+last+`"`)
	// A single subscription: the path has as many parts as a document's id.
	if single := len(segs) == 3 || len(segs) == 2 && !isMatchType(segs[0]); single {
		i := slices.IndexFunc(docs, func(d subscriptionDoc) bool { return d.ID == canon })
		if i < 0 {
			writeError(w, http.StatusNotFound, "no active subscription "+clip(path))
			return
		}
		d := docs[i]
		d.Context, d.LastEventID = mercureContext, last
		writeLD(w, d)
		return
	}
	for i := range docs {
		docs[i].Context = "" // the collection's applies
	}
	if docs == nil {
		docs = []subscriptionDoc{}
	}
	writeLD(w, subscriptionList{Context: mercureContext, ID: path, Type: "Subscriptions", LastEventID: last, Subscriptions: docs})
}

func isMatchType(s string) bool { return s == "Exact" || s == "URLPattern" }

// canonicalSubscriptionsPath decodes an escaped request path below
// subscriptionsPath into its parts and encodes it again as document ids
// are, so that a client's own escaping does not matter.
func canonicalSubscriptionsPath(escaped string) (canon string, segs []string, ok bool) {
	rest, found := strings.CutPrefix(escaped, subscriptionsPath)
	if !found || rest != "" && rest[0] != '/' {
		return "", nil, false
	}
	rest = strings.TrimPrefix(rest, "/")
	canon = subscriptionsPath
	if rest == "" {
		return canon, nil, true
	}
	for _, p := range strings.Split(rest, "/") {
		s, err := url.PathUnescape(p)
		if err != nil || s == "" {
			return "", nil, false
		}
		segs = append(segs, s)
		if len(segs) == 1 && isMatchType(s) {
			canon += "/" + s
		} else {
			canon += "/" + escapeVar(s)
		}
	}
	if len(segs) > 3 || len(segs) == 3 && !isMatchType(segs[0]) {
		return "", nil, false
	}
	return canon, segs, true
}

func writeLD(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode response")
		return
	}
	w.Header().Set("Content-Type", "application/ld+json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
}

// newPeerClient returns the client that asks peers: no proxy, no redirect,
// no idle connections outliving the Handler.
func newPeerClient(tlsConf *tls.Config) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		TLSClientConfig:       tlsConf,
		DialContext:           (&net.Dialer{Timeout: peerTimeout}).DialContext,
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: peerTimeout,
	}
	return &http.Client{
		Timeout:       2 * peerTimeout,
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// askPeers asks every reachable peer for its own subscriptions under the
// same path, with the caller's token. It fails if one does not answer: a
// list without a node's subscriptions would look complete and not be.
func (m *mercureFace) askPeers(r *http.Request, raw string) ([]subscriptionDoc, error) {
	h := m.h
	if h.opts.Cluster == nil {
		return nil, nil
	}
	scheme := "http"
	if h.opts.PeerTLS != nil {
		scheme = "https"
	}
	cv := h.clusterView()
	type result struct {
		node string
		docs []subscriptionDoc
		err  error
	}
	var peers []Member
	for _, mb := range cv.Members {
		if mb.Self || mb.Name == cv.Self || !reachable(mb.State) {
			continue
		}
		peers = append(peers, mb)
	}
	results := make([]result, len(peers))
	var wg sync.WaitGroup
	for i, mb := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i].node = mb.Name
			u := memberURL(mb, scheme)
			if u == "" {
				results[i].err = errors.New("no HTTP address")
				return
			}
			results[i].docs, results[i].err = m.askPeer(r.Context(), u+r.URL.EscapedPath(), raw)
		}()
	}
	wg.Wait()
	var out []subscriptionDoc
	var errs []error
	for _, res := range results {
		if res.err != nil {
			errs = append(errs, fmt.Errorf("node %s: %v", res.node, res.err))
			continue
		}
		out = append(out, res.docs...)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("the subscriptions of some nodes are unknown, retry: %w", errors.Join(errs...))
	}
	return out, nil
}

func (m *mercureFace) askPeer(ctx context.Context, u, raw string) ([]subscriptionDoc, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*peerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(localHeader, "1")
	req.Header.Set("Authorization", "Bearer "+raw)
	resp, err := m.peers.Do(req)
	if err != nil {
		return nil, fmt.Errorf("unreachable: %s", lastPart(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, peerMaxBody+1))
	if err != nil || len(body) > peerMaxBody {
		return nil, fmt.Errorf("answer unreadable or too large")
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, nil // a single subscription it does not hold
	default:
		return nil, fmt.Errorf("answered %s", resp.Status)
	}
	var list subscriptionList
	if err := json.Unmarshal(body, &list); err == nil && list.Type == "Subscriptions" {
		return list.Subscriptions, nil
	}
	var d subscriptionDoc
	if err := json.Unmarshal(body, &d); err != nil || d.Type != "Subscription" {
		return nil, errors.New("answer is not a subscription document")
	}
	d.LastEventID = ""
	return []subscriptionDoc{d}, nil
}
