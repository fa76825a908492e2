package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// runSubscribe is `rumor subscribe`: GET /events for the channels and
// patterns given, printing every event, and reconnecting with
// Last-Event-ID for as long as ctx lasts.
func runSubscribe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rumor subscribe", flag.ContinueOnError)
	server := newServerFlag(getenv)
	fs.Var(server, "server", "rumor node's base `URL`; repeat it or give a comma-separated list, and a failed or ended stream resumes on the next one (env RUMOR_SERVER)")
	lastID := fs.String("last-event-id", "", "resume after this id: the lastEventId that --json prints (a bare event id means everything up to its time)")
	asJSON := fs.Bool("json", false, `print one JSON object per event: {"id","channel","event","data","lastEventId"} (the stream asks for ?envelope=json to learn each event's channel)`)
	retry := fs.Duration("retry", time.Second, "first reconnection delay until the server sends retry:")
	maxRetry := fs.Duration("max-retry", 30*time.Second, "longest delay between reconnection attempts; they never stop")
	idle := fs.Duration("idle-timeout", time.Minute, "reconnect when nothing (not even a heartbeat) arrives for this long")
	maxEvent := fs.String("max-event-bytes", "16MiB", "largest event accepted, a `size` in bytes, KiB, MiB or GiB; keep it above the server's --max-event-bytes")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: rumor subscribe [flags] CHANNEL...\n\nPrints the events of the channels and patterns (orders.*, orders.>) given,\nand reconnects forever, resuming with Last-Event-ID; with several servers\nit moves to the next one whenever a stream fails or ends. A rumor.reset\nsignal (events were missed) is printed to stderr.\n\nFlags:\n")
		printFlags(fs)
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return ignoreHelp(err)
	}
	var errs []error
	if fs.NArg() == 0 {
		errs = append(errs, errors.New("want at least one CHANNEL"))
	}
	bases, err := server.URLs()
	errs = append(errs, err)
	if *retry < 0 || *maxRetry <= 0 || *idle <= 0 {
		errs = append(errs, errors.New("--retry must not be negative, --max-retry and --idle-timeout must be positive"))
	}
	limit, err := parseSize(*maxEvent)
	if err != nil || limit <= 0 || limit > 1<<30 {
		errs = append(errs, fmt.Errorf("--max-event-bytes %q: want a size from 1 byte to 1GiB", *maxEvent))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	q := url.Values{"channel": fs.Args()}
	if *asJSON {
		q.Set("envelope", "json") // each event names its channel: docs/API.md, Which channel
	}
	query := q.Encode()
	var urls []string
	for _, base := range bases {
		u := base.JoinPath("events")
		u.RawQuery = query
		urls = append(urls, u.String())
	}

	tr := newClientTransport()
	defer tr.CloseIdleConnections()
	s := &subscriber{
		urls:     urls,
		client:   &http.Client{Transport: tr},
		lastID:   *lastID,
		maxEvent: int(limit),
		idle:     *idle,
		backoff:  reconnectBackoff{initial: *retry, max: *maxRetry, server: -1, servers: len(urls)},
		json:     *asJSON,
		out:      stdout,
		notice:   stderr,
	}
	return s.run(ctx)
}

func newClientTransport() *http.Transport {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        4,
		IdleConnTimeout:     90 * time.Second,
	}
}

// subscriber is one `rumor subscribe`: a loop of connections that resume
// where the last one ended.
type subscriber struct {
	urls     []string // the servers' /events URLs, tried in turn
	cur      int      // the one connected to, or tried next
	client   *http.Client
	lastID   string // resume position, sent as Last-Event-ID
	maxEvent int
	idle     time.Duration
	backoff  reconnectBackoff
	json     bool
	out      io.Writer
	notice   io.Writer
}

// permanent wraps an error that reconnecting cannot fix: a 4xx answer,
// something that is not an event stream, an event over the limit, output
// that cannot be written.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// errIdle cancels a connection on which nothing arrived for --idle-timeout:
// a half-open TCP connection would otherwise be waited on forever.
var errIdle = errors.New("no data, not even a heartbeat")

