package e2e

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

// sseEvent is one dispatched Server-Sent Event.
type sseEvent struct {
	ID    string // the id field's value, whole (resume information included)
	HasID bool   // the event had an id line of its own
	// CommentID is set when the event's id came only as a ": late id: X"
	// comment, as rumor once sent events older than the stream's newest:
	// ID holds X and HasID stays false, as a browser's lastEventId would.
	CommentID bool
	Type      string // "message" when the event named none
	Data      string
}

// sseReader parses text/event-stream the way EventSource does, as far as
// these tests need: fields id, event and data; comments and retry are
// skipped; a block is dispatched by a blank line and only when it has data;
// an unterminated block at the end of the stream is dropped. It is written
// from the spec, not from rumor's code, so it checks rumor from outside.
type sseReader struct {
	br *bufio.Reader
}

func newSSEReader(r io.Reader) *sseReader { return &sseReader{br: bufio.NewReaderSize(r, 64<<10)} }

// Next returns the next event with data, or the read error (io.EOF at a
// clean end).
func (r *sseReader) Next() (sseEvent, error) {
	var ev sseEvent
	var data strings.Builder
	hasData := false
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return sseEvent{}, io.EOF
			}
			return sseEvent{}, err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if hasData {
				ev.Data = strings.TrimSuffix(data.String(), "\n")
				if ev.Type == "" {
					ev.Type = "message"
				}
				return ev, nil
			}
			ev = sseEvent{}
			continue
		}
		if id, late := strings.CutPrefix(line, ": late id: "); late {
			// Not an id to EventSource; kept only so that the checker can
			// name the event that came without an id line of its own.
			ev.ID, ev.CommentID = id, true
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID, ev.HasID, ev.CommentID = value, true, false
		case "event":
			ev.Type = value
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
			hasData = true
		}
	}
}

func TestSSEReader(t *testing.T) {
	in := "retry: 2000\n: rumor n1\n\n" +
		"id: a\ndata: one\n\n" +
		"event: rumor.reset\ndata: {}\n\n" +
		"id: b\r\ndata: two\r\ndata: lines\r\n\r\n" +
		": late id: c\ndata: old\n\n" +
		"id: d~1-2.3\ndata: resume info\n\n" +
		"id: e\ndata: cut off"
	r := newSSEReader(strings.NewReader(in))
	want := []sseEvent{
		{ID: "a", HasID: true, Type: "message", Data: "one"},
		{Type: "rumor.reset", Data: "{}"},
		{ID: "b", HasID: true, Type: "message", Data: "two\nlines"},
		{ID: "c", CommentID: true, Type: "message", Data: "old"},
		{ID: "d~1-2.3", HasID: true, Type: "message", Data: "resume info"},
	}
	for i, w := range want {
		got, err := r.Next()
		if err != nil || got != w {
			t.Fatalf("Next() #%d = %+v, %v; want %+v", i, got, err, w)
		}
	}
	if got, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("Next() after the last event = %+v, %v; want io.EOF (a cut-off event is dropped)", got, err)
	}
}
