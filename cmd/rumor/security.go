package main

// The security settings of `rumor serve`: token authentication, CORS, TLS
// and the limits that protect a node from hostile or broken clients.
// SECURITY.md explains the threat model; docs/AUTH.md the tokens.

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/watch"
	"github.com/rumorhq/rumor/web"
)

// SecurityConfig is the part of Config that decides who may do what and
// how much: one field per flag, like the rest of Config.
type SecurityConfig struct {
	AuthHMACSecret        string // HS256 secret, as text
	AuthHMACSecretFile    string // a file holding the HS256 secret
	AuthPublicKey         string // a PEM file: RSA (RS256), EC P-256 (ES256) or Ed25519 (EdDSA) public key
	AuthJWKS              string // a JWKS file
	AuthJWKSURL           string // an https URL serving the JWKS
	AuthJWKSRefresh       time.Duration
	AuthAudience          string
	AuthIssuer            string
	AuthLeeway            time.Duration
	AuthCookie            string
	AuthQueryToken        bool
	PublicChannels        []string
	CORSOrigins           []string
	TLSCert               string
	TLSKey                string
	PeerTLSServerName     string
	MaxHeaderBytes        int64
	ReadHeaderTimeout     time.Duration
	ReadBodyTimeout       time.Duration
	IdleTimeout           time.Duration
	MaxStreamsPerClient   int // 0: no limit
	MaxPublishesPerClient int // 0: no limit
	PublishRate           string
	TrustedProxies        []string
}

// securityOptions are the flags of SecurityConfig, after the others in the
// help and the README's table.
func securityOptions() []option {
	return []option{
		{"auth-hmac-secret", "string", "", "turns auth on: HS256 secret (32 bytes or more) that publisher and subscriber JWTs are signed with; prefer --auth-hmac-secret-file", setString(func(c *Config) *string { return &c.AuthHMACSecret })},
		{"auth-hmac-secret-file", "path", "", "turns auth on: file holding the HS256 secret (instead of --auth-hmac-secret)", setString(func(c *Config) *string { return &c.AuthHMACSecretFile })},
		{"auth-public-key", "path", "", "turns auth on: PEM file of the RSA (RS256), EC P-256 (ES256) or Ed25519 (EdDSA) public key JWTs are verified with", setString(func(c *Config) *string { return &c.AuthPublicKey })},
		{"auth-jwks", "path", "", "turns auth on: JWKS file of RS256, ES256 and EdDSA keys, chosen by the token's kid", setString(func(c *Config) *string { return &c.AuthJWKS })},
		{"auth-jwks-url", "url", "", "turns auth on: https URL of the identity provider's JWKS, fetched at start, every --auth-jwks-refresh and for a token with an unknown kid", setString(func(c *Config) *string { return &c.AuthJWKSURL })},
		{"auth-jwks-refresh", "duration", "5m", "how often --auth-jwks-url is fetched again (an unknown kid fetches at once, at most every 30s)", setDuration(func(c *Config) *time.Duration { return &c.AuthJWKSRefresh })},
		{"auth-audience", "string", "", "when set, a token's aud must contain it", setString(func(c *Config) *string { return &c.AuthAudience })},
		{"auth-issuer", "string", "", "when set, a token's iss must equal it", setString(func(c *Config) *string { return &c.AuthIssuer })},
		{"auth-leeway", "duration", "5s", "clock skew tolerated on a token's exp and nbf", setDuration(func(c *Config) *time.Duration { return &c.AuthLeeway })},
		{"auth-cookie", "string", auth.DefaultCookie, "cookie a browser's token may travel in (EventSource cannot set headers)", setString(func(c *Config) *string { return &c.AuthCookie })},
		{"auth-query-token", "bool", "false", "also accept the token as ?token= (URLs end up in logs)", setBool(func(c *Config) *bool { return &c.AuthQueryToken })},
		{"public-channels", "list", "", "comma-separated channel patterns anyone may subscribe to without a token when auth is on", setList(func(c *Config) *[]string { return &c.PublicChannels })},
		{"cors-origins", "list", "", "comma-separated origins browsers may call from, with credentials (https://app.example.com); * allows any origin without credentials", setList(func(c *Config) *[]string { return &c.CORSOrigins })},
		{"tls-cert", "path", "", "PEM certificate chain: serve HTTPS and HTTP/2 (with --tls-key)", setString(func(c *Config) *string { return &c.TLSCert })},
		{"tls-key", "path", "", "PEM private key of --tls-cert", setString(func(c *Config) *string { return &c.TLSKey })},
		{"peer-tls-server-name", "name", "", "with TLS, the name to verify on the peers' certificates when the UI's cluster view asks them (they are reached at their advertised addresses, often pod IPs no certificate names); empty means the address", setString(func(c *Config) *string { return &c.PeerTLSServerName })},
		{"max-header-bytes", "size", "64KiB", "largest request header; larger requests get 431", setSize(func(c *Config) *int64 { return &c.MaxHeaderBytes })},
		{"read-header-timeout", "duration", "10s", "time a client has to send its request headers (cuts slowloris clients)", setDuration(func(c *Config) *time.Duration { return &c.ReadHeaderTimeout })},
		{"read-body-timeout", "duration", "30s", "time a publisher has to send its body; a trickled body gets 400", setDuration(func(c *Config) *time.Duration { return &c.ReadBodyTimeout })},
		{"idle-timeout", "duration", "2m", "how long an idle keep-alive connection stays open", setDuration(func(c *Config) *time.Duration { return &c.IdleTimeout })},
		{"max-streams-per-client", "int", "100", "concurrent SSE streams per client address; 0 means no limit", setInt(func(c *Config) *int { return &c.MaxStreamsPerClient })},
		{"max-publishes-per-client", "int", "256", "publishes in flight per token, or per client address without one (429 + Retry-After over it), so that one client holding bodies open cannot take every --max-publishes slot; 0 means no limit", setInt(func(c *Config) *int { return &c.MaxPublishesPerClient })},
		{"publish-rate", "rate", "", "publishes per token (or client address without one), like 100/s, 6000/m or 10/500ms; over it 429", setString(func(c *Config) *string { return &c.PublishRate })},
		{"trusted-proxies", "list", "", "comma-separated CIDRs of proxies whose X-Forwarded-For names the client for the per-client limits", setList(func(c *Config) *[]string { return &c.TrustedProxies })},
	}
}

