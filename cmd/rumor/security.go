package main

// The security settings of `rumor serve`: token authentication, CORS, TLS
// and the limits that protect a node from hostile or broken clients.
// SECURITY.md explains the threat model; docs/AUTH.md the tokens.

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rumorhq/rumor/web"
)

// SecurityConfig is the part of Config that decides who may do what and
// how much: one field per flag, like the rest of Config.
type SecurityConfig struct {
	AuthHMACSecret      string // HS256 secret, as text
	AuthHMACSecretFile  string // a file holding the HS256 secret
	AuthPublicKey       string // a PEM file: RSA (RS256), EC P-256 (ES256) or Ed25519 (EdDSA) public key
	AuthJWKS            string // a JWKS file
	AuthAudience        string
	AuthIssuer          string
	AuthLeeway          time.Duration
	AuthCookie          string
	AuthQueryToken      bool
	PublicChannels      []string
	CORSOrigins         []string
	TLSCert             string
	TLSKey              string
	MaxHeaderBytes      int64
	ReadHeaderTimeout   time.Duration
	ReadBodyTimeout     time.Duration
	IdleTimeout         time.Duration
	MaxStreamsPerClient int // 0: no limit
	PublishRate         string
	TrustedProxies      []string
}

// securityOptions are the flags of SecurityConfig, after the others in the
// help and the README's table.
func securityOptions() []option {
	return []option{
		{"auth-hmac-secret", "string", "", "turns auth on: HS256 secret (32 bytes or more) that publisher and subscriber JWTs are signed with; prefer --auth-hmac-secret-file", setString(func(c *Config) *string { return &c.AuthHMACSecret })},
		{"auth-hmac-secret-file", "path", "", "turns auth on: file holding the HS256 secret (instead of --auth-hmac-secret)", setString(func(c *Config) *string { return &c.AuthHMACSecretFile })},
		{"auth-public-key", "path", "", "turns auth on: PEM file of the RSA (RS256), EC P-256 (ES256) or Ed25519 (EdDSA) public key JWTs are verified with", setString(func(c *Config) *string { return &c.AuthPublicKey })},
		{"auth-jwks", "path", "", "turns auth on: JWKS file of RS256, ES256 and EdDSA keys, chosen by the token's kid", setString(func(c *Config) *string { return &c.AuthJWKS })},
		{"auth-audience", "string", "", "when set, a token's aud must contain it", setString(func(c *Config) *string { return &c.AuthAudience })},
		{"auth-issuer", "string", "", "when set, a token's iss must equal it", setString(func(c *Config) *string { return &c.AuthIssuer })},
		{"auth-leeway", "duration", "5s", "clock skew tolerated on a token's exp and nbf", setDuration(func(c *Config) *time.Duration { return &c.AuthLeeway })},
		{"auth-cookie", "string", web.DefaultAuthCookie, "cookie a browser's token may travel in (EventSource cannot set headers)", setString(func(c *Config) *string { return &c.AuthCookie })},
		{"auth-query-token", "bool", "false", "also accept the token as ?token= (URLs end up in logs)", setBool(func(c *Config) *bool { return &c.AuthQueryToken })},
		{"public-channels", "list", "", "comma-separated channel patterns anyone may subscribe to without a token when auth is on", setList(func(c *Config) *[]string { return &c.PublicChannels })},
		{"cors-origins", "list", "", "comma-separated origins browsers may call from, with credentials (https://app.example.com); * allows any origin without credentials", setList(func(c *Config) *[]string { return &c.CORSOrigins })},
		{"tls-cert", "path", "", "PEM certificate chain: serve HTTPS and HTTP/2 (with --tls-key)", setString(func(c *Config) *string { return &c.TLSCert })},
		{"tls-key", "path", "", "PEM private key of --tls-cert", setString(func(c *Config) *string { return &c.TLSKey })},
		{"max-header-bytes", "size", "64KiB", "largest request header; larger requests get 431", setSize(func(c *Config) *int64 { return &c.MaxHeaderBytes })},
		{"read-header-timeout", "duration", "10s", "time a client has to send its request headers (cuts slowloris clients)", setDuration(func(c *Config) *time.Duration { return &c.ReadHeaderTimeout })},
		{"read-body-timeout", "duration", "30s", "time a publisher has to send its body; a trickled body gets 400", setDuration(func(c *Config) *time.Duration { return &c.ReadBodyTimeout })},
		{"idle-timeout", "duration", "2m", "how long an idle keep-alive connection stays open", setDuration(func(c *Config) *time.Duration { return &c.IdleTimeout })},
		{"max-streams-per-client", "int", "100", "concurrent SSE streams per client address; 0 means no limit", setInt(func(c *Config) *int { return &c.MaxStreamsPerClient })},
		{"publish-rate", "rate", "", "publishes per token (or client address without one), like 100/s, 6000/m or 10/500ms; over it 429", setString(func(c *Config) *string { return &c.PublishRate })},
		{"trusted-proxies", "list", "", "comma-separated CIDRs of proxies whose X-Forwarded-For names the client for the per-client limits", setList(func(c *Config) *[]string { return &c.TrustedProxies })},
	}
}

