package web

// History on request: a channel's retained events as JSON pages, and its
// head for the snapshot-then-stream pattern, with the authorization of a
// stream of that channel. docs/API.md, "History", is the user's guide.

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// maxHistoryLast bounds ?last= on GET /channels/{channel}/history: more
// than a channel retains by default, read a page at a time.
const maxHistoryLast = 100_000

// historyEvent is one event of a history page.
type historyEvent struct {
	ID      string `json:"id"`
	Channel string `json:"channel"`
	Type    string `json:"type,omitempty"`
	Data    string `json:"data"`
	Time    string `json:"time"` // when its origin published it: the time in its id
}

// historyPage is the answer of GET /channels/{channel}/history.
type historyPage struct {
	Channel string         `json:"channel"`
	Node    string         `json:"node"`
	Events  []historyEvent `json:"events"`
	Next    *string        `json:"next"` // ?cursor= of the next page; null before any event
	More    bool           `json:"more"`
	Reset   bool           `json:"reset"`
}

// headAnswer is the answer of GET /channels/{channel}/head.
type headAnswer struct {
	Channel string  `json:"channel"`
	Node    string  `json:"node"`
	Last    *string `json:"last"` // the latest retained event's id; null for none
	Head    string  `json:"head"` // the position to stream from
}

// handleHistory serves GET /channels/{channel}/history: a page of the
// channel's retained events, after=, since= or cursor=, last= and limit=.
func (h *Handler) handleHistory(w http.ResponseWriter, r *http.Request) {
	channel, ok := h.readableChannel(w, r)
	if !ok {
		return
	}
	req, err := historyRequest(r.URL.Query(), time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	req.Channel = channel
	page, err := h.hub.History(req)
	if err != nil {
		h.queryFailed(w, err)
		return
	}
	out := historyPage{Channel: channel, Node: h.nodeName(), Events: make([]historyEvent, len(page.Events)), More: page.More, Reset: page.Reset}
	for i, e := range page.Events {
		out.Events[i] = historyEvent{ID: e.ID.String(), Channel: e.Channel, Type: e.Type, Data: string(e.Data),
			Time: e.ID.Unix().UTC().Format("2006-01-02T15:04:05.000Z07:00")}
	}
	if !page.Next.IsZero() {
		next := page.Next.String()
		out.Next = &next
	}
	writeJSON(w, http.StatusOK, out)
}

// handleHead serves GET /channels/{channel}/head: the channel's latest id
// and the position a stream starts from to get exactly what comes after.
func (h *Handler) handleHead(w http.ResponseWriter, r *http.Request) {
	channel, ok := h.readableChannel(w, r)
	if !ok {
		return
	}
	head, err := h.hub.Head(r.Context(), channel)
	if err != nil {
		h.queryFailed(w, err)
		return
	}
	out := headAnswer{Channel: channel, Node: h.nodeName(), Head: head.Position.String()}
	if !head.Last.IsZero() {
		last := head.Last.String()
		out.Last = &last
	}
	writeJSON(w, http.StatusOK, out)
}

// readableChannel reads the {channel} of a history or head request and
// checks that the request may subscribe to it, answering the refusal if
// not: the reads show what a stream of the channel would.
func (h *Handler) readableChannel(w http.ResponseWriter, r *http.Request) (string, bool) {
	channel := pathChannel(r)
	if err := broker.ValidateChannel(channel); err != nil {
		if _, perr := broker.ParsePattern(channel); perr == nil {
			err = fmt.Errorf("%q is a pattern: history and head are per channel", clip(channel))
		}
		writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	p, _ := broker.ParsePattern(channel) // a channel is a pattern
	// Of rumor's own channels, only rumor.presence.<channel> (presence.go).
	if err := checkStreamPattern(p); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	if _, aerr := h.authorizeStream(r, []broker.Pattern{p}); aerr != nil {
		h.refuse(w, r, aerr)
		return "", false
	}
	return channel, true
}

// queryFailed answers a failed History or Head.
func (h *Handler) queryFailed(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, broker.ErrBadQuery), errors.Is(err, broker.ErrBadChannel):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, broker.ErrJoining), errors.Is(err, broker.ErrClosed):
		writeUnavailable(w, errorBody{Error: err.Error()})
	default:
		h.log.Error("history query failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// historyRequest reads a history request's parameters: where it starts (at
// most one of after, since and cursor), last and limit.
func historyRequest(q url.Values, now time.Time) (broker.HistoryRequest, error) {
	var req broker.HistoryRequest
	var starts []string
	for _, name := range []string{"after", "since", "cursor"} {
		if _, ok := q[name]; ok {
			starts = append(starts, name)
		}
	}
	if len(starts) > 1 {
		return req, fmt.Errorf("%s: give one of after, since and cursor", strings.Join(starts, " and "))
	}
	if len(starts) == 1 {
		name := starts[0]
		vs := q[name]
		if len(vs) > 1 {
			return req, fmt.Errorf("%s: give it once", name)
		}
		var err error
		switch name {
		case "since":
			req.After, err = parseSince(vs[0], now)
		default:
			req.After, err = parsePosition(name, vs[0])
		}
		if err != nil {
			return req, err
		}
	}
	var err error
	if req.Last, err = parseCount(q, "last", 0, maxHistoryLast); err != nil {
		return req, err
	}
	req.Limit, err = parseCount(q, "limit", broker.DefaultHistoryLimit, broker.MaxHistoryLimit)
	return req, err
}

// parsePosition reads an event id or a position (a stream's id line, a
// page's next, a head).
func parsePosition(name, v string) (broker.Position, error) {
	p, err := broker.ParsePosition(v)
	if err != nil {
		return broker.Position{}, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// Bounds of ?since=: a duration up to ten years back, or a time from 1970
// to 9999.
const maxSince = 10 * 365 * 24 * time.Hour

// parseSince reads ?since=: a Go duration back from now ("90s", "5m",
// "1h30m") or an RFC 3339 time ("2026-12-08T06:00:00Z"), and returns the
// position of a client that has seen everything published before it.
func parseSince(v string, now time.Time) (broker.Position, error) {
	bad := func() (broker.Position, error) {
		return broker.Position{}, fmt.Errorf("since %q: want a duration back from now (90s, 5m, 1h) or an RFC 3339 time (2026-12-08T06:00:00Z)", clip(v))
	}
	var at time.Time
	if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 || d > maxSince {
			return bad()
		}
		at = now.Add(-d)
	} else if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		at = t
	} else {
		return bad()
	}
	ms := at.UnixMilli()
	if ms <= 0 || at.Year() > 9999 {
		return bad()
	}
	return broker.Since(ms), nil
}
