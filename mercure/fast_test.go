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
