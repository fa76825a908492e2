package mercure

import (
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
