package web

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/httprate"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rumorhq/rumor/auth"
)

// security holds what the auth, CORS and limit code shares: the metrics
// and the per-client stream counts.
type security struct {
	authFailures *prometheus.CounterVec

	mu         sync.Mutex
	clients    map[string]int // open streams by client address
	publishers map[string]int // publishes in flight by publisherKey
}

func newSecurity(reg prometheus.Registerer, m *metrics) (*security, error) {
	s := &security{
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rumor_auth_failures_total",
			Help: "Requests refused by authentication or authorization, by reason: missing (no token where one is needed), invalid, expired (or not yet valid), forbidden (no grant), revoked.",
		}, []string{"reason"}),
		clients:    make(map[string]int),
		publishers: make(map[string]int),
	}
	for _, r := range []string{auth.ReasonMissing, auth.ReasonInvalid, auth.ReasonExpired, auth.ReasonForbidden, auth.ReasonRevoked} {
		s.authFailures.WithLabelValues(r)
	}
	if err := register(reg, s.authFailures); err != nil {
		return nil, err
	}
	// web's own counters get the reasons the security code adds.
	m.streamsRejected.WithLabelValues(rejectClientLimit)
	m.streamsEnded.WithLabelValues(endExpired)
	m.streamsEnded.WithLabelValues(endRevoked)
	m.streamsEnded.WithLabelValues(endKicked)
	for _, r := range []string{publishUnauthorized, publishForbidden, publishRateLimited, publishClientLimit} {
		m.publishErrors.WithLabelValues(r)
	}
	return s, nil
}

// clientAddr returns the address limits count a client by: the TCP peer,
// or when the peer is one of Options.TrustedProxies, the right-most
// X-Forwarded-For entry that is not a trusted proxy, so that a client that
// reaches the node directly cannot pick its address by sending the header.
// An IPv6 client counts by its /64, which one client usually holds whole.
func (h *Handler) clientAddr(r *http.Request) string {
	peer := peerAddr(r.RemoteAddr)
	if len(h.proxies) == 0 || !peer.IsValid() || !inPrefixes(peer, h.proxies) {
		return canonicalAddr(peer, r.RemoteAddr)
	}
	client := peer
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		entries := strings.Split(hops[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			e := strings.TrimSpace(entries[j])
			if e == "" {
				continue
			}
			ip, err := netip.ParseAddr(e)
			if err != nil {
				// Garbage left of a trusted hop: trust nothing further and
				// count the request against the last address known.
				return canonicalAddr(client, r.RemoteAddr)
			}
			client = ip.Unmap().WithZone("")
			if !inPrefixes(client, h.proxies) {
				return canonicalAddr(client, r.RemoteAddr)
			}
		}
	}
	return canonicalAddr(client, r.RemoteAddr)
}

// viaTrustedProxy reports whether the request's TCP peer is one of
// Options.TrustedProxies.
func (h *Handler) viaTrustedProxy(r *http.Request) bool {
	peer := peerAddr(r.RemoteAddr)
	return len(h.proxies) > 0 && peer.IsValid() && inPrefixes(peer, h.proxies)
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap().WithZone("")
}

