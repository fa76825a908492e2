package transport

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// setState is a State that holds a set of words: a snapshot is the words
// joined by commas, and so is a change.
type setState struct {
	mu    sync.Mutex
	words map[string]bool
}

func newSetState(words ...string) *setState {
	s := &setState{words: make(map[string]bool)}
	for _, w := range words {
		s.words[w] = true
	}
	return s
}

func (s *setState) Snapshot() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for w := range s.words {
		out = append(out, w)
	}
	slices.Sort(out)
	return []byte(strings.Join(out, ","))
}

func (s *setState) Merge(b []byte) error {
	if strings.Contains(string(b), "!") {
		return errors.New("not a word")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range strings.SplitSeq(string(b), ",") {
		if w != "" {
			s.words[w] = true
		}
	}
	return nil
}

func (s *setState) has(w string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.words[w]
}

// A change spreads to every member at once; a node that joins later
// holds the others' state by the time it reports ready, including what
// the node that decided it knew before it left; a change a peer refuses
// changes nothing there.
func TestStateSpreadAndJoin(t *testing.T) {
	states := []*setState{newSetState("a"), newSetState(), newSetState()}
	nodes := startClusterWith(t, 3, func(i int) nodeOpts {
		return nodeOpts{config: func(c *Config) { c.State = states[i] }}
	})
	waitFor(t, "the first node's word on the others (push/pull at join)", 10*time.Second, func() bool {
		return states[1].has("a") && states[2].has("a")
	})

	states[0].Merge([]byte("b"))
	start := time.Now()
	nodes[0].c.Spread(context.Background(), []byte("b"))
	for i, s := range states[1:] {
		if !s.has("b") {
			// Spread returns once each member's gossip port has the
			// change; NotifyMsg may still be on its way.
			waitFor(t, "the spread change on "+nodes[i+1].name, 10*time.Second, func() bool { return s.has("b") })
		}
	}
	t.Logf("a change reached 2 members %v after Spread began", time.Since(start))

	nodes[1].c.Spread(context.Background(), []byte("bad!"))
	nodes[1].c.Spread(context.Background(), []byte("c"))
	waitFor(t, "the good change after a refused one", 10*time.Second, func() bool { return states[0].has("c") })
	if states[0].has("bad!") {
		t.Error("a refused change was merged")
	}

	// The node that knew "b" first goes; one that joins afterwards learns
	// everything before it is ready.
	nodes[0].crash()
	late := newSetState()
	n4 := startNodeWith(t, "n4", nodeOpts{join: []string{nodes[2].c.GossipAddr()}, config: func(c *Config) { c.State = late }})
	waitFor(t, "n4 ready", 10*time.Second, func() bool { return n4.c.Ready() == nil })
	if got := string(late.Snapshot()); got != "a,b,c" {
		t.Errorf("the late node holds %q once ready, want a,b,c", got)
	}
}
