package main

// The Mercure face's settings (--mercure*): docs/MERCURE.md maps each
// directive of the Mercure hub to them; web/mercure.go serves the face.

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/web"
)

// MercureConfig is the part of Config that turns on and configures the
// Mercure face: one field per flag.
type MercureConfig struct {
	Mercure                  bool
	MercurePublisherKey      string // HMAC secret, PEM public key or JWKS, as text
	MercurePublisherKeyFile  string // a file holding one of them, watched for rotation
	MercureSubscriberKey     string
	MercureSubscriberKeyFile string
	MercureAnonymous         bool
	MercureCORSOrigins       []string
	MercurePublishOrigins    []string
	MercureSubscriptions     bool
	MercureTokens            []string // 0.x, 1.0
	MercureRequireExp        bool
	MercureAudience          string
	MercureIssuer            string
	MercureCookie            string
	MercurePublicURL         string
}

// mercureOptions are the flags of MercureConfig, after the security flags
// in the help and the README's table.
func mercureOptions() []option {
	return []option{
		{"mercure", "bool", "false", "serve the Mercure protocol (0.x and 1.0) at /.well-known/mercure, beside /channels (docs/MERCURE.md)", setBool(func(c *Config) *bool { return &c.Mercure })},
		{"mercure-publisher-key", "string", "", "Mercure publishers' JWT key: an HS256 secret (32 bytes or more), a PEM public key (RS256, ES256, EdDSA) or a JWKS; prefer --mercure-publisher-key-file", setString(func(c *Config) *string { return &c.MercurePublisherKey })},
		{"mercure-publisher-key-file", "path", "", "file holding the Mercure publishers' key (any form of --mercure-publisher-key), read again when it changes", setString(func(c *Config) *string { return &c.MercurePublisherKeyFile })},
		{"mercure-subscriber-key", "string", "", "Mercure subscribers' JWT key, same forms; required unless --mercure-anonymous (give the publisher's key again to use one key)", setString(func(c *Config) *string { return &c.MercureSubscriberKey })},
		{"mercure-subscriber-key-file", "path", "", "file holding the Mercure subscribers' key", setString(func(c *Config) *string { return &c.MercureSubscriberKeyFile })},
		{"mercure-anonymous", "bool", "false", "Mercure subscribers without a token are served (public updates only)", setBool(func(c *Config) *bool { return &c.MercureAnonymous })},
		{"mercure-cors-origins", "list", "", "comma-separated origins whose pages may subscribe to the Mercure face, with credentials; * allows any origin without credentials", setList(func(c *Config) *[]string { return &c.MercureCORSOrigins })},
		{"mercure-publish-origins", "list", "", "comma-separated origins whose pages may publish with the cookie's token (checked against Origin or Referer); * allows any", setList(func(c *Config) *[]string { return &c.MercurePublishOrigins })},
		{"mercure-subscriptions", "bool", "false", "Mercure subscription events and the cluster-wide /.well-known/mercure/subscriptions API", setBool(func(c *Config) *bool { return &c.MercureSubscriptions })},
		{"mercure-tokens", "list", "0.x,1.0", "Mercure token forms accepted: 0.x (a mercure claim) and 1.0 (OAuth access token: typ at+jwt, aud, authorization_details)", setList(func(c *Config) *[]string { return &c.MercureTokens })},
		{"mercure-require-exp", "bool", "false", "refuse 0.x Mercure tokens without exp (1.0 access tokens always need exp)", setBool(func(c *Config) *bool { return &c.MercureRequireExp })},
		{"mercure-audience", "string", "", "the hub's resource identifier, which a 1.0 access token's aud must hold (like https://example.com/.well-known/mercure); empty refuses 1.0 access tokens", setString(func(c *Config) *string { return &c.MercureAudience })},
		{"mercure-issuer", "string", "", "when set, a 1.0 access token's iss must equal it", setString(func(c *Config) *string { return &c.MercureIssuer })},
		{"mercure-cookie", "string", web.DefaultMercureCookie, "cookie a browser's Mercure token travels in; mercureAccessToken and __Secure-mercure_access_token are read too", setString(func(c *Config) *string { return &c.MercureCookie })},
		{"mercure-public-url", "url", "", "the hub's public URL (https://example.com/.well-known/mercure), which relative topics and URL patterns resolve against; empty means the request's own", setString(func(c *Config) *string { return &c.MercurePublicURL })},
	}
}

