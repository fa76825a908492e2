package mercure

import (
	"github.com/dunglas/go-urlpattern"
	"strings"
	"unicode/utf8"
)

// fastTemplate matches the common simple URI templates without a regexp:
// literal text and level-1 expansions ("{id}", "{a,b}"), as in
// "https://example.com/books/{id}". It answers exactly as the library's
// regexp does (FuzzFastTemplate checks it): the regexp of a simple
// expansion is a run of slotByte bytes and %XX escapes, possibly empty,
// and a run of runs is one run. Templates with any other expression, or
// whose literal after an expression could continue the run (it starts
// with a slot byte or '%'), keep the regexp.
type fastTemplate struct {
	// lits are the literal parts: lits[0] starts the topic, and a run
	// comes before each further part. A last part "" ends on a run.
	lits []string
}

// slotByte is the byte class of the library's regexp for a level-1
// expansion: "," and RFC 3986 unreserved ([\x2c\x2d\x2e\x30-\x39\x41-\x5a\x5f\x61-\x7a\x7e]).
var slotByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == ',' || c == '-' || c == '.' || c == '_' || c == '~'
	}
	return t
}()

func hexByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// newFastTemplate returns the fast matcher of text, a template the library
// accepted, or nil when it is not simple.
func newFastTemplate(text string) *fastTemplate {
	if strings.ContainsRune(text, utf8.RuneError) {
		return nil
	}
	f := &fastTemplate{}
	lit, slot := "", false
	for rest := text; ; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			lit += rest
			break
		}
		lit += rest[:open]
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil
		}
		body := rest[open+1 : open+end]
		rest = rest[open+end+1:]
		if body == "" || strings.IndexByte("+#./;?&=,!@|", body[0]) >= 0 || strings.ContainsAny(body, ":*") {
			return nil
		}
		if lit == "" && slot {
			continue // two runs in a row are one run
		}
		if slot && (slotByte[lit[0]] || lit[0] == '%') {
			return nil
		}
		f.lits = append(f.lits, lit)
		lit, slot = "", true
	}
	if !slot {
		return nil
	}
	if lit != "" && (slotByte[lit[0]] || lit[0] == '%') {
		return nil
	}
	f.lits = append(f.lits, lit)
	return f
}

// match reports whether topic matches the template.
func (f *fastTemplate) match(topic string) bool {
	if !strings.HasPrefix(topic, f.lits[0]) {
		return false
	}
	i := len(f.lits[0])
	for _, lit := range f.lits[1:] {
		for i < len(topic) {
			if c := topic[i]; slotByte[c] {
				i++
			} else if c == '%' && i+2 < len(topic) && hexByte(topic[i+1]) && hexByte(topic[i+2]) {
				i += 3
			} else {
				break
			}
		}
		if !strings.HasPrefix(topic[i:], lit) {
			return false
		}
		i += len(lit)
	}
	return i == len(topic)
}

// fastPattern matches the common simple URL patterns without parsing the
// topic as a URL: "http(s)://host/lit/:name/…", every other component a
// wildcard. It answers only for topics plain enough that URL parsing would
// not change them (absolute, printable ASCII, lower-case scheme and host
// equal to the pattern's, no userinfo, port, backslash, percent-escape or
// dot segment); on any other topic it declines and the library decides.
// FuzzFastPattern checks it against the library.
type fastPattern struct {
	scheme, host string
	prefix       string   // scheme://host/
	segs         []string // the pathname's segments; "" is a :name
}

func newFastPattern(p *urlpattern.URLPattern) *fastPattern {
	if p.Username() != "*" || p.Password() != "*" || p.Search() != "*" || p.Hash() != "*" || p.Port() != "" {
		return nil
	}
	f := &fastPattern{scheme: p.Protocol(), host: p.Hostname()}
	if f.scheme != "https" && f.scheme != "http" || f.host == "" || !plain(f.host, "-.") || endsInNumber(f.host) {
		return nil
	}
	path, ok := strings.CutPrefix(p.Pathname(), "/")
	if !ok {
		return nil
	}
	for _, seg := range strings.Split(path, "/") {
		switch {
		case seg == "" || strings.Trim(seg, ".") == "":
			return nil
		case seg[0] == ':':
			if !patternName(seg[1:]) {
				return nil
			}
			seg = ""
		case !plainSegment(seg):
			return nil
		}
		f.segs = append(f.segs, seg)
	}
	f.prefix = f.scheme + "://" + f.host + "/"
	return f
}

// patternName reports whether s is a plain URL pattern group name.
func patternName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// plainSegment reports whether s holds only unreserved characters.
func plainSegment(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// pathByte is what a topic's path may hold for the fast path: characters
// URL parsing keeps as they are.
var pathByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("-._~!$&()*+,;=:@/", byte(c)) >= 0
	}
	return t
}()

// match returns whether topic matches, and false for known when the
// topic is not plain enough to be sure. One pass over the topic.
func (f *fastPattern) match(topic string) (ok, known bool) {
	if !strings.HasPrefix(topic, f.prefix) {
		return false, false
	}
	i, n, start := len(f.prefix), 0, len(f.prefix)
	ok = true
	for ; ; i++ {
		var c byte
		if i < len(topic) {
			c = topic[i]
			if pathByte[c] && c != '/' {
				continue
			}
		}
		switch c {
		case 0, '/', '?', '#':
			seg := topic[start:i]
			if seg == "." || seg == ".." {
				return false, false // a dot segment
			}
			if n >= len(f.segs) {
				ok = false
			} else if w := f.segs[n]; ok {
				ok = w == "" && seg != "" || w != "" && w == seg
			}
			n++
			start = i + 1
		default:
			return false, false
		}
		if c != '/' {
			break
		}
	}
	if i < len(topic) && topic[i] == 0 {
		return false, false
	}
	// The search and hash are wildcards, but must not change the parse.
	for ; i < len(topic); i++ {
		if c := topic[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return false, false
		}
	}
	return ok && n == len(f.segs), true
}