// validateSecurity is Validate's part for SecurityConfig: every problem.
func (c *Config) validateSecurity() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, err := c.authenticator(nil, nil); err != nil {
		errs = append(errs, err)
	}
	if !c.authOn() {
		for _, s := range []struct {
			name string
			set  bool
		}{
			{"--auth-audience", c.AuthAudience != ""},
			{"--auth-issuer", c.AuthIssuer != ""},
			{"--auth-query-token", c.AuthQueryToken},
			{"--public-channels", len(c.PublicChannels) > 0},
		} {
			if s.set {
				bad("%s is set but auth is off: set --auth-hmac-secret-file, --auth-public-key, --auth-jwks or --auth-jwks-url", s.name)
			}
		}
	}
	if c.AuthJWKSRefresh < 10*time.Second || c.AuthJWKSRefresh > 24*time.Hour {
		bad("--auth-jwks-refresh %v: want 10s to 24h", c.AuthJWKSRefresh)
	}
	if c.AuthLeeway < 0 || c.AuthLeeway > 5*time.Minute {
		bad("--auth-leeway %v: want 0 to 5m", c.AuthLeeway)
	}
	for _, o := range c.CORSOrigins {
		if o != "*" {
			if _, err := web.CanonicalOrigin(o); err != nil {
				bad("--cors-origins: %v", err)
			}
		}
	}
	if _, err := c.tlsConfig(nil, nil); err != nil {
		errs = append(errs, err)
	}
	if c.PeerTLSServerName != "" && c.TLSCert == "" {
		bad("--peer-tls-server-name is set but TLS is off: set --tls-cert and --tls-key")
	}
	if c.MaxHeaderBytes < 1<<10 || c.MaxHeaderBytes > 1<<20 {
		bad("--max-header-bytes %d: want 1KiB to 1MiB", c.MaxHeaderBytes)
	}
	if c.ReadHeaderTimeout <= 0 {
		bad("--read-header-timeout must be positive")
	}
	if c.ReadBodyTimeout <= 0 {
		bad("--read-body-timeout must be positive")
	}
	if c.IdleTimeout <= 0 {
		bad("--idle-timeout must be positive")
	}
	if c.MaxPublishesPerClient < 0 {
		bad("--max-publishes-per-client %d: must not be negative (0 means no limit)", c.MaxPublishesPerClient)
	}
	if c.MaxStreamsPerClient < 0 {
		bad("--max-streams-per-client %d: must not be negative (0 means no limit)", c.MaxStreamsPerClient)
	}
	if _, _, err := parseRate(c.PublishRate); err != nil {
		bad("--publish-rate %q: %v", c.PublishRate, err)
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				bad("--trusted-proxies %q: want a CIDR like 10.0.0.0/8 or an address", p)
			}
		}
	}
	return errors.Join(errs...)
}

