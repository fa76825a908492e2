package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/broker"
	"github.com/rumorhq/rumor/presence"
	"github.com/rumorhq/rumor/transport"
	"github.com/rumorhq/rumor/web"
)

// node is one running rumor node: a hub, its HTTP face and, when gossip is
// enabled, its cluster membership. serve runs one, dev several.
type node struct {
	cfg     Config
	log     *slog.Logger
	hub     *broker.Hub
	dir     *presence.Directory
	cluster *transport.Cluster // nil for a single node
	web     *web.Handler
	auth    *auth.Authenticator   // nil without auth
	mercure []*auth.Authenticator // the Mercure face's keys: mercure.go
	public  *listener
	admin   *listener  // nil without --admin-addr
	failed  chan error // a server that stopped by itself
}

// listener is one of a node's HTTP servers: the public one (API and
// streams) and, with --admin-addr, the admin one.
type listener struct {
	ln     net.Listener
	srv    *http.Server
	url    string     // base URL with the real port
	served chan error // Serve's result
}

// nodeOptions are what the caller of startNode decides beyond Config.
type nodeOptions struct {
	local bool // memberlist's loopback timings (rumor dev)
}

// startNode builds and starts a node in the order its parts depend on each
// other: the HTTP listener (so the advertised HTTP address has its real
// port), the cluster (the hub's relay), the hub, the cluster's start (it
// needs the hub), the HTTP handler, and then serving. On error, whatever
// was started is stopped again.
func startNode(ctx context.Context, cfg Config, log *slog.Logger, o nodeOptions) (_ *node, err error) {
	key, err := cfg.gossipKey()
	if err != nil {
		return nil, err
	}
	ack, err := parseAck(cfg.Ack)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry() // web adds the Go and process collectors
	// The certificate follows its files; reg counts the reloads.
	tlsConf, err := cfg.tlsConfig(log, reg)
	if err != nil {
		return nil, err
	}
	origin := broker.NewOrigin()

	n := &node{cfg: cfg, log: log, failed: make(chan error, 2)}
	defer func() {
		if err != nil {
			n.abort()
		}
	}()
	if n.public, err = listen(cfg.HTTPAddr, tlsConf); err != nil {
		return nil, err
	}
	var adminAddr string // advertised, so that peers find the views
	if cfg.AdminAddr != "" {
		if n.admin, err = listen(cfg.AdminAddr, tlsConf); err != nil {
			return nil, err
		}
		adminAddr = advertisedHTTP(n.admin.ln.Addr(), cfg)
	}
	ln := n.public.ln

	// Tokens revoked and streams kicked by admins: every node holds the
	// whole table, which the cluster's push/pull carries (transport/state.go).
	var revs *auth.Revocations
	if cfg.authOn() {
		revs = auth.NewRevocations(auth.RevocationOptions{})
	}
	var state transport.State
	if revs != nil {
		state = revs
	}
	var relay broker.Relay
	if cfg.GossipAddr != "" {
		if key == nil {
			log.Warn("GOSSIP IS NOT ENCRYPTED: anyone who can reach the gossip port can join this cluster and read or inject events; set --gossip-key or --gossip-key-file",
				"gossip", cfg.GossipAddr)
		}
		n.cluster, err = transport.New(transport.Config{
			NodeName:       cfg.NodeName,
			BindAddr:       cfg.GossipAddr,
			AdvertiseAddr:  cfg.AdvertiseAddr,
			HTTPAddr:       advertisedHTTP(ln.Addr(), cfg),
			AdminAddr:      adminAddr,
			Join:           cfg.Join,
			RejoinInterval: cfg.RejoinInterval,
			JoinTimeout:    cfg.JoinTimeout,
			Label:          cfg.ClusterLabel,
			Key:            key,
			Origin:         origin,
			Local:          o.local,
			MaxStrangers:   cfg.MaxStrangers,
			StrangerBytes:  cfg.StrangerBytes,
			State:          state,
			Registerer:     reg,
			Logger:         log,
		})
		if err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		relay = n.cluster
	}
	n.hub = broker.NewHub(broker.Options{
		Origin:       origin,
		HistorySize:  cfg.historySize(),
		HistoryTTL:   cfg.HistoryTTL,
		HistoryBytes: cfg.HistoryBytes,
		QueueSize:    cfg.QueueSize,
		QueueBytes:   cfg.QueueBytes,
		Relay:        relay,
		Logger:       log.With("component", "broker"),
	})
	// Presence follows its reserved channels from before the cluster
	// starts, so that catch-up brings it every member's census.
	po := presence.Options{Hub: n.hub, Grace: cfg.PresenceGrace, Logger: log,
		Remember: max(15*time.Minute, cfg.HistoryTTL+time.Minute)} // past anything history's catch-up may bring
	// The Mercure subscriptions API lists every node's subscriptions from
	// the directory's records (mercure.go).
	po.Records = cfg.Mercure && cfg.MercureSubscriptions
	if n.cluster != nil {
		po.Members = n.cluster
	}
	if cfg.Presence {
		if n.dir, err = presence.New(po); err != nil {
			return nil, err
		}
	}
	wo := web.Options{
		Hub:           n.hub,
		Presence:      webPresence(n.dir),
		NodeName:      cfg.NodeName,
		HTTPAddr:      advertisedHTTP(ln.Addr(), cfg),
		AdminAddr:     adminAddr,
		Heartbeat:     cfg.Heartbeat,
		Coalesce:      cmp.Or(cfg.Coalesce, -1), // web: 0 is the default, negative is off
		MaxEventBytes: cfg.MaxEventBytes,
		MaxBatch:      cfg.MaxBatch,
		MaxPublishes:  cfg.MaxPublishes,
		MaxStreams:    cfg.MaxStreams,
		MaxPatterns:   cfg.MaxPatterns,
		DefaultAck:    ack,
		Registry:      reg,
		Logger:        log,
		Version:       version(),
		Revocations:   revs,
	}
	if err := cfg.applySecurity(ctx, &wo); err != nil {
		return nil, err
	}
	n.auth = wo.Auth
	if n.mercure, err = cfg.applyMercure(&wo); err != nil {
		return nil, err
	}
	if tlsConf != nil {
		wo.PeerTLS = peerTLS(tlsConf, cfg.PeerTLSServerName)
	}
	cfg.logSecurity(log)
	if n.cluster != nil {
		if err := n.cluster.Start(ctx, n.hub); err != nil {
			n.cluster = nil // Start cleans up after itself
			return nil, fmt.Errorf("cluster: %w", err)
		}
		wo.Cluster = members{n.cluster}
		wo.Spread = n.cluster.Spread
		wo.Ready = n.cluster.Ready
		wo.NodeName = n.cluster.Self()
	}
	if n.web, err = web.NewHandler(wo); err != nil {
		return nil, err
	}

	// pprof goes where the views go: the admin listener when there is one.
	var public, admin http.Handler = n.web, nil
	if n.admin != nil {
		admin = n.web.Admin()
	}
	if cfg.Pprof && n.admin != nil {
		admin = withPprof(admin, os.Args)
	} else if cfg.Pprof {
		public = withPprof(public, os.Args)
	}
	n.public.serve(public, cfg, log, n.failed)
	attrs := []any{"addr", ln.Addr().String(), "url", n.public.url, "node", wo.NodeName}
	if n.admin != nil {
		n.admin.serve(admin, cfg, log, n.failed)
		attrs = append(attrs, "admin_url", n.admin.url)
	}
	if n.cluster != nil {
		attrs = append(attrs, "gossip", n.cluster.GossipAddr())
	}
	log.Info("listening", attrs...)
	return n, nil
}

