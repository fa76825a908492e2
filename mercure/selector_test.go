package mercure

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

const base = "https://hub.example.com/.well-known/mercure"

func TestSelectorMatch(t *testing.T) {
	tests := []struct {
		kind  Kind
		sel   string
		topic string
		want  bool
	}{
		// 0.x: exact strings, URI templates, *
		{Template, "https://example.com/books/1", "https://example.com/books/1", true},
		{Template, "https://example.com/books/1", "https://example.com/books/2", false},
		{Template, "https://example.com/books/{id}", "https://example.com/books/1", true},
		{Template, "https://example.com/books/{id}", "https://example.com/books/1/reviews", false},
		{Template, "https://example.com/books/{id}", "https://example.com/books/{id}", true},
		{Template, "https://example.com/{+path}", "https://example.com/a/b/c", true},
		{Template, "https://example.com/books/{id}{?q}", "https://example.com/books/7?q=x", true},
		{Template, "https://example.com/{id}/reviews", "https://example.com/1/reviews", true},
		{Template, "https://example.com/{id}/reviews", "https://example.com/1/review", false},
		{Template, "https://example.com/{id}/reviews", "https://example.org/1/reviews", false},
		{Template, "*", "anything at all", true},
		{Template, "books", "books", true},
		{Template, "books", "Books", false},
		{Template, "bad{template", "bad{template", true}, // not a template: a string
		{Template, "bad{template", "badXtemplate", false},
		{Template, "/.well-known/mercure/subscriptions/{topic}/{subscriber}", "/.well-known/mercure/subscriptions/foo/urn%3Auuid%3A1", true},
		// 1.0 Exact: no templates
		{Exact, "https://example.com/books/{id}", "https://example.com/books/1", false},
		{Exact, "https://example.com/books/{id}", "https://example.com/books/{id}", true},
		{Exact, "*", "https://example.com/x", true},
		{Exact, "caf\u00e9", "cafe\u0301", false}, // no normalization
		// 1.0 URLPattern
		{URLPattern, "https://example.com/books/:id", "https://example.com/books/1", true},
		{URLPattern, "https://example.com/books/:id", "https://example.com/books/1/reviews", false},
		{URLPattern, "https://example.com/books/*", "https://example.com/books/1/reviews", true},
		{URLPattern, "https://example.com/books/:id", "https://other.example/books/1", false},
		{URLPattern, "https://EXAMPLE.com/books/:id", "https://example.com/books/1", true}, // hosts are case-insensitive
		{URLPattern, "https://example.com/Books/:id", "https://example.com/books/1", false},
		{URLPattern, "/.well-known/mercure/subscriptions/Exact/:match/:subscriber", "/.well-known/mercure/subscriptions/Exact/foo/bar", true},
		{URLPattern, "/books/:id", "https://hub.example.com/books/3", true},
		{URLPattern, "*", "not even a url", true},
		{URLPattern, "https://example.com/books/:id", "HTTPS://Example.COM:443/books/1", true},
		{URLPattern, "https://example.com/books/:id", "https://example.com/a/../books/1", true},
		{URLPattern, "https://example.com/books/:id", "http://example.com/books/1", false},
		{URLPattern, "https://example.com/books/:id", "https://example.org/books/1", false},
		{URLPattern, "https://example.com/books/:id", "https://example.com/films/1", false},
	}
	for _, tt := range tests {
		s, err := Compile(tt.kind, tt.sel, base)
		if err != nil {
			t.Fatalf("Compile(%v, %q) = %v", tt.kind, tt.sel, err)
		}
		if got := s.Match(tt.topic); got != tt.want {
			t.Errorf("Compile(%v, %q).Match(%q) = %v, want %v", tt.kind, tt.sel, tt.topic, got, tt.want)
		}
	}
}

