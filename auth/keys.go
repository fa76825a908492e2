package auth

// Rotation of the keys tokens are verified with. Identity providers rotate
// their JWKS, Kubernetes rewrites a mounted Secret in place (a new file
// behind a swapped symlink), operators rotate HMAC secrets: rumor takes the
// new keys without a restart and without ending a stream.
//
// A key file is checked at most every FileCheck: its path is stat'ed (so a
// swapped symlink is followed), and read and hashed only when its
// modification time or size moved. A JWKS URL is fetched every JWKSRefresh
// and, at most once per JWKSMinRefetch, at once for a token whose kid it
// does not know. Checks are started by the requests that verify tokens,
// one at a time: the request that finds a check due makes it (a file's
// stat, or the fetch for an unknown kid it needs) or starts it in the
// background (the periodic fetch, which no request waits for), and the
// others go on with the current keys. So an idle node checks nothing,
// which costs nothing since it verifies nothing either; Close stops a
// background fetch. Keys that fail to load (a file that does not
// parse, an identity provider that is down or answers garbage) never
// replace good ones: the last good keys stay, and the failure is logged and
// counted in rumor_auth_key_reloads_total{result="error"}.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rumorhq/rumor/watch"
)

// Defaults of the Config fields that schedule key checks.
const (
	defaultFileCheck      = 5 * time.Second
	defaultJWKSRefresh    = 5 * time.Minute
	defaultJWKSMinRefetch = 30 * time.Second
	jwksFetchTimeout      = 10 * time.Second
	maxKeyBytes           = 1 << 20 // a key file or a JWKS document
)

// The key sources that rotate, as rumor_auth_key_reloads_total's source
// label names them.
const (
	sourceHMACFile      = "hmac_secret_file"
	sourcePublicKeyFile = "public_key_file"
	sourceJWKSFile      = "jwks_file"
	sourceJWKSURL       = "jwks_url"
)

// Results of a reload, for rumor_auth_key_reloads_total.
const (
	reloadOK    = "ok"
	reloadError = "error"
)

// keyState is one generation of keys. It never changes once built: a
// rotation swaps in a new one.
type keyState struct {
	parser  *jwt.Parser // allows exactly the algorithms of these keys
	lax     *jwt.Parser // the same algorithms, without the claim checks a face does itself (VerifyToken)
	keyfunc jwt.Keyfunc
	methods []string // the algorithms the keys verify, for Methods and error messages
	jwks    *JWKS    // the set, for a JWKS source
	hash    [32]byte // of the JWKS document fetched from a URL (a file's is kept by its Files)
}

// keyring holds an Authenticator's current keys and renews them from their
// source.
type keyring struct {
	cur atomic.Pointer[keyState]
	due atomic.Int64 // Unix nanoseconds when the source is next checked; MaxInt64 for keys that never change

	source     string                          // a source label; "" for keys given as bytes
	path       string                          // the key file
	url        string                          // the JWKS URL
	parse      func([]byte) (*keyState, error) // the source's bytes to keys
	every      time.Duration                   // FileCheck or JWKSRefresh
	minRefetch time.Duration                   // JWKSMinRefetch
	client     *http.Client                    // fetches url
	now        func() time.Time                // Config.Now
	log        *slog.Logger                    // component=auth
	reloads    *prometheus.CounterVec          // rumor_auth_key_reloads_total

	refreshing atomic.Bool     // a periodic JWKS fetch runs in the background
	bg         sync.WaitGroup  // that fetch; Close waits for it
	ctx        context.Context // ends with Close
	cancel     context.CancelFunc

	mu      sync.Mutex   // one check or fetch at a time; guards the fields below
	files   *watch.Files // path's content
	fetched time.Time    // the last fetch of url, good or bad
}