// listen opens addr for a server that serves TLS when tlsConf is set.
func listen(addr string, tlsConf *tls.Config) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	scheme := "http://"
	if tlsConf != nil {
		scheme = "https://"
	}
	return &listener{
		ln:     ln,
		srv:    &http.Server{TLSConfig: tlsConf}, // with it, ServeTLS offers HTTP/2: many streams share one connection
		url:    scheme + dialable(ln.Addr()),
		served: make(chan error, 1),
	}, nil
}

// serve starts serving h on l. If the server stops by itself, its error
// also goes to failed.
func (l *listener) serve(h http.Handler, cfg Config, log *slog.Logger, failed chan<- error) {
	l.srv.Handler = h
	l.srv.ReadHeaderTimeout = cfg.ReadHeaderTimeout // slowloris clients are cut after it
	l.srv.MaxHeaderBytes = int(cfg.MaxHeaderBytes)
	l.srv.IdleTimeout = cfg.IdleTimeout
	// No WriteTimeout: it would cut every stream. Streams set their own
	// write deadlines.
	l.srv.ErrorLog = slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelWarn)
	go func() {
		var err error
		if l.srv.TLSConfig != nil {
			err = l.srv.ServeTLS(l.ln, "", "") // the certificate is in TLSConfig
		} else {
			err = l.srv.Serve(l.ln)
		}
		l.served <- err
		if !errors.Is(err, http.ErrServerClosed) {
			failed <- fmt.Errorf("%s: %w", l.url, err)
		}
	}()
}