func TestSelectorRefused(t *testing.T) {
	for _, tt := range []struct {
		kind Kind
		sel  string
	}{
		{Template, ""},
		{Exact, "a\nb"},
		{Exact, "a\x00b"},
		{Exact, "a\u0085b"}, // C1
		{Exact, "a\x7fb"},
		{Exact, "\xff"},
		{Exact, strings.Repeat("a", MaxSelectorLen+1)},
		{URLPattern, "https://example.com/(("},
		{URLPattern, "https://example.com/:id(\\d+"},
	} {
		if _, err := Compile(tt.kind, tt.sel, base); !errors.Is(err, ErrBadSelector) {
			t.Errorf("Compile(%v, %q) = %v, want ErrBadSelector", tt.kind, clip(tt.sel), err)
		}
	}
}

func TestReserved(t *testing.T) {
	for topic, want := range map[string]bool{
		"/.well-known/mercure":                                        true,
		"/.well-known/mercure/subscriptions/foo":                      true,
		"https://hub.example.com/.well-known/mercure/subscriptions/x": true,
		"https://other.example/.well-known/mercure/subscriptions/x/y": true,
		"../.well-known/mercure/subscriptions/x":                      true,
		"https://example.com/.well-known/mercurial":                   false,
		"https://example.com/books/1":                                 false,
		"books":                                                       false,
	} {
		if got := Reserved(topic, base); got != want {
			t.Errorf("Reserved(%q) = %v, want %v", topic, got, want)
		}
	}
}

func TestSet(t *testing.T) {
	var sels []*Selector
	for i := range 20 {
		s, _ := Compile(Exact, "t"+strings.Repeat("x", i), base)
		sels = append(sels, s)
	}
	tmpl, _ := Compile(Template, "https://example.com/{id}", base)
	set := NewSet(append(sels, tmpl))
	for topic, want := range map[string]bool{"t": true, "txxxxxxxxxxxxxx": true, "u": false, "https://example.com/3": true} {
		if got := set.Match(topic); got != want {
			t.Errorf("Set.Match(%q) = %v, want %v", topic, got, want)
		}
	}
	if (*Set)(nil).Match("t") {
		t.Error("a nil Set matched")
	}
	if !set.MatchAll([]string{"t", "https://example.com/x"}) || set.MatchAll([]string{"t", "u"}) || set.MatchAll(nil) {
		t.Error("MatchAll is wrong")
	}
}

