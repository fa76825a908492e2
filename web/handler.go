package web

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/broker"
)

// Hub is what web needs of the broker; *broker.Hub is one. Its methods are
// called from any goroutine.
type Hub interface {
	// Publish stores and fans out msgs, all or none: POST /channels/{channel}
	// and POST /publish.
	Publish(ctx context.Context, msgs []broker.Message, ack broker.Ack) (ids []broker.ID, replayed bool, err error)
	// Subscribe registers a stream's subscription; the stream closes it.
	Subscribe(req broker.SubscribeRequest) (*broker.Subscription, error)
	// History returns a page of a channel's retained events: GET
	// /channels/{channel}/history (history.go).
	History(req broker.HistoryRequest) (broker.HistoryPage, error)
	// Head returns a channel's latest id and the position to stream from:
	// GET /channels/{channel}/head. It may wait for the node to settle.
	Head(ctx context.Context, channel string) (broker.Head, error)
	// Channels lists the active channels: GET /channels and the UI.
	Channels() []broker.ChannelInfo
	// Stats returns the counters behind /metrics and the UI's node view.
	Stats() broker.Stats
	// Retained returns a channel's retained events: the Mercure face finds
	// the event a Last-Event-ID names there.
	Retained(channel string) []*broker.Event
}

var _ Hub = (*broker.Hub)(nil)

// Options configures a Handler. Zero values mean the documented defaults.
type Options struct {
	Hub           Hub
	Cluster       Cluster              // nil: single node
	PeerTLS       *tls.Config          // non-nil: the UI's cluster view asks peers over HTTPS with it (every node serves TLS)
	Ready         func() error         // extra readiness check (joined and caught up); nil means always ready
	NodeName      string               // shown in /cluster when Cluster is nil and in the connect comment
	HTTPAddr      string               // advertised HTTP address of this node, for /cluster when Cluster is nil
	AdminAddr     string               // advertised address of this node's admin listener; non-empty: the views, /metrics and the UI are served by Admin() only
	Heartbeat     time.Duration        // comment line on idle streams; 0 means 15s
	Retry         time.Duration        // retry: hint on connect; 0 means 2s (drain, slow and limit use jittered larger values)
	MaxEventBytes int64                // event data per publish; 0 means 1 MiB, 413 above it
	MaxBatch      int                  // messages per POST /publish; 0 means 1000
	MaxStreams    int                  // concurrent SSE streams on this node; 0 means 20000
	MaxPatterns   int                  // channels and patterns per stream; 0 means 64
	MaxPublishes  int                  // concurrent publish requests in flight; 0 means 4096, 503 above it
	DefaultAck    broker.Ack           // used when ?ack= is absent
	WriteTimeout  time.Duration        // deadline per stream write; 0 means 10s
	Coalesce      time.Duration        // a busy stream writes at most once per this, events meanwhile share the write; 0 means 1ms, negative writes every event at once
	Registry      *prometheus.Registry // metrics go here; nil means a new one
	Logger        *slog.Logger         // nil means discard
	Version       string

	// Security: auth.go, cors.go and limits.go.
	Auth                  *auth.Authenticator           // JWT for publishers and subscribers; nil means none (anyone may publish and subscribe)
	Revocations           *auth.Revocations             // revoked tokens and kicks, which end streams (revoke.go); nil means none, and no admin API
	Presence              Presence                      // counts streams cluster-wide and answers GET /presence (presence.go); nil means no presence
	Spread                func(context.Context, []byte) // sends an encoded revocation to every other node now; nil on a single node
	CORSOrigins           []string                      // origins browsers may call from ("https://app.example.com", or "*" without credentials); nil means none
	MaxPublishesPerClient int                           // publishes in flight per token (or client address without one); 0 means no limit (cmd's default is 256), 429 above it
	MaxStreamsPerClient   int                           // concurrent streams per client address; 0 means no limit (cmd's default is 100)
	PublishRate           int                           // publishes per PublishWindow per token (or client address without one); 0 means no limit
	PublishWindow         time.Duration                 // the window of PublishRate; 0 means 1s
	TrustedProxies        []string                      // CIDR prefixes of proxies whose X-Forwarded-For names the client; nil means the TCP peer is the client
	ReadBodyTimeout       time.Duration                 // time a publisher has to send its body; 0 means 30s

	Mercure *MercureOptions // non-nil: serve the Mercure face at /.well-known/mercure (mercure.go)
}

// Handler serves rumor's HTTP API. Create it with NewHandler.
type Handler struct {
	opts    Options
	hub     Hub
	log     *slog.Logger
	mux     http.Handler // the public face: everything, or without the views when AdminAddr is set
	admin   http.Handler // everything: the admin listener's face
	metrics *metrics
	members *membership
	sec     *security
	cors    corsPolicy
	proxies []netip.Prefix // Options.TrustedProxies
	mercure *mercureFace   // nil without Options.Mercure

	draining atomic.Bool
	inflight atomic.Int64 // publish requests being handled

	// batches holds the buffers a stream needs only while it writes, so an
	// idle stream holds none.
	batches sync.Pool

	mu      sync.Mutex
	streams map[*stream]struct{}
	unwatch func()        // stops applyRevocations; nil without Revocations
	closing bool          // CloseStreams was called: no new streams
	idle    chan struct{} // closed once closing and no stream is left
}

