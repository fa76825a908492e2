package main

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sessionStream is an open event stream on a node, read line by line.
type sessionStream struct {
	lines chan line // closed at the end of the stream
}

// line is one line of a stream and when it was read.
type line struct {
	text string
	at   time.Time
}

// openSession opens path on n with header; it stays open until the node
// ends it or the test ends.
func openSession(tb testing.TB, c *testCluster, n *testNode, path string, header http.Header) *sessionStream {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL()+path, nil)
	req.Header = header.Clone()
	resp, err := c.client.Do(req)
	if err != nil {
		cancel()
		tb.Fatalf("GET %s on %s: %v", path, n.name(), err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		resp.Body.Close()
		tb.Fatalf("GET %s on %s = %d, want 200", path, n.name(), resp.StatusCode)
	}
	s := &sessionStream{lines: make(chan line, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(s.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			select {
			case s.lines <- line{sc.Text(), time.Now()}:
			case <-ctx.Done():
				return
			}
		}
	}()
	tb.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return s
}

// waitEnd reads the stream until it ends and returns the data of its
// rumor.end event ("" if it had none) and when that event came.
func (s *sessionStream) waitEnd(tb testing.TB, within time.Duration) (end string, at time.Time) {
	tb.Helper()
	timeout := time.After(within)
	next := false
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				return end, at
			}
			if next {
				end, next = strings.TrimPrefix(l.text, "data: "), false
			}
			if l.text == "event: rumor.end" {
				next, at = true, l.at
			}
		case <-timeout:
			tb.Fatalf("stream still open after %v", within)
		}
	}
}

// A token's streams end at its exp (plus the leeway) on every node, each
// with rumor.end.
func TestTokenExpiryEveryNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const leeway = 500 * time.Millisecond
	c := startClusterWith(t, ctx, 3, func(cfg *Config) { cfg.AuthHMACSecret, cfg.AuthLeeway = testSecret, leeway })
	exp := time.Now().Add(2 * time.Second).Truncate(time.Second)
	h := http.Header{"Authorization": {"Bearer " + token(t, testSecret, map[string]any{
		"sub": "page", "exp": exp.Unix(), "rumor": map[string]any{"subscribe": []string{"orders"}},
	})}}
	var streams []*sessionStream
	for _, n := range c.nodes {
		streams = append(streams, openSession(t, c, n, "/channels/orders", h))
	}
	for i, s := range streams {
		end, at := s.waitEnd(t, 10*time.Second)
		if !strings.Contains(end, `"reason":"expired"`) {
			t.Errorf("%s: stream ended with rumor.end %q, want reason expired", c.nodes[i].name(), end)
		}
		if d := at.Sub(exp.Add(leeway)); d < 0 || d > 2*time.Second {
			t.Errorf("%s: stream ended %v after exp plus the leeway, want then", c.nodes[i].name(), d)
		}
	}
}
