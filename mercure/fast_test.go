package mercure

import (
	"strings"
	"testing"
)

func TestFastTemplate(t *testing.T) {
	for _, c := range []struct {
		tmpl string
		fast bool
	}{
		{"https://example.com/books/{id}", true},
		{"/users/{uid}/posts/{pid}", true},
		{"{id}", true},
		{"a{x}{y}/b", true},
		{"https://example.com/{a,b}/z", true},
		{"https://example.com/{id}/reviews", true},
		{"https://example.com/{a.b}/x", true},
		{"https://example.com/{%41}/x", true},
		{"https://example.com/books/{id}.json", false}, // '.' continues the run
		{"https://example.com/{id}%2F", false},
		{"https://example.com/{+path}", false},
		{"https://example.com/{#frag}", false},
		{"https://example.com{/segs}", false},
		{"https://example.com/{?q}", false},
		{"https://example.com/{id:3}", false},
		{"https://example.com/{ids*}", false},
	} {
		s, err := Compile(Template, c.tmpl, "")
		if err != nil || s.tmpl == nil {
			t.Fatalf("Compile(%q) = %v, %v: not a template", c.tmpl, s, err)
		}
		if got := s.fast != nil; got != c.fast {
			t.Errorf("Compile(%q): fast path %v, want %v", c.tmpl, got, c.fast)
		}
	}
	s, _ := Compile(Template, "/users/{uid}/posts/{pid}", "")
	for topic, want := range map[string]bool{
		"/users/1/posts/2":           true,
		"/users//posts/":             true,
		"/users/a%2Fb/posts/x,y.z~_": true,
		"/users/a%2/posts/1":         false,
		"/users/a%zz/posts/1":        false,
		"/users/1/posts/2/":          false,
		"/users/1/2/posts/3":         false,
		"/users/1/posts/2?x":         false,
		"/users/é/posts/2":           false,
		"/users/1/posts":             false,
		"x/users/1/posts/2":          false,
	} {
		if got := s.Match(topic); got != want || got != s.tmpl.MatchString(topic) {
			t.Errorf("%q.Match(%q) = %v, want %v (regexp %v)", s.text, topic, got, want, s.tmpl.MatchString(topic))
		}
	}
}

// FuzzFastTemplate checks the fast template matcher against the library's
// regexp, which stays the reference.
func FuzzFastTemplate(f *testing.F) {
	for _, c := range [][2]string{
		{"https://example.com/books/{id}", "https://example.com/books/1"},
		{"https://example.com/books/{id}", "https://example.com/books/%41%4"},
		{"https://example.com/books/{id}", "https://example.com/books/a/b"},
		{"/users/{uid}/posts/{pid}", "/users/1/posts/2"},
		{"/users/{uid}/posts/{pid}", "/users/%2F/posts/é"},
		{"a{x}{y}/b{z}", "a,b.c~/b%ff"},
		{"https://example.com/{a,b}/z", "https://example.com/1,2/z"},
		{"{id}", ""},
		{"{id}", "%%41"},
		{"é{x}ü", "é%C3ü"},
		{"/x/{id}", "/x/\xff"},
		{"/x/{id}/\u00e9", "/x/1/\xc3\xa9"},
		{"/x/{id}!y", "/x/1!y!y"},
	} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, tmpl, topic string) {
		re := compileTemplate(tmpl)
		if re == nil {
			return
		}
		fast := newFastTemplate(tmpl)
		if fast == nil {
			return
		}
		// The topic as given, and the template with each expression
		// replaced by the topic, so that literals line up often.
		for _, tp := range []string{topic, expandAll(tmpl, topic)} {
			if got, want := fast.match(tp), re.MatchString(tp); got != want {
				t.Fatalf("template %q, topic %q: fast path %v, regexp %v", tmpl, tp, got, want)
			}
		}
	})
}

// expandAll replaces every {…} of tmpl with v.
func expandAll(tmpl, v string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		j := strings.IndexByte(tmpl, '}')
		if i < 0 || j < i {
			b.WriteString(tmpl)
			return b.String()
		}
		b.WriteString(tmpl[:i])
		b.WriteString(v)
		tmpl = tmpl[j+1:]
	}
}