// newKeyring builds a's keys from the one key source c sets and reads a
// key file now; a JWKS URL starts without keys.
func (a *Authenticator) newKeyring(c Config) (*keyring, error) {
	k := &keyring{
		now:        a.now,
		log:        cmp.Or(c.Logger, slog.New(slog.DiscardHandler)).With("component", "auth"),
		minRefetch: cmp.Or(c.JWKSMinRefetch, defaultJWKSMinRefetch),
		client:     c.HTTPClient,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rumor_auth_key_reloads_total",
			Help: "Token verification keys loaded again after their file changed, and fetches of the JWKS URL, by source and result (ok, or error: the last good keys stay).",
		}, []string{"source", "result"}),
	}
	k.ctx, k.cancel = context.WithCancel(context.Background())
	k.due.Store(math.MaxInt64)
	// An Authenticator that failed to build is never used, but its keys
	// must not be nil for the error paths that read them. An empty, not
	// nil, list of algorithms: jwt reads nil as "any".
	k.cur.Store(a.keyState([]string{}, func(*jwt.Token) (any, error) { return nil, errors.New("no key") }, nil))

	var names []string
	for _, s := range []struct {
		name string
		set  bool
	}{
		{"the HMAC secret", len(c.HMACSecret) > 0},
		{"the public key", len(c.PublicKeyPEM) > 0},
		{"the JWKS", len(c.JWKS) > 0},
		{"the HMAC secret file", c.HMACSecretFile != ""},
		{"the public key file", c.PublicKeyFile != ""},
		{"the JWKS file", c.JWKSFile != ""},
		{"the JWKS URL", c.JWKSURL != ""},
	} {
		if s.set {
			names = append(names, s.name)
		}
	}
	if len(names) == 0 {
		return k, errors.New("auth: no key: set an HMAC secret, a public key or a JWKS")
	}
	if len(names) > 1 {
		return k, fmt.Errorf("auth: more than one key source (%s): set exactly one", strings.Join(names, ", "))
	}
	if c.FileCheck < 0 || c.JWKSRefresh < 0 || c.JWKSMinRefetch < 0 {
		return k, errors.New("auth: key check intervals must not be negative")
	}

	var st *keyState
	var err error
	switch {
	case len(c.HMACSecret) > 0:
		st, err = a.hmacKeys(c.HMACSecret)
	case len(c.PublicKeyPEM) > 0:
		st, err = a.publicKeys(c.PublicKeyPEM)
	case len(c.JWKS) > 0:
		st, err = a.jwksKeys(c.JWKS, false)
	case c.JWKSURL != "":
		if err := checkJWKSURL(c.JWKSURL); err != nil {
			return k, fmt.Errorf("auth JWKS URL: %w", err)
		}
		k.source, k.url = sourceJWKSURL, c.JWKSURL
		k.every = cmp.Or(c.JWKSRefresh, defaultJWKSRefresh)
		k.parse = func(b []byte) (*keyState, error) { return a.jwksKeys(b, true) }
		if k.client == nil {
			k.client = &http.Client{Timeout: jwksFetchTimeout}
		}
		// No keys until the first fetch; the empty set's parser lets the
		// first token through to the lookup, which fetches.
		k.cur.Store(a.jwksState(&JWKS{keys: map[string]jwksKey{}}, true))
		k.reloads.WithLabelValues(k.source, reloadOK)
		k.reloads.WithLabelValues(k.source, reloadError)
		k.due.Store(0)
		return k, nil
	default:
		k.every = cmp.Or(c.FileCheck, defaultFileCheck)
		switch {
		case c.HMACSecretFile != "":
			k.source, k.path = sourceHMACFile, c.HMACSecretFile
			// A trailing newline from an editor or `echo` is not part of it.
			k.parse = func(b []byte) (*keyState, error) { return a.hmacKeys(bytes.TrimRight(b, "\r\n")) }
		case c.PublicKeyFile != "":
			k.source, k.path = sourcePublicKeyFile, c.PublicKeyFile
			k.parse = a.publicKeys
		default:
			k.source, k.path = sourceJWKSFile, c.JWKSFile
			k.parse = func(b []byte) (*keyState, error) { return a.jwksKeys(b, false) }
		}
		k.reloads.WithLabelValues(k.source, reloadOK)
		k.reloads.WithLabelValues(k.source, reloadError)
		k.files = watch.NewFiles(maxKeyBytes, k.path)
		b, sum, err := k.files.Read()
		if err != nil {
			return k, fmt.Errorf("auth key file: %w", err)
		}
		if st, err = k.parse(b[0]); err != nil {
			return k, err
		}
		k.files.Take(sum)
		k.cur.Store(st)
		k.schedule(k.every)
		return k, nil
	}
	if err != nil {
		return k, err
	}
	k.cur.Store(st)
	return k, nil
}

