// Package mercure holds what rumor's Mercure face decides without HTTP:
// topic selectors of both protocol generations and what a token's claims
// grant. The HTTP handlers are in package web (web/mercure*.go); this
// package knows neither requests nor the broker, so that its matching can
// be tested and fuzzed on its own.
//
// Two generations of the protocol are spoken side by side, as the
// reference hub's compatibility mode does:
//
//   - 0.x (hub v0.24, draft-dunglas-mercure-07): a topic selector is "*", an
//     exact string, or an RFC 6570 URI template ("https://example.com/books/{id}").
//   - 1.0 (draft-dunglas-mercure-08, hub v1.0.0-alpha): a topic matcher has a
//     type, Exact (byte-for-byte) or URLPattern (WHATWG URL Pattern,
//     "https://example.com/books/:id"); "*" matches every topic whatever the
//     type.
//
// Compiled selectors are shared through a bounded Cache, so that thousands
// of subscribers asking for the same template compile it once.
package mercure

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/dunglas/go-urlpattern"
	"github.com/yosida95/uritemplate/v3"
)

// Kind is how a selector matches topics.
type Kind uint8

const (
	// Template is the 0.x topic selector: "*", an exact string, or an RFC
	// 6570 URI template (any selector holding a "{"). A selector with a
	// "{" that is not a valid template matches only itself, as in the
	// reference hub.
	Template Kind = iota
	// Exact is 1.0's Exact matcher type: a byte-for-byte comparison.
	Exact
	// URLPattern is 1.0's URLPattern matcher type: a WHATWG URL Pattern,
	// absolute or relative to the hub's URL.
	URLPattern
)

// String returns the kind's canonical name: the 1.0 matcher type name
// (Exact, URLPattern), or "topic" for the 0.x selector.
func (k Kind) String() string {
	switch k {
	case Exact:
		return "Exact"
	case URLPattern:
		return "URLPattern"
	default:
		return "topic"
	}
}

// Limits that keep hostile selectors and topics cheap.
const (
	MaxSelectorLen = 2048 // bytes in a selector
	MaxTopicLen    = 2048 // bytes in a topic
)

// ErrBadSelector reports a selector that cannot be compiled.
var ErrBadSelector = errors.New("invalid topic selector")

// ErrBadTopic reports a topic that breaks the protocol's character rules.
var ErrBadTopic = errors.New("invalid topic")

// Selector is a compiled topic selector. It is immutable and safe for
// concurrent use.
type Selector struct {
	kind Kind
	text string
	all  bool                   // "*"
	tmpl *regexp.Regexp         // Template with a "{": the template's expression
	fast *fastTemplate          // Template: the same, matched without the regexp, when it is simple
	lit  [2]string              // Template: the literal text before its first and after its last expression, which a match starts and ends with
	pat  *urlpattern.URLPattern // URLPattern
	base string                 // URLPattern: the hub's URL, for relative topics
	pre  prefilter              // URLPattern: cheap refusals of absolute topics
	fpat *fastPattern           // URLPattern: the same, matched without parsing plain topics, when it is simple

	// last is the latest topic matched against a template or pattern, and
	// the answer: one update goes to every subscriber sharing this
	// compiled selector (the Cache shares them) one after the other, so
	// the topic is parsed and matched once per update, not per subscriber.
	last atomic.Pointer[memo]
}

type memo struct {
	topic string
	ok    bool
}

// Kind returns how s matches.
func (s *Selector) Kind() Kind { return s.kind }

// String returns the selector as written.
func (s *Selector) String() string { return s.text }

// All reports whether s is the wildcard "*".
func (s *Selector) All() bool { return s.all }

// Literal reports whether s matches exactly one topic, its own text.
func (s *Selector) Literal() bool { return !s.all && s.tmpl == nil && s.pat == nil }