// validateMercure is Validate's part for MercureConfig: every problem.
func (c *Config) validateMercure() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !c.Mercure {
		for _, s := range []struct {
			name string
			set  bool
		}{
			{"--mercure-publisher-key", c.MercurePublisherKey != ""},
			{"--mercure-publisher-key-file", c.MercurePublisherKeyFile != ""},
			{"--mercure-subscriber-key", c.MercureSubscriberKey != ""},
			{"--mercure-subscriber-key-file", c.MercureSubscriberKeyFile != ""},
			{"--mercure-anonymous", c.MercureAnonymous},
			{"--mercure-subscriptions", c.MercureSubscriptions},
		} {
			if s.set {
				bad("%s is set but the Mercure face is off: add --mercure", s.name)
			}
		}
		return errors.Join(errs...)
	}
	if _, _, err := c.mercureAuth(nil, nil); err != nil {
		errs = append(errs, err)
	}
	claims, access, err := c.mercureTokenForms()
	if err != nil {
		errs = append(errs, err)
	}
	if access && !claims && c.MercureAudience == "" {
		bad("--mercure-tokens=1.0 needs --mercure-audience: the hub's resource identifier, which tokens' aud must hold")
	}
	for _, list := range []struct {
		name    string
		origins []string
	}{{"--mercure-cors-origins", c.MercureCORSOrigins}, {"--mercure-publish-origins", c.MercurePublishOrigins}} {
		for _, o := range list.origins {
			if o != "*" {
				if _, err := web.CanonicalOrigin(o); err != nil {
					bad("%s: %v", list.name, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// mercureTokenForms reads --mercure-tokens.
func (c *Config) mercureTokenForms() (claims, access bool, err error) {
	for _, f := range c.MercureTokens {
		switch strings.TrimSpace(f) {
		case "0.x":
			claims = true
		case "1.0":
			access = true
		default:
			return false, false, fmt.Errorf("--mercure-tokens %q: want 0.x, 1.0 or both", f)
		}
	}
	if !claims && !access {
		return false, false, errors.New("--mercure-tokens: name 0.x, 1.0 or both")
	}
	return claims, access, nil
}

// mercureAuth builds the publishers' and the subscribers' Authenticators.
// As the reference hub, a publisher key is required, and a subscriber key
// unless anonymous subscribers are allowed.
func (c *Config) mercureAuth(log *slog.Logger, revs *auth.Revocations) (pub, sub *auth.Authenticator, err error) {
	var errs []error
	pub, err = mercureKey("publisher", c.MercurePublisherKey, c.MercurePublisherKeyFile, c.AuthLeeway, log, revs)
	if err != nil {
		errs = append(errs, err)
	} else if pub == nil {
		errs = append(errs, errors.New("--mercure needs --mercure-publisher-key-file or --mercure-publisher-key: Mercure publishers always need a token"))
	}
	sub, err = mercureKey("subscriber", c.MercureSubscriberKey, c.MercureSubscriberKeyFile, c.AuthLeeway, log, revs)
	if err != nil {
		errs = append(errs, err)
	} else if sub == nil && !c.MercureAnonymous {
		errs = append(errs, errors.New("--mercure needs --mercure-subscriber-key-file or --mercure-subscriber-key, or --mercure-anonymous"))
	}
	return pub, sub, errors.Join(errs...)
}

// mercureKey builds one role's Authenticator from its key, given as text
// or as a file: a PEM public key, a JWKS (JSON) or else an HS256 secret.
// A file's form is read once to choose; its content is then watched.
func mercureKey(role, text, file string, leeway time.Duration, log *slog.Logger, revs *auth.Revocations) (*auth.Authenticator, error) {
	flag := "--mercure-" + role + "-key"
	switch {
	case text != "" && file != "":
		return nil, fmt.Errorf("%s and %s-file are set: use one", flag, flag)
	case text == "" && file == "":
		return nil, nil
	}
	ac := auth.Config{Logger: log, Revocations: revs, Leeway: max(leeway, 0)}
	from := flag
	if file != "" {
		from += "-file " + file
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", from, err)
		}
		switch keyForm(b) {
		case "pem":
			ac.PublicKeyFile = file
		case "jwks":
			ac.JWKSFile = file
		default:
			ac.HMACSecretFile = file
		}
	} else {
		switch keyForm([]byte(text)) {
		case "pem":
			ac.PublicKeyPEM = []byte(text)
		case "jwks":
			ac.JWKS = []byte(text)
		default:
			ac.HMACSecret = []byte(text)
		}
	}
	a, err := auth.New(ac)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return a, nil
}

// keyForm tells a PEM public key and a JWKS from an HMAC secret.
func keyForm(b []byte) string {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.HasPrefix(b, []byte("-----BEGIN")):
		return "pem"
	case bytes.HasPrefix(b, []byte("{")) && bytes.Contains(b, []byte(`"keys"`)):
		return "jwks"
	}
	return "hmac"
}

// applyMercure puts the Mercure face into the web options; cfg has passed
// Validate. It returns the Authenticators, which the node closes.
func (c *Config) applyMercure(wo *web.Options) (closers []*auth.Authenticator, err error) {
	if !c.Mercure {
		return nil, nil
	}
	pub, sub, err := c.mercureAuth(wo.Logger, wo.Revocations)
	if err != nil {
		return nil, err
	}
	claims, access, err := c.mercureTokenForms()
	if err != nil {
		return nil, err
	}
	wo.Mercure = &web.MercureOptions{
		Publisher:      pub,
		Subscriber:     sub,
		Anonymous:      c.MercureAnonymous,
		CORSOrigins:    c.MercureCORSOrigins,
		PublishOrigins: c.MercurePublishOrigins,
		Subscriptions:  c.MercureSubscriptions,
		Claims:         claims,
		AccessTokens:   access,
		RequireExp:     c.MercureRequireExp,
		Audience:       c.MercureAudience,
		Issuer:         c.MercureIssuer,
		Cookie:         c.MercureCookie,
		PublicURL:      c.MercurePublicURL,
		MaxSelectors:   max(c.MaxPatterns, 128),
	}
	if d, ok := wo.Presence.(web.MercureDirectory); ok && c.MercureSubscriptions {
		wo.Mercure.Directory = d // built with Records: node.go
	}
	if wo.Logger != nil {
		wo.Logger.Info("mercure", "path", web.MercurePath, "anonymous", c.MercureAnonymous, "subscriptions", c.MercureSubscriptions,
			"tokens", strings.Join(c.MercureTokens, ","), "require_exp", c.MercureRequireExp, "audience", c.MercureAudience)
		if access && c.MercureAudience == "" {
			wo.Logger.Warn("1.0 access tokens are refused until --mercure-audience names this hub's resource identifier")
		}
	}
	for _, a := range []*auth.Authenticator{pub, sub} {
		if a != nil {
			closers = append(closers, a)
		}
	}
	return closers, nil
}