// Collectors returns the Authenticator's metrics for the caller to
// register: rumor_auth_key_reloads_total when its keys come from a file or
// a URL, nothing for keys that never change.
func (a *Authenticator) Collectors() []prometheus.Collector {
	if a.keys.source == "" {
		return nil
	}
	return []prometheus.Collector{a.keys.reloads}
}

// current returns the keys to verify with now.
func (k *keyring) current() *keyState { return k.cur.Load() }

// schedule sets the next check d from now.
func (k *keyring) schedule(d time.Duration) { k.due.Store(k.now().Add(d).UnixNano()) }

// renew checks the source if a check is due and no other request is
// making one. It costs an atomic load when nothing is due. A key file is
// checked on the request's path (a stat); a JWKS URL is fetched in the
// background, so that no request waits for the identity provider: the
// request goes on with the current keys, as every other one does.
func (k *keyring) renew() {
	if k.now().UnixNano() < k.due.Load() {
		return
	}
	if k.url != "" {
		if k.ctx.Err() != nil || !k.refreshing.CompareAndSwap(false, true) {
			return
		}
		k.bg.Add(1)
		go func() {
			defer k.bg.Done()
			defer k.refreshing.Store(false)
			k.mu.Lock()
			defer k.mu.Unlock()
			if k.now().UnixNano() >= k.due.Load() { // not fetched meanwhile
				k.fetch(k.ctx) // failures are logged and counted there
			}
		}()
		return
	}
	if !k.mu.TryLock() {
		return
	}
	defer k.mu.Unlock()
	if k.now().UnixNano() < k.due.Load() {
		return // another request checked meanwhile
	}
	k.checkFile(false)
	k.schedule(k.every)
}

// close stops a background fetch and waits for it.
func (k *keyring) close() {
	k.cancel()
	k.bg.Wait()
}