// NewHandler returns the HTTP handler for o.Hub. It registers its metrics
// with o.Registry, so one registry serves one Handler. It returns every
// problem with o at once: no Hub, invalid CORSOrigins or TrustedProxies
// (cmd checks those first, see CanonicalOrigin), metrics already
// registered. Publishes and HTTP/2 streams run on the http.Server's
// goroutines. An HTTP/1.1 stream takes its connection over once its headers
// are written, so that net/http's per-connection memory is freed, and runs
// on two goroutines of its own (a writer, and a reader that notices the
// client leave); CloseStreams waits for them.
func NewHandler(o Options) (*Handler, error) {
	var errs []error
	if o.Hub == nil {
		errs = append(errs, errors.New("no hub"))
	}
	cors, err := newCORS(o.CORSOrigins)
	if err != nil {
		errs = append(errs, err)
	}
	proxies, err := parsePrefixes(o.TrustedProxies)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	o.Heartbeat = cmp.Or(o.Heartbeat, 15*time.Second)
	o.Retry = cmp.Or(o.Retry, 2*time.Second)
	o.MaxEventBytes = cmp.Or(o.MaxEventBytes, 1<<20)
	o.MaxBatch = cmp.Or(o.MaxBatch, 1000)
	o.MaxStreams = cmp.Or(o.MaxStreams, 20000)
	o.MaxPatterns = cmp.Or(o.MaxPatterns, 64)
	o.MaxPublishes = cmp.Or(o.MaxPublishes, 4096)
	o.WriteTimeout = cmp.Or(o.WriteTimeout, 10*time.Second)
	o.Coalesce = cmp.Or(o.Coalesce, time.Millisecond)
	o.ReadBodyTimeout = cmp.Or(o.ReadBodyTimeout, 30*time.Second)
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		opts:    o,
		hub:     o.Hub,
		log:     o.Logger.With("component", "web"),
		streams: make(map[*stream]struct{}),
		idle:    make(chan struct{}),
		cors:    cors,
		proxies: proxies,
	}
	h.batches.New = func() any { return new(batch) }
	if o.Mercure != nil {
		if h.mercure, err = newMercureFace(h, *o.Mercure); err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
	}
	if h.metrics, err = newMetrics(o.Registry, h); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	if h.sec, err = newSecurity(o.Registry, h.metrics); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	if o.Cluster != nil {
		h.members = &membership{cluster: o.Cluster}
	}
	if o.Revocations != nil {
		if err := registerRevocations(o.Registry, o.Revocations); err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
		h.unwatch = o.Revocations.Watch(h.applyRevocations)
	}
	ui := h.uiHandler() // hashes the UI's files once, for both faces
	h.admin = h.routes(true, ui)
	h.mux = h.admin
	if o.AdminAddr != "" {
		h.mux = h.routes(false, ui)
	}
	return h, nil
}

// routes builds the router. With views false it serves what clients need
// (streams, publishing, health probes and rumor.js) and answers 404 to the
// read-only views, /metrics and the UI, which then live on the admin
// listener.
func (h *Handler) routes(views bool, ui http.HandlerFunc) http.Handler {
	r := chi.NewRouter()
	r.Use(h.recoverer, h.corsMiddleware)
	// Requests refused whatever they send do not get their bodies read.
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		skipBody(w, r)
		writeError(w, http.StatusNotFound, "not found")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		skipBody(w, req)
		allow := allowed(r, req)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, req.Method+" "+req.URL.Path+": use "+strings.Join(allow, " or "))
	})
	// Publishing needs a token once auth is on (streams check theirs in
	// handleStream, keeping their long-lived stacks shallow); both publish
	// routes share one rate budget per token or address.
	limit := h.publishLimit()
	r.Get("/channels/{channel}", h.handleStream)
	r.With(h.authenticate, limit).Post("/channels/{channel}", h.handlePublish)
	r.Get("/events", h.handleStream)
	r.Get("/channels/{channel}/history", h.handleHistory) // history.go
	r.Get("/channels/{channel}/head", h.handleHead)
	r.With(h.authenticate, limit).Post("/publish", h.handleBatch)
	if m := h.mercure; m != nil {
		r.Group(func(r chi.Router) {
			r.Use(m.middleware)
			r.Get(MercurePath, m.handleSubscribe)
			r.With(limit).Post(MercurePath, m.handlePublish)
			r.Options(MercurePath, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
			if m.o.AccessTokens {
				r.Get(resourceMetadataPath, m.handleResourceMetadata)
			}
			if m.o.Subscriptions {
				r.Get(subscriptionsPath, m.handleSubscriptions)
				r.Get(subscriptionsPath+"/*", m.handleSubscriptions)
			}
		})
	}
	r.Get("/presence", h.handlePresence)
	r.Get("/presence/{channel}", h.handlePresenceChannel)
	r.Get("/healthz", h.handleHealth)
	r.Get("/readyz", h.handleReady)
	if !views {
		// Browsers load the client library from the node they stream from.
		r.Get("/rumor.js", ui)
		r.Head("/rumor.js", ui)
		return r
	}
	r.Get("/channels", h.handleChannels)
	r.Get("/cluster", h.handleCluster)
	r.Get("/revocations", h.handleRevocations) // the admin API: revoke.go
	r.Post("/revocations", h.handleRevoke)
	h.mountClusterView(r) // the UI's cluster-wide views: clusterview.go
	r.Method(http.MethodGet, "/metrics", h.metrics.handler)
	// One route per file of the UI rather than a catch-all, so that an
	// unknown path is a 404 whatever the method, and a wrong method on a
	// file a 405.
	for _, p := range uiPaths() {
		r.Get(p, ui)
		r.Head(p, ui)
	}
	return r
}

