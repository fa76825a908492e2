package mercure_test

// What matching costs per event, against rumor's own channel patterns
// (issue #12: "matching a selector list costs no more per event than
// rumor's patterns"). Each case is one subscriber's list and a stream of
// events: the Mercure side is a Set of compiled selectors asked about each
// update's topics (Set.MatchAny, as the face asks for every subscriber an
// update reaches), the rumor side the same shape of list of
// broker.Patterns asked about the event's channel, scanned as a stream's
// pattern list is. Topics and channels name the same things
// (https://example.com/books/7 ↔ books.7), so both sides do the same job.
//
// Every event has a new topic, as in real traffic. "one" is a subscriber
// whose selectors nobody shares (or the first subscriber of a shared
// selector to see an update); "shared-100" is 100 subscribers whose lists
// came from one Cache, per subscriber: a compiled selector remembers the
// last topic it answered for, so the other 99 pay almost nothing. rumor's
// patterns share nothing, so their cost per subscriber is "one".
// docs/BENCHMARKS.md has the numbers.

import (
	"fmt"
	"testing"

	"github.com/rumorhq/rumor/broker"
	"github.com/rumorhq/rumor/mercure"
)

const benchBase = "https://example.com/.well-known/mercure"

// distinctTopics is how many different topics a benchmark cycles through.
const distinctTopics = 1024

type matchCase struct {
	name      string
	kind      mercure.Kind
	selectors []string // the subscriber's Mercure selectors
	patterns  []string // the same list as rumor patterns
	topic     string   // the update's topic, %d for a number
	channel   string   // the same event as a channel
	match     bool
}

func matchCases() []matchCase {
	var tenExact, tenLiteral []string
	for i := range 10 {
		tenExact = append(tenExact, fmt.Sprintf("https://example.com/books/%d", i+100000))
		tenLiteral = append(tenLiteral, fmt.Sprintf("books.%d", i+100000))
	}
	return []matchCase{
		{"exact/miss", mercure.Template, []string{"https://example.com/books/100000"}, []string{"books.100000"},
			"https://example.com/books/%d", "books.%d", false},
		{"ten-exact/miss", mercure.Template, tenExact, tenLiteral,
			"https://example.com/books/%d", "books.%d", false},
		{"wildcard-all", mercure.Template, []string{"*"}, []string{">"},
			"https://example.com/books/%d", "books.%d", true},
		{"template/hit", mercure.Template, []string{"https://example.com/books/{id}"}, []string{"books.*"},
			"https://example.com/books/%d", "books.%d", true},
		{"template/miss", mercure.Template, []string{"https://example.com/books/{id}"}, []string{"books.*"},
			"https://example.com/authors/%d", "authors.%d", false},
		{"urlpattern/hit", mercure.URLPattern, []string{"https://example.com/books/:id"}, []string{"books.*"},
			"https://example.com/books/%d", "books.%d", true},
		{"urlpattern/miss", mercure.URLPattern, []string{"https://example.com/books/:id"}, []string{"books.*"},
			"https://example.com/authors/%d", "authors.%d", false},
		{"four-templates/miss", mercure.Template,
			[]string{"https://example.com/books/{id}", "https://example.com/authors/{id}", "https://example.com/shops/{id}/stock", "https://example.com/users/{id}"},
			[]string{"books.*", "authors.*", "shops.*.stock", "users.*"},
			"https://example.com/orders/%d", "orders.%d", false},
	}
}

func (c matchCase) set(tb testing.TB, cache *mercure.Cache) *mercure.Set {
	tb.Helper()
	var sels []*mercure.Selector
	for _, s := range c.selectors {
		sel, err := cache.Compile(c.kind, s, benchBase)
		if err != nil {
			tb.Fatalf("Compile(%v, %q): %v", c.kind, s, err)
		}
		sels = append(sels, sel)
	}
	return mercure.NewSet(sels)
}

func (c matchCase) rumor(tb testing.TB) []broker.Pattern {
	tb.Helper()
	var ps []broker.Pattern
	for _, s := range c.patterns {
		p, err := broker.ParsePattern(s)
		if err != nil {
			tb.Fatalf("ParsePattern(%q): %v", s, err)
		}
		ps = append(ps, p)
	}
	return ps
}

// events returns the case's topics and channels, one per event.
func (c matchCase) events() (topics [][]string, channels []string) {
	for i := range distinctTopics {
		topics = append(topics, []string{fmt.Sprintf(c.topic, i)})
		channels = append(channels, fmt.Sprintf(c.channel, i))
	}
	return topics, channels
}

func matchPatterns(ps []broker.Pattern, channel string) bool {
	for _, p := range ps {
		if p.Match(channel) {
			return true
		}
	}
	return false
}

// TestSelectorListCases checks that both sides of every benchmark case
// answer the same for every event, so that the benchmark compares the
// same work.
func TestSelectorListCases(t *testing.T) {
	for _, c := range matchCases() {
		set, ps := c.set(t, mercure.NewCache(0)), c.rumor(t)
		topics, channels := c.events()
		for i := range topics {
			if got := set.MatchAny(topics[i]); got != c.match {
				t.Errorf("%s: Set.MatchAny(%q) = %v, want %v", c.name, topics[i], got, c.match)
			}
			if got := matchPatterns(ps, channels[i]); got != c.match {
				t.Errorf("%s: patterns %q match %q = %v, want %v", c.name, c.patterns, channels[i], got, c.match)
			}
		}
	}
}

func BenchmarkSelectorList(b *testing.B) {
	const shared = 100
	for _, c := range matchCases() {
		topics, channels := c.events()
		b.Run(c.name+"/one/mercure", func(b *testing.B) {
			set := c.set(b, mercure.NewCache(0))
			i := 0
			for b.Loop() {
				if set.MatchAny(topics[i%distinctTopics]) != c.match {
					b.Fatal("wrong answer")
				}
				i++
			}
		})
		b.Run(c.name+"/shared-100/mercure", func(b *testing.B) {
			cache := mercure.NewCache(0)
			sets := make([]*mercure.Set, shared)
			for j := range sets {
				sets[j] = c.set(b, cache)
			}
			i := 0
			for b.Loop() {
				ts := topics[i%distinctTopics]
				for _, s := range sets {
					if s.MatchAny(ts) != c.match {
						b.Fatal("wrong answer")
					}
				}
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*shared), "ns/subscriber")
		})
		b.Run(c.name+"/one/rumor", func(b *testing.B) {
			ps := c.rumor(b)
			i := 0
			for b.Loop() {
				if matchPatterns(ps, channels[i%distinctTopics]) != c.match {
					b.Fatal("wrong answer")
				}
				i++
			}
		})
	}
}