func TestFastPattern(t *testing.T) {
	for _, c := range []struct {
		pat  string
		fast bool
	}{
		{"https://example.com/books/:id", true},
		{"/users/:uid/posts/:pid", true}, // scheme and host from the base
		{"http://example.com/a.b/c~d/:x", true},
		{"https://example.com/books/:id(\\d+)", false},
		{"https://example.com/books/:id?", false},
		{"https://example.com/books/*", false},
		{"https://example.com/books/:id.json", false},
		{"https://example.com/books/", false},
		{"https://example.com:8080/books/:id", false},
		{"https://example.com/books/:id?q=1", false},
		{"https://*.example.com/books/:id", false},
		{"https://127.0.0.1/books/:id", false},
		{"wss://example.com/books/:id", false},
	} {
		s, err := Compile(URLPattern, c.pat, base)
		if err != nil {
			t.Fatalf("Compile(%q): %v", c.pat, err)
		}
		if got := s.fpat != nil; got != c.fast {
			t.Errorf("Compile(%q): fast path %v, want %v", c.pat, got, c.fast)
		}
	}
	s, _ := Compile(URLPattern, "https://example.com/users/:uid/posts/:pid", base)
	for topic, want := range map[string][2]bool{ // answer, known
		"https://example.com/users/1/posts/2":       {true, true},
		"https://example.com/users/1/posts/2?x=1#y": {true, true},
		"https://example.com/users/a:b@c/posts/2":   {true, true},
		"https://example.com/users/1/posts/2/":      {false, true},
		"https://example.com/users//posts/2":        {false, true},
		"https://example.com/users/1/posts":         {false, true},
		"https://example.com/users/1/posts/2/3":     {false, true},
		"https://example.com/users/1/x/../posts/2":  {false, false},
		"https://example.com/users/1/posts/%32":     {false, false},
		"HTTPS://example.com/users/1/posts/2":       {false, false},
		"https://EXAMPLE.com/users/1/posts/2":       {false, false},
		"https://example.com:443/users/1/posts/2":   {false, false},
		"https://u@example.com/users/1/posts/2":     {false, false},
		"https://example.com/users/1/posts/2\\":     {false, false},
		"https://example.com/users/é/posts/2":       {false, false},
		"/users/1/posts/2":                          {false, false},
		"https:example.com/users/1/posts/2":         {false, false},
		"https://example.com/users/1/posts/2 ":      {false, false},
		"https://example.com/users/1/posts/{2}":     {false, false},
		"https://example.com/users/1/posts/.":       {false, false},
	} {
		ok, known := s.fpat.match(topic)
		if ok != want[0] || known != want[1] {
			t.Errorf("match(%q) = %v, %v; want %v, %v", topic, ok, known, want[0], want[1])
		}
		if lib := testPattern(s.pat, topic, s.base); s.Match(topic) != lib || known && ok != lib {
			t.Errorf("Match(%q) = %v, fast %v (known %v), the library says %v", topic, s.Match(topic), ok, known, lib)
		}
	}
}

// FuzzFastPattern checks the fast URL pattern matcher against the library,
// which stays the reference: where the fast path answers, it must answer
// as the library does.
func FuzzFastPattern(f *testing.F) {
	for _, c := range [][2]string{
		{"https://example.com/books/:id", "https://example.com/books/1"},
		{"https://example.com/books/:id", "https://example.com/books/1?a#b"},
		{"https://example.com/books/:id", "https://example.com/books/a;b=c,d!$&()*+:@"},
		{"https://example.com/books/:id", "https://example.com/books/1/.."},
		{"https://example.com/books/:id", "https://example.com/books/.../"},
		{"https://example.com/books/:id", "https://example.com./books/1"},
		{"/users/:uid/posts/:pid", "https://example.com/users/1/posts/2"},
		{"/users/:uid/posts/:pid", "https://example.com/users/1/posts/2/"},
		{"http://example.com/a.b/:x", "http://example.com/a.b/c"},
		{"https://xn--bcher-kva.example/:x", "https://xn--bcher-kva.example/1"},
		{"https://a-b.example/:x/y", "https://a-b.example/1/y"},
	} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, pat, topic string) {
		s, err := Compile(URLPattern, pat, base)
		if err != nil || s.fpat == nil {
			return
		}
		// The topic as given, and the pattern with its groups filled by
		// the topic, so that it lines up often.
		filled := s.fpat.scheme + "://" + s.fpat.host
		for _, w := range s.fpat.segs {
			if w == "" {
				w = topic
			}
			filled += "/" + w
		}
		for _, tp := range []string{topic, filled} {
			ok, known := s.fpat.match(tp)
			if !known {
				continue
			}
			if want := testPattern(s.pat, tp, s.base); ok != want {
				t.Fatalf("pattern %q, topic %q: fast path %v, library %v", pat, tp, ok, want)
			}
		}
	})
}