// authOn reports whether a key is configured, which turns auth on.
func (c *Config) authOn() bool {
	return c.AuthHMACSecret != "" || c.AuthHMACSecretFile != "" || c.AuthPublicKey != "" || c.AuthJWKS != "" || c.AuthJWKSURL != ""
}

// authenticator builds the Authenticator from the auth flags, nil when
// auth is off. Key files are read here, and watched from then on: a
// rotated key is taken without a restart (auth/keys.go). A JWKS URL is not
// fetched here (Validate calls this too): applySecurity fetches it. Errors
// never echo a secret. log hears about key reloads; nil discards. revs are
// the tokens revoked by admins, nil for none.
func (c *Config) authenticator(log *slog.Logger, revs *auth.Revocations) (*auth.Authenticator, error) {
	if !c.authOn() {
		return nil, nil
	}
	var sources []string
	for _, s := range []struct{ name, v string }{
		{"--auth-hmac-secret", c.AuthHMACSecret},
		{"--auth-hmac-secret-file", c.AuthHMACSecretFile},
		{"--auth-public-key", c.AuthPublicKey},
		{"--auth-jwks", c.AuthJWKS},
		{"--auth-jwks-url", c.AuthJWKSURL},
	} {
		if s.v != "" {
			sources = append(sources, s.name)
		}
	}
	if len(sources) > 1 {
		return nil, fmt.Errorf("%s are set: use exactly one", strings.Join(sources, " and "))
	}
	ac := auth.Config{
		Audience:    c.AuthAudience,
		Issuer:      c.AuthIssuer,
		Leeway:      max(c.AuthLeeway, 0),
		Cookie:      c.AuthCookie,
		QueryToken:  c.AuthQueryToken,
		Public:      c.PublicChannels,
		JWKSRefresh: max(c.AuthJWKSRefresh, 0),
		Logger:      log,
		Revocations: revs,
	}
	from := sources[0]
	switch {
	case c.AuthHMACSecret != "":
		ac.HMACSecret = []byte(c.AuthHMACSecret)
	case c.AuthHMACSecretFile != "":
		ac.HMACSecretFile = c.AuthHMACSecretFile // a trailing newline is not part of it
		from += " " + c.AuthHMACSecretFile
	case c.AuthPublicKey != "":
		ac.PublicKeyFile = c.AuthPublicKey
		from += " " + c.AuthPublicKey
	case c.AuthJWKS != "":
		ac.JWKSFile = c.AuthJWKS
		from += " " + c.AuthJWKS
	default:
		ac.JWKSURL = c.AuthJWKSURL // web says what is wrong with it, password hidden
	}
	a, err := auth.New(ac)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return a, nil
}

// certCheckEvery is how often, at most, a TLS handshake checks whether
// --tls-cert or --tls-key changed.
const certCheckEvery = 5 * time.Second