// routeMethods are the methods an Allow header may list, in its order.
var routeMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete,
}

// allowed returns the methods router serves req's path with.
func allowed(router chi.Routes, req *http.Request) []string {
	path := cmp.Or(req.URL.RawPath, req.URL.Path)
	var ms []string
	for _, m := range routeMethods {
		if router.Match(chi.NewRouteContext(), m, path) {
			ms = append(ms, m)
		}
	}
	return ms
}

// ServeHTTP implements http.Handler: the public face. Without
// Options.AdminAddr it serves everything Admin does.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Admin returns the handler of the admin listener: everything ServeHTTP
// serves plus the read-only views (/channels, /cluster, /node,
// /cluster/events, /cluster/channels), /metrics and the UI, whose console
// publishes and subscribes through it too. Auth applies as on the public
// face. Meant for a port that only operators and peers reach.
func (h *Handler) Admin() http.Handler { return h.admin }

// Drain starts the shutdown: readiness turns false at once, new publishes
// get 503 with Retry-After and new streams get 200 with a jittered retry:
// line and end, so that load balancers and clients move to other nodes.
// Open streams keep running until CloseStreams. It is safe to call more
// than once.
func (h *Handler) Drain() {
	if !h.draining.Swap(true) {
		h.log.Info("draining")
	}
}

// Pace of CloseStreams: streams end in batches so that their clients do not
// all reconnect to the remaining nodes in the same instant; the jittered
// retry: spreads them further.
const (
	closeBatch = 256
	closePause = 20 * time.Millisecond
)

// CloseStreams ends every open stream with a jittered retry: line, in
// batches, and waits until all stream handlers have returned or ctx ends;
// it returns ctx's error in that case. New streams are refused from the
// first call on. Call it after Drain and after the relays are flushed, so
// that the events clients resume from elsewhere have reached the other
// nodes. It is safe to call more than once.
func (h *Handler) CloseStreams(ctx context.Context) error {
	if h.unwatch != nil {
		h.unwatch()
	}
	h.mu.Lock()
	h.closing = true
	open := make([]*stream, 0, len(h.streams))
	for s := range h.streams {
		open = append(open, s)
	}
	h.checkIdle()
	h.mu.Unlock()
	if len(open) > 0 {
		h.log.Info("closing streams", "count", len(open))
	}
	for i, s := range open {
		if i > 0 && i%closeBatch == 0 {
			select {
			case <-time.After(closePause):
			case <-ctx.Done():
			}
		}
		s.close()
	}
	select {
	case <-h.idle:
		return nil
	case <-ctx.Done():
		// Streams still writing to clients that stopped reading end now.
		h.mu.Lock()
		for s := range h.streams {
			s.abort()
		}
		h.mu.Unlock()
		return ctx.Err()
	}
}

// register admits a new stream, or reports why not.
func (h *Handler) register(s *stream) (reason string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closing || h.draining.Load():
		return rejectDraining, false
	case len(h.streams) >= h.opts.MaxStreams:
		return rejectLimit, false
	}
	h.streams[s] = struct{}{}
	return "", true
}

func (h *Handler) unregister(s *stream) {
	h.mu.Lock()
	delete(h.streams, s)
	h.checkIdle()
	h.mu.Unlock()
}

// checkIdle closes h.idle once CloseStreams waits and no stream is left.
// Called with h.mu held.
func (h *Handler) checkIdle() {
	if h.closing && len(h.streams) == 0 {
		select {
		case <-h.idle:
		default:
			close(h.idle)
		}
	}
}

func (h *Handler) openStreams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.streams)
}

// nodeName is this node's member name.
func (h *Handler) nodeName() string {
	if h.opts.Cluster != nil {
		return h.opts.Cluster.Self()
	}
	return h.opts.NodeName
}

// jitter returns a random duration in [base, base+spread), so that clients
// told to come back do not all come back at once.
func jitter(base, spread time.Duration) time.Duration {
	if spread <= 0 {
		return base
	}
	return base + rand.N(spread)
}