func inPrefixes(ip netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func canonicalAddr(ip netip.Addr, fallback string) string {
	if !ip.IsValid() {
		return fallback
	}
	return httprate.CanonicalizeIP(ip.String())
}

// acquireClient counts one more stream for the client; false means it
// holds MaxStreamsPerClient already. A true answer must be paired with
// releaseClient.
func (h *Handler) acquireClient(client string) bool {
	if h.opts.MaxStreamsPerClient <= 0 {
		return true
	}
	h.sec.mu.Lock()
	defer h.sec.mu.Unlock()
	if h.sec.clients[client] >= h.opts.MaxStreamsPerClient {
		return false
	}
	h.sec.clients[client]++
	return true
}

func (h *Handler) releaseClient(client string) {
	if h.opts.MaxStreamsPerClient <= 0 {
		return
	}
	h.sec.mu.Lock()
	defer h.sec.mu.Unlock()
	if h.sec.clients[client]--; h.sec.clients[client] <= 0 {
		delete(h.sec.clients, client) // the map holds only clients with streams
	}
}

// publisherKey is who a publish counts against: its token's subject (or
// the token, without one), else its client address.
func (h *Handler) publisherKey(r *http.Request) string {
	if p := principalOf(r); p != nil {
		return p.LimitKey
	}
	return "ip:" + h.clientAddr(r)
}

// acquirePublisher counts one more publish in flight for key; false means
// it has MaxPublishesPerClient already. A true answer must be paired with
// releasePublisher.
func (h *Handler) acquirePublisher(key string) bool {
	if h.opts.MaxPublishesPerClient <= 0 {
		return true
	}
	h.sec.mu.Lock()
	defer h.sec.mu.Unlock()
	if h.sec.publishers[key] >= h.opts.MaxPublishesPerClient {
		return false
	}
	h.sec.publishers[key]++
	return true
}

func (h *Handler) releasePublisher(key string) {
	if h.opts.MaxPublishesPerClient <= 0 {
		return
	}
	h.sec.mu.Lock()
	defer h.sec.mu.Unlock()
	if h.sec.publishers[key]--; h.sec.publishers[key] <= 0 {
		delete(h.sec.publishers, key) // the map holds only publishers with publishes in flight
	}
}

// publishLimit is the middleware that bounds the publish rate of each
// token (by its subject) or, without one, of each client address, with
// httprate's sliding window. Over it a publish gets 429 with Retry-After.
// It runs after authenticate, so a forged token is refused before it can
// use anyone's budget.
func (h *Handler) publishLimit() func(http.Handler) http.Handler {
	if h.opts.PublishRate <= 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	window := h.opts.PublishWindow
	if window <= 0 {
		window = time.Second
	}
	l := httprate.NewRateLimiter(h.opts.PublishRate, window,
		httprate.WithKeyFuncs(func(r *http.Request) (string, error) {
			return h.publisherKey(r), nil
		}),
		httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
			skipBody(w, r)
			h.metrics.publishErrors.WithLabelValues(publishRateLimited).Inc()
			// httprate sets Retry-After to the window in whole seconds: at
			// least 1, so that a sub-second window is not read as "now".
			if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 {
				w.Header().Set("Retry-After", "1")
			}
			writeError(w, http.StatusTooManyRequests,
				fmt.Sprintf("publish rate over %d per %s: retry after %ss", h.opts.PublishRate, window, w.Header().Get("Retry-After")))
		}),
		httprate.WithErrorHandler(func(w http.ResponseWriter, r *http.Request, err error) {
			// The in-memory counter never fails; should it, publish.
			h.log.Error("publish rate limit", "err", err)
			writeError(w, http.StatusInternalServerError, "rate limit failed")
		}),
	)
	return l.Handler
}

// bodyDeadline bounds the time a publisher has to send its body: a client
// that trickles it would otherwise hold one of MaxPublishes slots for as
// long as it likes. Reading past it fails, and the publish gets 400. Call
// the returned function with the result of reading the body: a body read
// whole lifts the deadline (waiting for a peer's ack is not the client's
// slowness); after a failed read it stays, so that net/http, which reads
// what is left of a body before answering, does not wait for the
// trickler either.
func (h *Handler) bodyDeadline(w http.ResponseWriter) (bodyRead func(error)) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(h.opts.ReadBodyTimeout))
	return func(err error) {
		if err == nil {
			_ = rc.SetReadDeadline(time.Time{})
		}
	}
}

// parsePrefixes parses Options.TrustedProxies: CIDR prefixes or single
// addresses.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			ip, ierr := netip.ParseAddr(s)
			if ierr != nil {
				return nil, fmt.Errorf("trusted proxy %q: want a CIDR prefix like 10.0.0.0/8 or an address", clip(s))
			}
			p = netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