func TestCacheBounded(t *testing.T) {
	c := NewCache(16)
	for i := range 1000 {
		if _, err := c.Compile(Template, "https://example.com/{id}/"+strings.Repeat("a", i%200)+string(rune('a'+i%26)), base); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.Len(); n > 32 {
		t.Errorf("cache holds %d selectors, want at most 32", n)
	}
	a, _ := c.Compile(URLPattern, "/books/:id", base)
	b, _ := c.Compile(URLPattern, "/books/:id", base)
	if a != b {
		t.Error("the cache compiled the same selector twice")
	}
}

func TestParseClaim(t *testing.T) {
	g, err := ParseClaim(json.RawMessage(`{"publish":["*"],"subscribe":["https://example.com/books/{id}",
		{"match":"https://example.com/users/:id","match_type":"urlpattern","payload":{"u":1}}],"payload":{"p":2}}`), base, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !g.CanPublish([]string{"a", "b"}) {
		t.Error("publish * refused a topic")
	}
	if !g.CanReceive([]string{"x", "https://example.com/books/9"}) || g.CanReceive([]string{"x"}) {
		t.Error("CanReceive is wrong")
	}
	if !g.CanReceive([]string{"https://example.com/users/4"}) {
		t.Error("the urlpattern entry granted nothing")
	}
	if p := string(g.Payload("https://example.com/users/:id")); p != `{"u":1}` {
		t.Errorf("Payload(users) = %s", p)
	}
	if p := string(g.Payload("other")); p != `{"p":2}` {
		t.Errorf("Payload(other) = %s", p)
	}
	g, err = ParseClaim(json.RawMessage(`{"subscribe":[]}`), base, nil)
	if err != nil || g.Publish != nil || g.CanPublish([]string{"a"}) || g.CanReceive([]string{"a"}) {
		t.Errorf("an empty claim granted something: %+v %v", g, err)
	}
	for _, bad := range []string{`[]`, `{"publish":"*"}`, `{"subscribe":[1]}`, `{"subscribe":[{"match":"a","match_type":"URLPattern"}]}`,
		`{"subscribe":["a\u0000"]}`, `{"publish":[{"match":"https://x/((","match_type":"urlpattern"}]}`} {
		if _, err := ParseClaim(json.RawMessage(bad), base, nil); !errors.Is(err, ErrBadGrant) {
			t.Errorf("ParseClaim(%s) = %v, want ErrBadGrant", bad, err)
		}
	}
}

func TestParseAuthorizationDetails(t *testing.T) {
	g, err := ParseAuthorizationDetails(json.RawMessage(`[
		{"type":"openid_credential","whatever":1},
		{"type":"mercure","actions":["subscribe"],"topics":[{"match":"https://example.com/books/1"},{"match":"https://example.com/books/:id","matchType":"URLPattern"}],"payload":{"a":1}},
		{"type":"mercure","actions":["publish","subscribe"],"topics":[{"match":"news","matchType":"Exact"}]}]`), base, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g.CanPublish([]string{"https://example.com/books/1"}) || !g.CanPublish([]string{"news"}) {
		t.Error("publish rights are wrong")
	}
	if !g.CanReceive([]string{"https://example.com/books/7"}) || !g.CanReceive([]string{"news"}) || g.CanReceive([]string{"other"}) {
		t.Error("subscribe rights are wrong")
	}
	if p := string(g.Payload("https://example.com/books/1")); p != `{"a":1}` {
		t.Errorf("Payload = %s", p)
	}
	for _, bad := range []string{
		`{}`, `[1]`,
		`[{"type":"mercure","actions":[],"topics":[{"match":"a"}]}]`,
		`[{"type":"mercure","actions":["read"],"topics":[{"match":"a"}]}]`,
		`[{"type":"mercure","actions":["publish"],"topics":[]}]`,
		`[{"type":"mercure","actions":["publish"],"topics":["a"]}]`,
		`[{"type":"mercure","actions":["publish"],"topics":[{"match":"a","matchType":"exact"}]}]`,
		`[{"type":"mercure","actions":["publish"],"topics":[{"match":"a"}],"payload":"x"}]`,
		`[{"type":"mercure","actions":["publish"],"topics":[{"match":"https://x/((","matchType":"URLPattern"}]}]`,
	} {
		if _, err := ParseAuthorizationDetails(json.RawMessage(bad), base, nil); !errors.Is(err, ErrBadGrant) {
			t.Errorf("ParseAuthorizationDetails(%s) = %v, want ErrBadGrant", bad, err)
		}
	}
}

// FuzzSelectorTemplate compiles hostile 0.x selectors and matches hostile
// topics: nothing may panic, and a selector always matches its own text
// (an exact string, or a template matching itself as a literal).
func FuzzSelectorTemplate(f *testing.F) {
	for _, s := range []string{"https://example.com/{id}", "{+a}{#b}{?c*}", "{", "}", "{a", "*", "a{b}c{d}", "{%zz}", "{a:99999}"} {
		f.Add(s, "https://example.com/1")
	}
	f.Add("https://example.com/{id}/reviews", "https://example.com/1/reviews")
	f.Fuzz(func(t *testing.T, sel, topic string) {
		s, err := Compile(Template, sel, base)
		if err != nil {
			return
		}
		got := s.Match(topic)
		if s.tmpl != nil && got != s.tmpl.MatchString(topic) && topic != sel {
			t.Errorf("Compile(Template, %q).Match(%q) = %v, the template says %v", sel, topic, got, !got)
		}
		if k, ok := s.Key(); ok && got && !slices.Contains(TopicKeys(nil, topic), k) {
			t.Errorf("Compile(Template, %q) matches %q but its key %q is not one of the topic's %q", sel, topic, k, TopicKeys(nil, topic))
		}
		if !s.Match(sel) {
			t.Errorf("selector %q does not match itself", sel)
		}
	})
}

// FuzzSelectorURLPattern compiles hostile URL patterns and matches hostile
// topics: nothing may panic or hang, and the prefilter never refuses a
// topic the pattern matches.
func FuzzSelectorURLPattern(f *testing.F) {
	for _, s := range []string{"https://example.com/books/:id", "/a/:b(\\d+)", "*://*/*", "((((((a+)+)+)+)+)", ":a*:b*:c*", "https://[::1]/x", "{a}?"} {
		f.Add(s, "https://example.com/books/1")
	}
	f.Add("https://example.com/books/:id", "HTTPS://EXAMPLE.COM:443/books/1")
	f.Add("https://example.com/books/:id", "https://user@example.com/./books/1")
	f.Add("https://example.com/books/:id", "https://example.com/books/%31")
	f.Add("https://example.com/b/:id", "https://example.com/a/../b/1")
	f.Fuzz(func(t *testing.T, sel, topic string) {
		s, err := Compile(URLPattern, sel, base)
		if err != nil {
			return
		}
		got := s.Match(topic)
		if s.All() {
			return // the Mercure wildcard, not a URL pattern
		}
		if want := testPattern(s.pat, topic, s.base); got != want {
			t.Errorf("Compile(URLPattern, %q).Match(%q) = %v, the pattern says %v", sel, topic, got, want)
		}
	})
}

// FuzzSelectorGrants parses hostile claims of both forms: an error or
// grants, never a panic.
func FuzzSelectorGrants(f *testing.F) {
	f.Add(`{"publish":["*"],"subscribe":["a{b}",{"match":"/x/:y","match_type":"urlpattern"}]}`)
	f.Add(`[{"type":"mercure","actions":["subscribe"],"topics":[{"match":"*"}]}]`)
	f.Fuzz(func(t *testing.T, raw string) {
		if g, err := ParseClaim(json.RawMessage(raw), base, nil); err == nil {
			g.CanReceive([]string{"a"})
			g.Payload("a")
		}
		if g, err := ParseAuthorizationDetails(json.RawMessage(raw), base, nil); err == nil {
			g.CanPublish([]string{"a"})
		}
	})
}

func TestHasScheme(t *testing.T) {
	for s, want := range map[string]bool{"https://x": true, "urn:uuid:1": true, "a+b-c.d:x": true, "/path": false, "x": false, ":x": false, "1a:x": false, "": false, "a/b:c": false} {
		if got := hasScheme(s); got != want {
			t.Errorf("hasScheme(%q) = %v, want %v", s, got, want)
		}
	}
}

func BenchmarkSelectorURLPatternUnshared(b *testing.B) {
	s, err := Compile(URLPattern, "https://example.com/books/:id", base)
	if err != nil {
		b.Fatal(err)
	}
	topics := []string{"https://example.com/books/1", "https://example.com/books/2"}
	i := 0
	for b.Loop() {
		i++
		s.Match(topics[i%2]) // a new topic every time: the memo never helps
	}
}

func TestSelectorKeys(t *testing.T) {
	for _, tt := range []struct {
		kind      Kind
		sel, want string
		ok        bool
	}{
		{Template, "https://example.com/books/1", "https://example.com/books/1", true},
		{Template, "https://example.com/books/{id}", "\x1fhttps://example.com/books/", true},
		{Template, "https://example.com/{kind}/{id}", "", false},
		{Template, "https://example.com/books{/id}", "", false},
		{Template, "*", "", false},
		{Exact, "https://example.com/books/{id}", "https://example.com/books/{id}", true},
		{URLPattern, "https://example.com/books/:id", "", false},
	} {
		s, err := Compile(tt.kind, tt.sel, base)
		if err != nil {
			t.Fatal(err)
		}
		if k, ok := s.Key(); k != tt.want || ok != tt.ok {
			t.Errorf("Compile(%v, %q).Key() = %q, %v, want %q, %v", tt.kind, tt.sel, k, ok, tt.want, tt.ok)
		}
	}
	if got := TopicKeys(nil, "https://example.com/books/1/reviews"); !slices.Equal(got, []string{"https://example.com/books/1/reviews", "\x1fhttps://example.com/books/"}) {
		t.Errorf("TopicKeys = %q", got)
	}
	if got := TopicKeys(nil, "books"); !slices.Equal(got, []string{"books"}) {
		t.Errorf("TopicKeys(books) = %q", got)
	}
}