// run connects, prints, and reconnects until ctx ends (then it returns
// nil) or a permanent error. A stream the server ends cleanly is resumed
// too: that is how a draining node hands its clients to other nodes.
func (s *subscriber) run(ctx context.Context) error {
	for {
		err := s.connect(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if p, ok := errors.AsType[permanent](err); ok {
			return fmt.Errorf("subscribe: %w", p.err)
		}
		d := s.backoff.next()
		resume := ""
		if s.lastID != "" {
			resume = " after " + s.lastID
		}
		// The node may be gone or draining: resume on the next one.
		if len(s.urls) > 1 {
			s.cur = (s.cur + 1) % len(s.urls)
			resume += " on " + s.urls[s.cur]
		}
		if err == nil {
			fmt.Fprintf(s.notice, "rumor subscribe: stream ended; resuming%s in %v\n", resume, d.Round(time.Millisecond))
		} else {
			fmt.Fprintf(s.notice, "rumor subscribe: %v; resuming%s in %v\n", err, resume, d.Round(time.Millisecond))
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// connect runs one connection until it ends. nil means the server ended
// the stream cleanly.
func (s *subscriber) connect(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(s.idle, func() { cancel(errIdle) })
	defer watchdog.Stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.urls[s.cur], nil)
	if err != nil {
		return permanent{err}
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if s.lastID != "" {
		req.Header.Set("Last-Event-ID", s.lastID)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return cmp.Or(context.Cause(ctx), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		err := fmt.Errorf("%s: %s", resp.Status, serverError(body))
		if c := resp.StatusCode; c >= 400 && c < 500 && c != http.StatusRequestTimeout && c != http.StatusTooManyRequests {
			return permanent{err}
		}
		return err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return permanent{fmt.Errorf("%s answered %q, not an event stream", s.urls[s.cur], resp.Header.Get("Content-Type"))}
	}

	r := newEventReader(idleReader{resp.Body, watchdog, s.idle}, s.maxEvent)
	r.LastID = s.lastID
	r.OnRetry = s.backoff.serverRetry
	for {
		ev, err := r.Next()
		s.lastID = r.LastID
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, errEventTooLarge):
			return permanent{err}
		case err != nil:
			return cmp.Or(context.Cause(ctx), err)
		}
		s.backoff.connected()
		if err := s.print(ev); err != nil {
			return permanent{fmt.Errorf("write: %w", err)}
		}
	}
}

// print writes one event to stdout, or the reset signal to stderr.
func (s *subscriber) print(ev streamEvent) error {
	if ev.Type == broker.ResetType {
		var reset struct {
			LastEventID string `json:"lastEventId"`
		}
		_ = json.Unmarshal([]byte(ev.Data), &reset)
		_, err := fmt.Fprintf(s.notice, "rumor subscribe: %s: events after %q are no longer retained and were missed; refetch your state\n", broker.ResetType, reset.LastEventID)
		return err
	}
	// The id line is the event's id, then after "~" where a resume on any
	// node starts: show the event's id, the one its publisher got back;
	// --json also gives the whole line, to resume with.
	id, _, _ := strings.Cut(ev.ID, "~")
	var b bytes.Buffer
	if s.json {
		// The data is the envelope {"id","channel","type","data"}; a node
		// that sent the data as published leaves the channel empty.
		var env struct {
			Channel *string `json:"channel"`
			Data    *string `json:"data"`
		}
		channel, data := "", ev.Data
		if json.Unmarshal([]byte(ev.Data), &env) == nil && env.Channel != nil && env.Data != nil {
			channel, data = *env.Channel, *env.Data
		}
		line, _ := json.Marshal(struct {
			ID          string `json:"id"`
			Channel     string `json:"channel"`
			Event       string `json:"event"`
			Data        string `json:"data"`
			LastEventID string `json:"lastEventId,omitempty"`
		}{id, channel, ev.Type, data, ev.ID})
		b.Write(line)
		b.WriteByte('\n')
	} else {
		if id != "" {
			fmt.Fprintf(&b, "id: %s\n", id)
		}
		if ev.Type != "message" {
			fmt.Fprintf(&b, "event: %s\n", ev.Type)
		}
		for line := range strings.SplitSeq(ev.Data, "\n") {
			fmt.Fprintf(&b, "data: %s\n", line)
		}
		b.WriteByte('\n')
	}
	_, err := s.out.Write(b.Bytes())
	return err
}

// idleReader pushes the watchdog back whenever bytes arrive.
type idleReader struct {
	r    io.Reader
	t    *time.Timer
	idle time.Duration
}

func (r idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.Reset(r.idle)
	}
	return n, err
}

// reconnectBackoff spaces reconnection attempts. It never gives up. The
// first attempt after a connection waits what the server last asked for
// with retry: (a draining node asks for a jittered delay), and so does
// each server's first attempt when there are several; each round of
// failures over all of them doubles the delay, with jitter, up to max (or
// the server's retry: when that is longer).
type reconnectBackoff struct {
	initial time.Duration // until the server sends retry:
	max     time.Duration
	server  time.Duration // the last retry: received; negative until then
	servers int           // servers tried in turn; 0 means 1
	attempt int           // attempts since the last event arrived
}

func (b *reconnectBackoff) serverRetry(d time.Duration) { b.server = d }

// connected records that a connection delivered an event: the next
// failure starts from the first delay again.
func (b *reconnectBackoff) connected() { b.attempt = 0 }

func (b *reconnectBackoff) next() time.Duration {
	base := b.initial
	if b.server >= 0 {
		base = b.server
	}
	defer func() { b.attempt++ }()
	rounds := b.attempt / max(b.servers, 1)
	if rounds == 0 {
		return base
	}
	limit := max(b.max, base)
	d := max(base, b.initial, time.Millisecond)
	for i := 0; i < rounds && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d - rand.N(d/4+1)
}