// Reload checks the key file or fetches the JWKS URL now, whatever the
// schedule, and returns why the keys could not be loaded; the last good
// keys stay then. For keys given as bytes it does nothing. cmd/rumor calls
// it at start, so that a JWKS URL that does not work stops rumor.
func (a *Authenticator) Reload(ctx context.Context) error {
	k := a.keys
	if k.source == "" {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.url != "" {
		return k.fetch(ctx)
	}
	err := k.checkFile(true)
	k.schedule(k.every)
	return err
}

// checkFile reads the key file again if its stat moved (or always, with
// force) and takes its keys if its content changed. mu is held.
func (k *keyring) checkFile(force bool) error {
	b, sum, err := k.files.Check(force)
	if err != nil {
		return k.fileFailed(err.Error(), err)
	}
	if b == nil {
		return nil
	}
	st, err := k.parse(b[0])
	if err != nil {
		return k.fileFailed(hex.EncodeToString(sum[:]), err)
	}
	k.files.Take(sum)
	k.reloads.WithLabelValues(k.source, reloadOK).Inc()
	k.swap(st, "file", k.path)
	return nil
}

// fileFailed reports a key file that could not be loaded, once for each
// thing it saw (an error, or content that does not parse), and returns err.
func (k *keyring) fileFailed(saw string, err error) error {
	if k.files.Failed(saw) {
		k.reloads.WithLabelValues(k.source, reloadError).Inc()
		k.log.Warn("auth key reload failed: keeping the last good keys", "source", k.source, "file", k.path, "err", err)
	}
	return err
}

// fetch gets the JWKS from url and keeps it if it parses. mu is held.
func (k *keyring) fetch(ctx context.Context) error {
	k.fetched = k.now()
	st, err := k.get(ctx)
	if err != nil {
		// Try again after the short interval, not the long one: a token
		// signed with a new key may be waiting.
		k.schedule(k.minRefetch)
		k.reloads.WithLabelValues(k.source, reloadError).Inc()
		k.log.Warn("auth JWKS fetch failed: keeping the last good keys", "url", redact(k.url), "err", err,
			"keys", k.current().jwks.Len())
		return err
	}
	k.schedule(k.every)
	k.reloads.WithLabelValues(k.source, reloadOK).Inc()
	if st.hash == k.current().hash {
		k.log.Debug("auth JWKS unchanged", "url", redact(k.url))
		return nil
	}
	k.swap(st, "url", redact(k.url))
	return nil
}

// get fetches and parses the JWKS.
func (k *keyring) get(ctx context.Context) (*keyState, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // so the connection can be reused
		return nil, fmt.Errorf("GET %s: %s", redact(k.url), resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", redact(k.url), err)
	}
	if len(b) > maxKeyBytes {
		return nil, fmt.Errorf("GET %s: JWKS larger than %d bytes", redact(k.url), maxKeyBytes)
	}
	st, err := k.parse(b)
	if err != nil {
		return nil, err
	}
	st.hash = sha256.Sum256(b)
	return st, nil
}

// swap makes st the current keys and says so.
func (k *keyring) swap(st *keyState, from, where string) {
	k.cur.Store(st)
	attrs := []any{"source", k.source, from, where, "algorithms", strings.Join(st.methods, ",")}
	if st.jwks != nil {
		attrs = append(attrs, "kids", strings.Join(st.jwks.kids(), ","))
	}
	k.log.Info("auth keys reloaded", attrs...)
}

// jwksKeyfunc finds a token's key in the current JWKS. A token whose kid
// the set does not know makes a JWKS URL be fetched at once (the identity
// provider may have just rotated), unless a fetch happened less than
// JWKSMinRefetch ago: made-up kids cost one fetch per interval at most.
func (a *Authenticator) jwksKeyfunc(t *jwt.Token) (any, error) {
	k := a.keys
	key, err := k.current().jwks.lookup(t)
	if k.url == "" || !unknownKid(k.current().jwks, t) {
		return key, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	// Another request may have fetched the kid while this one waited.
	if unknownKid(k.current().jwks, t) && (k.fetched.IsZero() || k.now().Sub(k.fetched) >= k.minRefetch) {
		k.fetch(context.Background())
	}
	return k.current().jwks.lookup(t)
}

// unknownKid reports whether the set has no key for the token's kid.
func unknownKid(s *JWKS, t *jwt.Token) bool {
	kid, _ := t.Header["kid"].(string)
	_, ok := s.keys[kid]
	return !ok
}

// kids returns the set's key ids, sorted.
func (s *JWKS) kids() []string {
	out := make([]string, 0, len(s.keys))
	for kid := range s.keys {
		out = append(out, clip(kid))
	}
	slices.Sort(out)
	return out
}

// checkJWKSURL accepts https URLs, and http ones only on loopback: keys
// fetched in clear could be replaced by anyone on the path.
func checkJWKSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Host == "" {
		return fmt.Errorf("%s: want https://HOST/PATH", redact(s))
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("%s: want https (keys fetched over plain http could be replaced on the way); http is only for loopback", redact(s))
	default:
		return fmt.Errorf("%s: want https://HOST/PATH", redact(s))
	}
}

// redact hides a password in a URL.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Redacted()
}
