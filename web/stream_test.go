package web

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rumorhq/rumor/broker"
)

func TestStreamConnect(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{Retry: 1500 * time.Millisecond})
	s := ts.openStream(t, "/channels/news", nil)
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
		"Connection":        "keep-alive",
	} {
		if got := s.resp.Header.Get(k); got != want {
			t.Errorf("GET /channels/news header %s = %q, want %q", k, got, want)
		}
	}
	want := "retry: 1500\n: rumor test-node\n\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(s.resp.Body, got); err != nil || string(got) != want {
		t.Fatalf("stream starts with %q (%v), want %q", got, err, want)
	}
	id := ts.publish(t, "news", "hello")
	ev := s.read(t, 1)[0]
	if ev.Data != "hello" || ev.Type != "message" || ev.LastEventID != id {
		t.Errorf("event = %+v, want data hello, type message, id %s", ev, id)
	}

	a := ts.do(t, http.MethodPost, "/channels/news?event=headline", nil, "typed")
	if a.status != http.StatusOK {
		t.Fatalf("POST ?event=headline = %d %s", a.status, a.body)
	}
	if ev := s.read(t, 1)[0]; ev.Type != "headline" || ev.Data != "typed" {
		t.Errorf("typed event = %+v, want type headline, data typed", ev)
	}
}

