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
	ID    string
	HasID bool
	Type  string // "message" when the event named none
	Data  string
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
			// rumor sends a late event's id as a comment, so that the
			// browser's Last-Event-ID does not move backwards; HasID
			// stays false, as the browser's last event id does.
			ev.ID = id
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID, ev.HasID = value, true
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
		"id: c\ndata: cut off"
	r := newSSEReader(strings.NewReader(in))
	want := []sseEvent{
		{ID: "a", HasID: true, Type: "message", Data: "one"},
		{Type: "rumor.reset", Data: "{}"},
		{ID: "b", HasID: true, Type: "message", Data: "two\nlines"},
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