// shutdown stops l's server: idle connections close, requests in flight
// finish; whatever is still open when ctx ends is cut.
func (l *listener) shutdown(ctx context.Context) []error {
	var errs []error
	if err := l.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		l.srv.Close()
	}
	if err := <-l.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("http: %w", err))
	}
	return errs
}

// URL is the node's public HTTP base URL, with the real port.
func (n *node) URL() string { return n.public.url }

// AdminURL is the admin listener's base URL, or "" without one.
func (n *node) AdminURL() string {
	if n.admin == nil {
		return ""
	}
	return n.admin.url
}

// Done receives a server's error if one stops by itself.
func (n *node) Done() <-chan error { return n.failed }

// shutdown stops the node in the reverse order of start, so that no event
// a publisher was told is stored gets lost and every client is told to
// come back elsewhere. Each step waits at most until ctx ends (the caller
// sets --drain-timeout on it); the steps that release resources run even
// after that.
func (n *node) shutdown(ctx context.Context) error {
	var errs []error
	// Readiness off and stop taking publishes: load balancers stop sending
	// traffic here, publishers get 503 and go elsewhere.
	n.web.Drain()
	// Flush the outbound relays: every event published here reaches the
	// peers before the streams that could resume elsewhere end.
	if n.cluster != nil {
		if err := n.cluster.Flush(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	// End the streams with a jittered retry:, so clients reconnect (to
	// another node) and resume with Last-Event-ID.
	if err := n.web.CloseStreams(ctx); err != nil {
		errs = append(errs, fmt.Errorf("close streams: %w", err))
	}
	// Leave, so peers see a leave rather than a death, then stop gossip and
	// the relays.
	if n.cluster != nil {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaveTimeout(ctx))
		if err := n.cluster.Leave(lctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
		if err := n.cluster.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("cluster shutdown: %w", err))
		}
	}
	// Stop the HTTP servers: idle connections close, requests in flight
	// finish; whatever is still open when ctx ends is cut.
	errs = append(errs, n.public.shutdown(ctx)...)
	if n.admin != nil {
		errs = append(errs, n.admin.shutdown(ctx)...)
	}
	// Last, presence, the hub and the key refresher: nothing publishes,
	// subscribes or verifies a token any more.
	if n.dir != nil {
		n.dir.Close()
	}
	n.hub.Close()
	n.auth.Close()
	for _, a := range n.mercure {
		a.Close()
	}
	return errors.Join(errs...)
}