// tlsConfig loads --tls-cert and --tls-key; nil when TLS is off. TLS 1.2
// is the minimum; the cipher suites are Go's defaults, which offer only
// AEAD suites with forward secrecy for TLS 1.2 and all of TLS 1.3's. The
// certificate comes from GetCertificate, which reads the files again when
// they change (cert-manager renewing a Secret): new connections get the
// new certificate, open ones keep theirs. log hears about reloads and reg
// gets their metrics; Validate passes nil for both.
func (c *Config) tlsConfig(log *slog.Logger, reg prometheus.Registerer) (*tls.Config, error) {
	switch {
	case c.TLSCert == "" && c.TLSKey == "":
		return nil, nil
	case c.TLSCert == "" || c.TLSKey == "":
		return nil, errors.New("--tls-cert and --tls-key go together: set both or neither")
	}
	cert, err := loadCertificate(c.TLSCert, c.TLSKey, certCheckEvery, time.Now, log)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", c.TLSCert, c.TLSKey, err)
	}
	if reg != nil {
		reg.MustRegister(cert.collectors()...)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Not Certificates: with it, a client that sends no server name
		// (one that dials an IP address) would get the first certificate
		// for good.
		GetCertificate: cert.get,
	}, nil
}

// certificate is the TLS certificate a node serves, kept fresh from its
// files. Like the auth keys (auth/keys.go), it is checked on the path of the
// handshakes, at most every every, one handshake at a time: no goroutine.
// A pair that does not load (a key that does not match the new
// certificate, because one file was replaced before the other) keeps the
// last good certificate, and is tried again once either file changes.
type certificate struct {
	certFile, keyFile string
	every             time.Duration
	now               func() time.Time
	log               *slog.Logger
	reloads           *prometheus.CounterVec // rumor_tls_cert_reloads_total{result}

	cur atomic.Pointer[tls.Certificate]
	due atomic.Int64 // Unix nanoseconds of the next check

	mu    sync.Mutex   // one check at a time; guards files
	files *watch.Files // the certificate and key files
}

func loadCertificate(certFile, keyFile string, every time.Duration, now func() time.Time, log *slog.Logger) (*certificate, error) {
	c := &certificate{
		certFile: certFile,
		keyFile:  keyFile,
		every:    every,
		now:      now,
		log:      cmp.Or(log, slog.New(slog.DiscardHandler)).With("component", "tls"),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rumor_tls_cert_reloads_total",
			Help: "TLS certificates loaded again after --tls-cert or --tls-key changed, by result (ok, or error: the last good certificate stays).",
		}, []string{"result"}),
	}
	c.reloads.WithLabelValues("ok")
	c.reloads.WithLabelValues("error")
	c.files = watch.NewFiles(1<<20, certFile, keyFile)
	pems, sum, err := c.files.Read()
	if err != nil {
		return nil, err
	}
	cert, err := parsePair(pems)
	if err != nil {
		return nil, err
	}
	c.files.Take(sum)
	c.cur.Store(cert)
	c.due.Store(now().Add(every).UnixNano())
	return c, nil
}

// get is tls.Config.GetCertificate.
func (c *certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.renew()
	return c.cur.Load(), nil
}

// renew checks the files if a check is due and no other handshake is
// making one.
func (c *certificate) renew() {
	if c.now().UnixNano() < c.due.Load() || !c.mu.TryLock() {
		return
	}
	defer c.mu.Unlock()
	defer c.due.Store(c.now().Add(c.every).UnixNano())
	pems, sum, err := c.files.Check(false)
	if err != nil {
		c.fail(err.Error(), err)
		return
	}
	if pems == nil {
		return
	}
	cert, err := parsePair(pems)
	if err != nil {
		c.fail(hex.EncodeToString(sum[:]), err)
		return
	}
	c.files.Take(sum)
	c.cur.Store(cert)
	c.reloads.WithLabelValues("ok").Inc()
	c.log.Info("tls certificate reloaded", "cert", c.certFile, "serial", cert.Leaf.SerialNumber.String(),
		"subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
}

// parsePair parses a certificate chain and its key.
func parsePair(pems [][]byte) (*tls.Certificate, error) {
	pair, err := tls.X509KeyPair(pems[0], pems[1])
	if err != nil {
		return nil, err
	}
	if pair.Leaf == nil { // GODEBUG=x509keypairleaf=0
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &pair, nil
}

// fail reports a pair that could not be loaded, once for each thing it saw.
func (c *certificate) fail(saw string, err error) {
	if !c.files.Failed(saw) {
		return
	}
	c.reloads.WithLabelValues("error").Inc()
	c.log.Warn("tls certificate reload failed: keeping the last good certificate", "cert", c.certFile, "key", c.keyFile, "err", err)
}

// collectors are the certificate's metrics: reloads, and when the served
// certificate expires, to alert on a renewal that did not happen.
func (c *certificate) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		c.reloads,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rumor_tls_cert_expiry_timestamp_seconds",
			Help: "When the TLS certificate this node serves expires (its NotAfter), in Unix seconds.",
		}, func() float64 { return float64(c.cur.Load().Leaf.NotAfter.Unix()) }),
	}
}