// validateSecurity is Validate's part for SecurityConfig: every problem.
func (c *Config) validateSecurity() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, err := c.authenticator(); err != nil {
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
				bad("%s is set but auth is off: set --auth-hmac-secret-file, --auth-public-key or --auth-jwks", s.name)
			}
		}
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
	if _, err := c.tlsConfig(); err != nil {
		errs = append(errs, err)
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
	return c.AuthHMACSecret != "" || c.AuthHMACSecretFile != "" || c.AuthPublicKey != "" || c.AuthJWKS != ""
}

// authenticator builds the web Authenticator from the auth flags, nil when
// auth is off. Key files are read here; errors never echo a secret.
func (c *Config) authenticator() (*web.Authenticator, error) {
	if !c.authOn() {
		return nil, nil
	}
	var sources []string
	for _, s := range []struct{ name, v string }{
		{"--auth-hmac-secret", c.AuthHMACSecret},
		{"--auth-hmac-secret-file", c.AuthHMACSecretFile},
		{"--auth-public-key", c.AuthPublicKey},
		{"--auth-jwks", c.AuthJWKS},
	} {
		if s.v != "" {
			sources = append(sources, s.name)
		}
	}
	if len(sources) > 1 {
		return nil, fmt.Errorf("%s are set: use exactly one", strings.Join(sources, " and "))
	}
	ac := web.AuthConfig{
		Audience:   c.AuthAudience,
		Issuer:     c.AuthIssuer,
		Leeway:     max(c.AuthLeeway, 0),
		Cookie:     c.AuthCookie,
		QueryToken: c.AuthQueryToken,
		Public:     c.PublicChannels,
	}
	from := sources[0]
	switch {
	case c.AuthHMACSecret != "":
		ac.HMACSecret = []byte(c.AuthHMACSecret)
	case c.AuthHMACSecretFile != "":
		b, err := os.ReadFile(c.AuthHMACSecretFile)
		if err != nil {
			return nil, fmt.Errorf("--auth-hmac-secret-file: %w", err)
		}
		// A trailing newline from an editor or `echo` is not part of it.
		ac.HMACSecret = []byte(strings.TrimRight(string(b), "\r\n"))
		from += " " + c.AuthHMACSecretFile
	case c.AuthPublicKey != "":
		b, err := os.ReadFile(c.AuthPublicKey)
		if err != nil {
			return nil, fmt.Errorf("--auth-public-key: %w", err)
		}
		ac.PublicKeyPEM = b
		from += " " + c.AuthPublicKey
	default:
		b, err := os.ReadFile(c.AuthJWKS)
		if err != nil {
			return nil, fmt.Errorf("--auth-jwks: %w", err)
		}
		ac.JWKS = b
		from += " " + c.AuthJWKS
	}
	a, err := web.NewAuthenticator(ac)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return a, nil
}

// tlsConfig loads --tls-cert and --tls-key; nil when TLS is off. TLS 1.2
// is the minimum; the cipher suites are Go's defaults, which offer only
// AEAD suites with forward secrecy for TLS 1.2 and all of TLS 1.3's.
func (c *Config) tlsConfig() (*tls.Config, error) {
	switch {
	case c.TLSCert == "" && c.TLSKey == "":
		return nil, nil
	case c.TLSCert == "" || c.TLSKey == "":
		return nil, errors.New("--tls-cert and --tls-key go together: set both or neither")
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", c.TLSCert, c.TLSKey, err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}, nil
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
// passed Validate.
func (c *Config) applySecurity(wo *web.Options) error {
	a, err := c.authenticator()
	if err != nil {
		return err
	}
	wo.Auth = a
	wo.CORSOrigins = c.CORSOrigins
	wo.MaxStreamsPerClient = c.MaxStreamsPerClient // 0: none, which is also web's zero
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
	if c.AuthQueryToken {
		log.Warn("tokens are accepted in URLs (--auth-query-token): they end up in proxy and access logs")
	}
	if c.authOn() && c.TLSCert == "" {
		log.Info("tokens travel in clear text unless a proxy in front terminates TLS; set --tls-cert and --tls-key to serve HTTPS")
	}
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