func TestStreamPatterns(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	star := ts.openStream(t, "/channels/orders.*", nil)
	rest := ts.openStream(t, "/channels/orders.%3E", nil)
	multi := ts.openStream(t, "/events?channel=news&channel=orders.*", nil)
	for _, ch := range []string{"orders", "orders.eu", "news", "orders.eu.paid", "other", "orders.us"} {
		ts.publish(t, ch, ch)
	}
	for _, c := range []struct {
		name string
		s    *sseStream
		want []string
	}{
		{"orders.*", star, []string{"orders.eu", "orders.us"}},
		{"orders.>", rest, []string{"orders.eu", "orders.eu.paid", "orders.us"}},
		{"news + orders.*", multi, []string{"orders.eu", "news", "orders.us"}},
	} {
		var got []string
		for _, ev := range c.s.read(t, len(c.want)) {
			got = append(got, ev.Data)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("stream %s got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestStreamBadRequests(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{MaxPatterns: 2})
	for _, path := range []string{
		"/channels/bad..name",
		"/channels/orders.%3E.eu",
		"/channels/ord*ers",
		"/events",
		"/events?channel=a&channel=b&channel=c", // over MaxPatterns
		"/events?channel=a&channel=b%20c",
		"/channels/a?lastEventId=nope",
	} {
		wantError(t, "GET "+path, ts.do(t, http.MethodGet, path, nil, ""), http.StatusBadRequest)
	}
}

// publishAll publishes data on channel, one request each, and returns the ids.
func (ts *testServer) publishAll(tb testing.TB, channel string, data []string) []string {
	tb.Helper()
	ids := make([]string, len(data))
	for i, d := range data {
		ids[i] = ts.publish(tb, channel, d)
	}
	return ids
}

func numbers(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

// TestResumeSeam resumes while events are being published: the replayed
// and the live events must meet with no gap and no duplicate.
func TestResumeSeam(t *testing.T) {
	for _, how := range []string{"header", "query"} {
		t.Run(how, func(t *testing.T) {
			ts := newServer(t, broker.Options{}, Options{})
			ids := ts.publishAll(t, "seam", numbers(0, 50))

			var wg sync.WaitGroup
			errc := make(chan error, 1)
			wg.Add(1)
			go func() { // more events while the stream connects and replays
				defer wg.Done()
				for i := 50; i < 150; i++ {
					resp, err := ts.Client().Post(ts.URL+"/channels/seam", "text/plain", strings.NewReader(strconv.Itoa(i)))
					if err != nil {
						errc <- err
						return
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						errc <- fmt.Errorf("publish %d: status %d", i, resp.StatusCode)
						return
					}
				}
			}()
			var s *sseStream
			if how == "header" {
				s = ts.openStream(t, "/channels/seam", http.Header{"Last-Event-Id": {ids[9]}})
			} else {
				s = ts.openStream(t, "/channels/seam?lastEventId="+ids[9], nil)
			}
			evs := s.read(t, 140)
			wg.Wait()
			close(errc)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, ev := range evs {
				got = append(got, ev.Data)
				if i < 40 && ev.LastEventID != ids[10+i] {
					t.Errorf("replayed event %d id = %s, want %s", i, ev.LastEventID, ids[10+i])
				}
			}
			if want := numbers(10, 150); !slices.Equal(got, want) {
				t.Errorf("resumed after event 9, got %q, want %q", got, want)
			}
		})
	}
}

func TestResumeHeaderWins(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	ids := ts.publishAll(t, "c", numbers(0, 5))
	s := ts.openStream(t, "/channels/c?lastEventId="+ids[0], http.Header{"Last-Event-Id": {ids[2]}})
	if evs := s.read(t, 2); evs[0].Data != "3" || evs[1].Data != "4" {
		t.Errorf("resumed with header %s and query %s: got %+v, want events 3 and 4", ids[2], ids[0], evs)
	}
}

// TestResumeBadHeader: a browser sends back whatever id it last saw; a
// malformed one must not get a non-200 (it would never reconnect) but a
// reset, and then live events.
func TestResumeBadHeader(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	ts.publishAll(t, "c", numbers(0, 3))
	s := ts.openStream(t, "/channels/c", http.Header{"Last-Event-Id": {"not-an-id"}})
	ev := s.read(t, 1)[0]
	if ev.Type != broker.ResetType || slices.Contains(ev.Fields, "id") {
		t.Errorf("first event = %+v, want a %s without id", ev, broker.ResetType)
	}
	id := ts.publish(t, "c", "live")
	if ev := s.read(t, 1)[0]; ev.Data != "live" || ev.LastEventID != id {
		t.Errorf("after the reset got %+v, want the live event %s", ev, id)
	}
}

func TestResumeReset(t *testing.T) {
	ts := newServer(t, broker.Options{HistorySize: 3}, Options{})
	ids := ts.publishAll(t, "r", numbers(0, 10))
	s := ts.openStream(t, "/channels/r", http.Header{"Last-Event-Id": {ids[1]}})
	evs := s.read(t, 4)
	reset := evs[0]
	if reset.Type != broker.ResetType || slices.Contains(reset.Fields, "id") || reset.LastEventID != "" {
		t.Errorf("first event = %+v, want %s without an id", reset, broker.ResetType)
	}
	if want := `{"lastEventId":"` + ids[1] + `"}`; reset.Data != want {
		t.Errorf("reset data = %s, want %s", reset.Data, want)
	}
	for i, ev := range evs[1:] {
		if ev.Data != strconv.Itoa(7+i) || ev.LastEventID != ids[7+i] {
			t.Errorf("replayed %+v, want event %d (%s)", ev, 7+i, ids[7+i])
		}
	}
}

// TestInjection: no payload can add a field, end an event early, or change
// the id a client resumes from.
func TestInjection(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	s := ts.openStream(t, "/channels/inj", nil)
	payloads := []string{
		"a\rb", "a\nb", "a\r\nb", "\n\nid: x", "\r\rid: x\r\rdata: y", "x\r\n\r\nevent: evil\r\ndata: z",
		"event: evil", "id: 1", "retry: 1", ": comment", "\x00", "a\x00b\nid: \x00", "data: x\n\ndata: y", "\n", "\r\n",
	}
	var ids []string
	for _, p := range payloads {
		ids = append(ids, ts.publish(t, "inj", p))
	}
	for i, ev := range s.read(t, len(payloads)) {
		if ev.Data != normalize(payloads[i]) || ev.Type != "message" || ev.LastEventID != ids[i] {
			t.Errorf("payload %q arrived as %+v, want data %q, type message, id %s", payloads[i], ev, normalize(payloads[i]), ids[i])
		}
		for _, f := range ev.Fields {
			if f != "id" && f != "data" {
				t.Errorf("payload %q added field %q", payloads[i], f)
			}
		}
	}
	if s.retry != 2000 || len(s.comments) != 1 {
		t.Errorf("stream retry = %d, comments %q: a payload changed them", s.retry, s.comments)
	}
	for _, typ := range []string{"x%0Aid:%201", "x%0D", "rumor.reset", "a%20b"} {
		wantError(t, "POST ?event="+typ, ts.do(t, http.MethodPost, "/channels/inj?event="+typ, nil, "d"), http.StatusBadRequest)
	}
}

// TestPayloadRoundTrip: data is kept byte for byte, multi-line and
// pretty-printed JSON included, live and replayed.
func TestPayloadRoundTrip(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	payloads := []string{
		"{\n  \"order\": 42,\n  \"items\": [\n    \"a\",\n    \"b\"\n  ]\n}\n",
		"line 1\nline 2\n\nline 4",
		"  leading spaces\n\ttabs\t",
		"ünïcødé ✓ 🚀",
		":starts like a comment",
		strings.Repeat("x", 100_000),
	}
	s := ts.openStream(t, "/channels/rt", nil)
	ids := ts.publishAll(t, "rt", payloads)
	replay := ts.openStream(t, "/channels/rt?lastEventId="+ids[0], nil)
	live := s.read(t, len(payloads))
	replayed := replay.read(t, len(payloads)-1)
	for i, p := range payloads {
		if live[i].Data != p {
			t.Errorf("live payload %d = %q, want %q", i, clip(live[i].Data), clip(p))
		}
		if i > 0 && replayed[i-1].Data != p {
			t.Errorf("replayed payload %d = %q, want %q", i, clip(replayed[i-1].Data), clip(p))
		}
	}
}

// slowListener shrinks the send buffer of the first accepted connection,
// so that when its client stops reading the server's writes block soon.
type slowListener struct {
	net.Listener
	once sync.Once
}

func (l *slowListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		l.once.Do(func() { _ = tc.SetWriteBuffer(4096) })
	}
	return c, err
}

// TestSlowSubscriber: a client that stops reading delays neither the
// publisher nor the other subscribers; it is cut off with a retry: and
// counted, and what it got before is a gapless prefix.
func TestSlowSubscriber(t *testing.T) {
	ts := startServer(t, broker.Options{QueueSize: 64}, Options{}, func(h http.Handler) *httptest.Server {
		srv := httptest.NewUnstartedServer(h)
		srv.Listener = &slowListener{Listener: srv.Listener}
		srv.Start()
		return srv
	})

	// The slow client, connecting first: a raw connection that reads the
	// headers, then nothing.
	conn, err := net.DialTimeout("tcp", ts.Listener.Addr().String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(testTimeout))
	if _, err := io.WriteString(conn, "GET /channels/firehose HTTP/1.1\r\nHost: rumor\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	slowResp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || slowResp.StatusCode != http.StatusOK {
		t.Fatalf("slow client: %v %v", slowResp, err)
	}

	fast := ts.openStream(t, "/channels/firehose", nil)
	const n, batch = 200, 20
	payload := strings.Repeat("x", 8<<10)
	got := make(chan sseEvent, n)
	go func() { // the fast subscriber keeps reading
		defer close(got)
		for range n {
			ev, err := fast.next()
			if err != nil {
				return
			}
			got <- ev
		}
	}()
	var ids []string
	for i := 0; i < n; i += batch {
		var items []string
		for j := i; j < i+batch; j++ {
			items = append(items, `{"channel":"firehose","data":"`+strconv.Itoa(j)+" "+payload+`"}`)
		}
		a := ts.do(t, http.MethodPost, "/publish", nil, "["+strings.Join(items, ",")+"]")
		var ps []published
		decode(t, a.body, &ps)
		for _, p := range ps {
			ids = append(ids, p.ID)
		}
		// The fast subscriber gets every batch while the slow one reads
		// nothing. (Waiting for it keeps a loaded machine from making it
		// slow too.)
		for j := i; j < i+batch; j++ {
			select {
			case ev, ok := <-got:
				if !ok || ev.LastEventID != ids[j] {
					t.Fatalf("fast subscriber event %d = %+v (open %v), want id %s", j, ev, ok, ids[j])
				}
			case <-time.After(testTimeout):
				t.Fatalf("fast subscriber did not get event %d", j)
			}
		}
	}
	if st := ts.hub.Stats(); st.SlowDisconnects != 1 {
		t.Errorf("SlowDisconnects = %d, want 1", st.SlowDisconnects)
	}

	// Now the slow client reads: a gapless prefix, then retry: and the end.
	body, err := io.ReadAll(slowResp.Body)
	if err != nil {
		t.Fatalf("slow client read: %v; got %d bytes, tail %q", err, len(body), body[max(0, len(body)-300):])
	}
	evs, p := parseAll(t, body)
	if len(evs) == 0 || len(evs) >= n {
		t.Fatalf("slow client got %d events, want some but not all %d", len(evs), n)
	}
	for i, ev := range evs {
		if ev.LastEventID != ids[i] {
			t.Fatalf("slow client event %d has id %s, want %s", i, ev.LastEventID, ids[i])
		}
	}
	if p.retry < 2000 || !strings.Contains(strings.Join(p.comments, "|"), "too slow") {
		t.Errorf("slow client stream ended with retry %d, comments %q; want a retry: of at least 2000 and a comment", p.retry, p.comments)
	}
	if v := ts.metric(t, "rumor_streams_ended_total", map[string]string{"reason": "slow"}); v != 1 {
		t.Errorf("rumor_streams_ended_total{reason=slow} = %v, want 1", v)
	}
	if v := ts.metric(t, "rumor_slow_disconnects_total", nil); v != 1 {
		t.Errorf("rumor_slow_disconnects_total = %v, want 1", v)
	}
	if v := ts.metric(t, "rumor_events_dropped_total", nil); v < 1 {
		t.Errorf("rumor_events_dropped_total = %v, want at least 1", v)
	}
}

// TestStreamClosedHub: a hub that closes under a stream ends it with a
// retry:, and new streams get 200 with a retry:.
func TestStreamClosedHub(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	s := ts.openStream(t, "/channels/c", nil)
	ts.hub.Close()
	if _, err := s.next(); err != io.EOF {
		t.Errorf("stream after hub.Close: %v, want EOF", err)
	}
	if s.retry < 2000 {
		t.Errorf("stream ended with retry %d, want at least 2000", s.retry)
	}
	a := ts.do(t, http.MethodGet, "/channels/c", nil, "")
	if _, p := parseAll(t, []byte(a.body)); a.status != http.StatusOK || p.retry < 2000 {
		t.Errorf("GET after hub.Close = %d %q, want 200 with retry:", a.status, a.body)
	}
	wantError(t, "POST after hub.Close", ts.do(t, http.MethodPost, "/channels/c", nil, "x"), http.StatusServiceUnavailable)
}

// TestStreamDeliversInOrder: a burst queued at once (written in one go)
// arrives complete and in order.
func TestStreamDeliversInOrder(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	s := ts.openStream(t, "/channels/b", nil)
	msgs := make([]broker.Message, 500)
	for i := range msgs {
		msgs[i] = broker.Message{Channel: "b", Data: []byte(strconv.Itoa(i))}
	}
	if _, _, err := ts.hub.Publish(context.Background(), msgs, broker.AckLocal); err != nil {
		t.Fatal(err)
	}
	for i, ev := range s.read(t, len(msgs)) {
		if ev.Data != strconv.Itoa(i) {
			t.Fatalf("event %d = %q, want %d", i, ev.Data, i)
		}
	}
}

// TestKeepAliveAfterStream: a stream's last write deadline must not outlive
// it on a kept-alive connection and fail the next answer there (net/http
// clears it after each response; the http.Server has no WriteTimeout).
// It runs in a synctest bubble, so that the deadline passes exactly.
func TestKeepAliveAfterStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const writeTimeout = 20 * time.Millisecond
		ts := newPipeServer(t, broker.Options{}, Options{WriteTimeout: writeTimeout, MaxStreams: 1})
		ts.openStream(t, "/channels/a", nil)
		var reused []bool
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
		get := func(path string) answer {
			req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, ts.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			return answer{resp.StatusCode, resp.Header, string(b)}
		}
		if a := get("/channels/b"); !strings.Contains(a.body, "retry:") { // over the limit: shed
			t.Fatalf("GET /channels/b = %d %q, want a retry:", a.status, a.body)
		}
		time.Sleep(2 * writeTimeout) // the fake clock: well past the stream's last write deadline
		if a := get("/healthz"); a.status != http.StatusOK {
			t.Errorf("GET /healthz after a stream on the same connection = %d %s", a.status, a.body)
		}
		if len(reused) != 2 || !reused[1] {
			t.Errorf("connections reused: %v, want the second request on the first one's connection", reused)
		}
	})
}