// parseRate reads --publish-rate: "N/UNIT" with UNIT s, m, h or a
// duration ("100/s", "6000/m", "10/500ms"); empty, "0" or "off" mean no
// limit (0, 0).
func parseRate(s string) (n int, per time.Duration, err error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" || strings.EqualFold(s, "off") {
		return 0, 0, nil
	}
	count, unit, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, errors.New("want N/UNIT, like 100/s, 6000/m or 10/500ms")
	}
	n, err = strconv.Atoi(strings.TrimSpace(count))
	if err != nil || n <= 0 {
		return 0, 0, errors.New("the count must be a positive integer")
	}
	switch unit = strings.TrimSpace(unit); unit {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		per, err = time.ParseDuration(unit)
		if err != nil || per < 10*time.Millisecond || per > 24*time.Hour {
			return 0, 0, errors.New("the unit must be s, m, h or a duration from 10ms to 24h")
		}
	}
	return n, per, nil
}

// applySecurity puts the security settings into the web options. cfg has
// passed Validate. A JWKS URL is fetched here, so that one that does not
// work stops rumor at start rather than refusing every token.
func (c *Config) applySecurity(ctx context.Context, wo *web.Options) error {
	a, err := c.authenticator(wo.Logger, wo.Revocations)
	if err != nil {
		return err
	}
	if c.AuthJWKSURL != "" {
		if err := a.Reload(ctx); err != nil {
			return fmt.Errorf("--auth-jwks-url: %w", err)
		}
	}
	wo.Auth = a
	wo.CORSOrigins = c.CORSOrigins
	wo.MaxStreamsPerClient = c.MaxStreamsPerClient // 0: none, which is also web's zero
	wo.MaxPublishesPerClient = c.MaxPublishesPerClient
	wo.PublishRate, wo.PublishWindow, err = parseRate(c.PublishRate)
	wo.TrustedProxies = c.TrustedProxies
	wo.ReadBodyTimeout = c.ReadBodyTimeout
	return err
}

// logSecurity says at start what protects this node, and warns about
// settings that leave it open.
func (c *Config) logSecurity(log *slog.Logger) {
	attrs := []any{"auth", c.authOn(), "tls", c.TLSCert != "", "cors_origins", len(c.CORSOrigins),
		"max_streams_per_client", c.MaxStreamsPerClient, "publish_rate", c.PublishRate}
	log.Info("security", attrs...)
	if !c.authOn() && !loopback(c.HTTPAddr) {
		log.Warn("AUTH IS OFF: anyone who reaches the HTTP port can publish to and subscribe to every channel; set --auth-hmac-secret-file, --auth-public-key or --auth-jwks",
			"http", c.HTTPAddr)
	}
	if c.authOn() && c.AdminAddr == "" && !loopback(c.HTTPAddr) {
		log.Warn("the read-only views are public: channel names (this node's and, through /cluster/channels, every node's), members, /metrics and the UI answer on the HTTP port without a token; set --admin-addr to move them to a port only operators and peers reach",
			"http", c.HTTPAddr)
	}
	if c.pprofPublic() {
		log.Warn("--pprof serves /debug/pprof/ (profiles, goroutine stacks) on the HTTP port: set --admin-addr to move it off the public port")
	}
	if c.AuthQueryToken {
		log.Warn("tokens are accepted in URLs (--auth-query-token): they end up in proxy and access logs")
	}
	if c.authOn() && c.TLSCert == "" {
		log.Info("tokens travel in clear text unless a proxy in front terminates TLS; set --tls-cert and --tls-key to serve HTTPS")
	}
}

// pprofPublic reports whether /debug/pprof is served on a port that is not
// loopback-only and not the admin listener.
func (c *Config) pprofPublic() bool {
	return c.Pprof && c.AdminAddr == "" && !loopback(c.HTTPAddr)
}

// loopback reports whether a listen address only takes local connections.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