// Compile compiles a selector of kind k. base is the hub's URL
// ("https://example.com/.well-known/mercure"), which relative URL patterns
// and relative topics are resolved against; it matters only to URLPattern.
// A selector must be valid UTF-8 without control characters and at most
// MaxSelectorLen bytes.
func Compile(k Kind, text, base string) (*Selector, error) {
	if err := checkText(text, MaxSelectorLen); err != nil {
		return nil, fmt.Errorf("%w %q: %s", ErrBadSelector, clip(text), err)
	}
	s := &Selector{kind: k, text: text, all: text == "*"}
	if s.all {
		return s, nil
	}
	switch k {
	case Template:
		if strings.Contains(text, "{") {
			// The reference hub treats a selector that does not parse
			// as a template as a plain string: so does rumor.
			if s.tmpl = compileTemplate(text); s.tmpl != nil {
				s.lit[0] = text[:strings.IndexByte(text, '{')]
				s.lit[1] = text[strings.LastIndexByte(text, '}')+1:]
				s.fast = newFastTemplate(text)
			}
		}
	case Exact:
	case URLPattern:
		if base == "" {
			base = "https://localhost/.well-known/mercure"
		}
		p, err := compilePattern(text, base)
		if err != nil {
			return nil, fmt.Errorf("%w %q: not a URL pattern: %v", ErrBadSelector, clip(text), err)
		}
		s.pat, s.base, s.pre, s.fpat = p, base, newPrefilter(p), newFastPattern(p)
	default:
		return nil, fmt.Errorf("%w: unknown kind %d", ErrBadSelector, k)
	}
	return s, nil
}

// Index keys: a subscription offered updates by key (the broker's
// Hub.Index) must hold a key of every topic it can match. A literal
// selector's key is its topic. A URI template whose literal start reaches
// past the first path segment ("https://example.com/books/{id}") has the
// key of that start; a topic has its own text and that key of its own, so
// a template can only match topics that share its key. The key of a start
// begins with a control byte, which no topic holds.
const (
	prefixMark  = "\x1f"
	prefixSlash = 4 // "scheme://host/segment/": the start up to the fourth '/'
)

// Key returns the index key of s, and false for a selector that must be
// offered every topic ("*", URL patterns, templates without a long enough
// literal start).
func (s *Selector) Key() (string, bool) {
	switch {
	case s.all || s.pat != nil:
		return "", false
	case s.tmpl == nil:
		return s.text, true
	}
	if p, ok := startKey(s.lit[0]); ok {
		return p, true
	}
	return "", false
}

// TopicKeys appends the index keys of topic to dst: the topic itself, and
// the key of its start when it has one.
func TopicKeys(dst []string, topic string) []string {
	if !slices.Contains(dst, topic) {
		dst = append(dst, topic)
	}
	if p, ok := startKey(topic); ok && !slices.Contains(dst, p) {
		dst = append(dst, p)
	}
	return dst
}

// startKey returns the key of s's start up to its prefixSlash-th '/'.
func startKey(s string) (string, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			if n++; n == prefixSlash {
				return prefixMark + s[:i+1], true
			}
		}
	}
	return "", false
}

// compileTemplate returns the RE2 expression of an RFC 6570 template, or
// nil when text is not one.
func compileTemplate(text string) (re *regexp.Regexp) {
	defer func() {
		if recover() != nil {
			re = nil
		}
	}()
	t, err := uritemplate.New(text)
	if err != nil {
		return nil
	}
	return t.Regexp()
}

// compilePattern compiles a URL pattern, turning a panic of the library on
// hostile input into an error.
func compilePattern(text, base string) (p *urlpattern.URLPattern, err error) {
	defer func() {
		if v := recover(); v != nil {
			p, err = nil, fmt.Errorf("rejected (%v)", v)
		}
	}()
	return urlpattern.New(text, base, nil)
}

// Match reports whether topic matches s.
func (s *Selector) Match(topic string) bool {
	switch {
	case s.all:
		return true
	case topic == s.text && s.pat == nil:
		return true
	case s.tmpl == nil && s.pat == nil:
		return false
	case s.fast != nil:
		// Cheaper than remembering the answer.
		return s.fast.match(topic)
	case s.fpat != nil:
		if ok, known := s.fpat.match(topic); known {
			return ok
		}
	}
	if m := s.last.Load(); m != nil && m.topic == topic {
		return m.ok
	}
	var ok bool
	switch {
	case s.tmpl != nil:
		ok = len(topic) >= len(s.lit[0])+len(s.lit[1]) && strings.HasPrefix(topic, s.lit[0]) &&
			strings.HasSuffix(topic, s.lit[1]) && s.tmpl.MatchString(topic)
	case s.pre.refuses(topic):
	default:
		ok = testPattern(s.pat, topic, s.base)
	}
	s.last.Store(&memo{topic: topic, ok: ok})
	return ok
}