// abort undoes a startNode that failed half-way.
func (n *node) abort() {
	if n.cluster != nil {
		n.cluster.Shutdown()
	}
	if n.dir != nil {
		n.dir.Close()
	}
	if n.hub != nil {
		n.hub.Close()
	}
	n.auth.Close()
	for _, a := range n.mercure {
		a.Close()
	}
	for _, l := range []*listener{n.public, n.admin} {
		if l != nil {
			l.ln.Close()
		}
	}
}

// leaveTimeout is how long Leave may wait: what is left of ctx, at least a
// moment so that peers hear about it.
func leaveTimeout(ctx context.Context) time.Duration {
	d := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl))
	}
	return max(d, 100*time.Millisecond)
}

// members adapts the cluster to what web needs; web and transport never
// import each other.
type members struct{ c *transport.Cluster }

var (
	_ web.Cluster      = members{}
	_ web.LinkReporter = members{}
	_ transport.State  = (*auth.Revocations)(nil)
)

func (m members) Self() string             { return m.c.Self() }
func (m members) Changes() <-chan struct{} { return m.c.Changes() }
func (m members) Members() []web.Member {
	ms := m.c.Members()
	out := make([]web.Member, len(ms))
	for i, tm := range ms {
		out[i] = web.Member{Name: tm.Name, Addr: tm.Addr, HTTP: tm.HTTP, Admin: tm.Admin, State: tm.State, Self: tm.Self}
	}
	return out
}

// Links reports the relay links for the UI's link matrix.
func (m members) Links() []web.Link {
	ls := m.c.Links()
	out := make([]web.Link, len(ls))
	for i, l := range ls {
		out[i] = web.Link{Peer: l.Peer, Up: l.Up, Queued: l.Queued, Unacked: l.Unacked, Oldest: l.Oldest.Seconds(), LastAck: l.LastAck.Seconds()}
	}
	return out
}

// withPprof serves net/http/pprof at /debug/pprof/ in front of h; the
// command line, args, with secrets redacted (pprof.go).
func withPprof(h http.Handler, args []string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", cmdline(args))
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/", h)
	return mux
}

// advertisedHTTP is the host:port other nodes and UIs reach this node's
// HTTP API at: the listener's port with its host if it is a specific
// address, else the advertise address's host, else the gossip address's.
// With none of them specific the host stays empty.
func advertisedHTTP(addr net.Addr, cfg Config) string {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		return net.JoinHostPort(host, port)
	}
	for _, a := range []string{cfg.AdvertiseAddr, cfg.GossipAddr} {
		h := a
		if hh, _, err := net.SplitHostPort(a); err == nil {
			h = hh
		}
		if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) {
			return net.JoinHostPort(h, port)
		}
	}
	return net.JoinHostPort("", port)
}

// dialable turns a listener's address into one a local client can dial:
// an unspecified host (":8080", "[::]:8080") becomes localhost.
func dialable(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// peerTLS is how a node that serves TLS reaches its peers' HTTP APIs (the
// UI's cluster view): the system's roots plus this node's own certificate
// at start, so a cluster that shares one self-signed certificate works too.
// The peers' certificates must name serverName, or without it the peers'
// advertised addresses.
func peerTLS(own *tls.Config, serverName string) *tls.Config {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	certs := append([]tls.Certificate(nil), own.Certificates...)
	if own.GetCertificate != nil {
		if c, err := own.GetCertificate(&tls.ClientHelloInfo{}); err == nil && c != nil {
			certs = append(certs, *c)
		}
	}
	for _, c := range certs {
		for _, der := range c.Certificate {
			if cert, err := x509.ParseCertificate(der); err == nil {
				pool.AddCert(cert)
			}
		}
	}
	return &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
}

// webPresence is dir as web's Presence: nil (no presence) without one, not
// an interface holding a nil pointer.
func webPresence(dir *presence.Directory) web.Presence {
	if dir == nil {
		return nil
	}
	return dir
}