func testPattern(p *urlpattern.URLPattern, topic, base string) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	if hasScheme(topic) {
		// An absolute topic ignores the base, whose parsing would cost
		// five times the match.
		base = ""
	}
	return p.Test(topic, base)
}

// hasScheme reports whether s starts with a URL scheme and ":", so that it
// resolves against no base.
func hasScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return true
		default:
			return false
		}
	}
	return false
}

// prefilter refuses, without parsing them, the absolute topics a URL
// pattern cannot match: another scheme, another host, or a path without
// the pattern's literal start, as far as the pattern spells them literally
// and the topic is plain enough that URL canonicalization would not change
// them (ASCII host, no percent-escapes, dot segments or backslashes). Any
// doubt lets the topic through to the real match.
type prefilter struct {
	scheme, host, path string // "" where the pattern's component is not a plain literal
}

func newPrefilter(p *urlpattern.URLPattern) prefilter {
	var f prefilter
	if plain(p.Protocol(), "+-.") {
		f.scheme = p.Protocol()
	}
	if h := p.Hostname(); plain(h, "-.") && h != "" && !endsInNumber(h) {
		f.host = h
	}
	path := p.Pathname()
	if i := strings.IndexAny(path, `:*(){}?+\`); i >= 0 {
		path = path[:i]
	}
	if plain(strings.ReplaceAll(path, "/", ""), "-._~") && !strings.Contains(path, "/.") && strings.HasPrefix(path, "/") {
		f.path = path
	}
	return f
}

// endsInNumber reports whether a URL parser would read host as an IPv4
// address (WHATWG "ends in a number"): its last label is digits, or 0x and
// hex digits.
func endsInNumber(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if strings.Trim(last, "0123456789") == "" {
		return true
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		return strings.Trim(last[2:], "0123456789abcdefABCDEF") == ""
	}
	return false
}

// plain reports whether s is lower-case ASCII letters, digits and extra.
func plain(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

func (f prefilter) refuses(topic string) bool {
	if f.scheme == "" && f.host == "" && f.path == "" || !hasScheme(topic) {
		return false
	}
	scheme, rest, _ := strings.Cut(topic, ":")
	if f.scheme != "" && !strings.EqualFold(scheme, f.scheme) {
		return true
	}
	rest, ok := strings.CutPrefix(rest, "//")
	if !ok || strings.ContainsAny(rest, `\%`) {
		return false
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, path := rest[:end], rest[end:]
	if f.host != "" {
		host := authority
		if i := strings.LastIndexByte(host, '@'); i >= 0 {
			host = host[i+1:]
		}
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			host = host[:i]
		}
		host = strings.ToLower(host)
		if host != "" && plain(host, "-.") && !endsInNumber(host) && host != f.host {
			return true
		}
	}
	if f.path != "" {
		if i := strings.IndexAny(path, "?#"); i >= 0 {
			path = path[:i]
		}
		if path != "" && !strings.Contains(path, "/.") && !strings.HasPrefix(path, f.path) {
			return true
		}
	}
	return false
}

// CheckTopic checks a published topic: valid UTF-8, no control
// characters (C0, DEL, C1), not empty, at most MaxTopicLen bytes.
func CheckTopic(topic string) error {
	if topic == "" {
		return fmt.Errorf("%w: empty", ErrBadTopic)
	}
	if err := checkText(topic, MaxTopicLen); err != nil {
		return fmt.Errorf("%w %q: %s", ErrBadTopic, clip(topic), err)
	}
	return nil
}

// checkText applies the protocol's character rules to topics and selectors.
func checkText(s string, max int) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > max {
		return fmt.Errorf("longer than %d bytes", max)
	}
	if !utf8.ValidString(s) {
		return errors.New("not UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r >= 0x7f && r <= 0x9f {
			return fmt.Errorf("control character %U", r)
		}
	}
	return nil
}

// Reserved reports whether topic addresses the hub's own namespace: once
// resolved against base, its path is /.well-known/mercure or below it.
// Publishers may not use such topics (subscription events live there).
func Reserved(topic, base string) bool {
	const ns = "/.well-known/mercure"
	b, err := url.Parse(base)
	if err != nil {
		b = &url.URL{Scheme: "https", Host: "localhost", Path: ns}
	}
	u, err := url.Parse(topic)
	if err != nil {
		// Not a URI reference: look at it as a path, to be safe.
		return strings.HasPrefix(topic, ns) || strings.Contains(topic, ns+"/")
	}
	p := b.ResolveReference(u).Path
	return p == ns || strings.HasPrefix(p, ns+"/")
}

// Cache shares compiled selectors between subscribers. It holds at most
// about twice its size: when the current generation is full it becomes
// the previous one and the one before is dropped, so selectors in use stay
// while forgotten ones go. The zero Cache is not usable: call NewCache.
type Cache struct {
	mu        sync.Mutex
	size      int
	cur, prev map[cacheKey]*Selector
}

type cacheKey struct {
	kind       Kind
	text, base string
}

// NewCache returns a cache of about size selectors per generation; 0
// means 4096.
func NewCache(size int) *Cache {
	if size <= 0 {
		size = 4096
	}
	return &Cache{size: size, cur: make(map[cacheKey]*Selector)}
}

// Compile returns the compiled selector, from the cache when it is there.
// A nil Cache compiles every time.
func (c *Cache) Compile(k Kind, text, base string) (*Selector, error) {
	if c == nil {
		return Compile(k, text, base)
	}
	if k != URLPattern {
		base = ""
	}
	key := cacheKey{k, text, base}
	c.mu.Lock()
	s := c.cur[key]
	if s == nil {
		if s = c.prev[key]; s != nil {
			c.put(key, s)
		}
	}
	c.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := Compile(k, text, base)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.put(key, s)
	c.mu.Unlock()
	return s, nil
}

// Len returns how many selectors the cache holds.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}

// put stores s. Called with c.mu held.
func (c *Cache) put(key cacheKey, s *Selector) {
	if len(c.cur) >= c.size {
		c.prev, c.cur = c.cur, make(map[cacheKey]*Selector, c.size/4)
	}
	c.cur[key] = s
}

// Set is a list of selectors, ORed: it matches a topic one of them
// matches. Exact selectors are looked up, not scanned.
type Set struct {
	all    bool
	exact  []string            // a few literal selectors
	lookup map[string]struct{} // many: the same, as a set
	others []*Selector
	list   []*Selector // every selector, as given
}

// exactScan is how many literal selectors a Set compares one by one before
// it looks them up in a map instead.
const exactScan = 8

// NewSet builds the set of sels.
func NewSet(sels []*Selector) *Set {
	s := &Set{list: sels}
	for _, x := range sels {
		switch {
		case x.all:
			s.all = true
		case x.Literal():
			s.exact = append(s.exact, x.text)
		default:
			s.others = append(s.others, x)
		}
	}
	if len(s.exact) > exactScan {
		s.lookup = make(map[string]struct{}, len(s.exact))
		for _, t := range s.exact {
			s.lookup[t] = struct{}{}
		}
		s.exact = nil
	}
	return s
}

// Selectors returns the set's selectors as given.
func (s *Set) Selectors() []*Selector {
	if s == nil {
		return nil
	}
	return s.list
}

// Match reports whether topic matches one of the set's selectors. A nil
// Set matches nothing.
func (s *Set) Match(topic string) bool {
	if s == nil {
		return false
	}
	if s.all {
		return true
	}
	if s.lookup != nil {
		if _, ok := s.lookup[topic]; ok {
			return true
		}
	}
	for _, t := range s.exact {
		if t == topic {
			return true
		}
	}
	for _, x := range s.others {
		if x.Match(topic) {
			return true
		}
	}
	return false
}

// MatchAny reports whether one of topics matches the set.
func (s *Set) MatchAny(topics []string) bool {
	for _, t := range topics {
		if s.Match(t) {
			return true
		}
	}
	return false
}

// MatchAll reports whether every one of topics matches the set, and
// there is at least one.
func (s *Set) MatchAll(topics []string) bool {
	if len(topics) == 0 {
		return false
	}
	for _, t := range topics {
		if !s.Match(t) {
			return false
		}
	}
	return true
}

// clip keeps echoes of hostile input short.
func clip(s string) string {
	if len(s) > 64 {
		s = s[:64]
		for !utf8.ValidString(s) && len(s) > 0 {
			s = s[:len(s)-1]
		}
		return s + "…"
	}
	return s
}
