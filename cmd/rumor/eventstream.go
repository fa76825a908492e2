package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// streamEvent is one dispatched Server-Sent Event.
type streamEvent struct {
	ID   string // the event's own id field; empty when it had none
	Type string // "message" when the event named none
	Data string
}

// errEventTooLarge means an event exceeded the reader's limit. Reconnecting
// would only replay the same event, so it ends the subscription.
var errEventTooLarge = errors.New("event larger than --max-event-bytes")

// eventReader parses a text/event-stream the way a browser's EventSource
// does (the WHATWG "event stream interpretation"): lines end with LF, CR or
// CRLF; a blank line dispatches; ":" starts a comment; an event without
// data is not dispatched but its id still moves the resume position; and
// an event cut off by the end of the stream is discarded, never delivered
// half and never counted as received.
type eventReader struct {
	sc      *bufio.Scanner
	max     int  // bytes of data per event
	skipLF  bool // the last line ended with CR: an LF right after it belongs to it
	started bool // past the optional byte order mark

	// LastID is the resume position: the id of the last dispatched event
	// (or id-only block). Set it before the first read to continue a
	// previous connection's position.
	LastID string
	// OnRetry is called with every valid retry: field.
	OnRetry func(time.Duration)
	// OnComment, when set, is called with every comment line's text.
	OnComment func(string)

	id, typ string
	hasID   bool
	data    bytes.Buffer
}

func newEventReader(r io.Reader, maxData int) *eventReader {
	er := &eventReader{max: maxData}
	er.sc = bufio.NewScanner(r)
	// A line is at most one data line of a maximal event plus its field name.
	er.sc.Buffer(make([]byte, 0, 4096), maxData+1024)
	er.sc.Split(er.splitLine)
	return er
}

// splitLine splits at LF, CR or CRLF. A CR is a line end at once, even
// when the LF that may follow has not arrived yet: then skipLF drops it.
func (r *eventReader) splitLine(data []byte, atEOF bool) (int, []byte, error) {
	if r.skipLF && len(data) > 0 {
		r.skipLF = false
		if data[0] == '\n' {
			return 1, nil, nil
		}
	}
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\n' {
			return i + 1, data[:i], nil
		}
		if i+1 < len(data) {
			if data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
		} else {
			r.skipLF = true
		}
		return i + 1, data[:i], nil
	}
	// At the end of the stream an unterminated line is dropped with the
	// event it belongs to.
	return 0, nil, nil
}

// Next returns the next dispatched event. It returns io.EOF when the
// stream ends cleanly (any incomplete event is discarded), errEventTooLarge
// for an event over the limit, and the reader's error otherwise.
func (r *eventReader) Next() (streamEvent, error) {
	for r.sc.Scan() {
		line := r.sc.Bytes()
		if !r.started {
			r.started = true
			line = bytes.TrimPrefix(line, []byte("\uFEFF"))
		}
		if len(line) == 0 {
			if ev, ok := r.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		if line[0] == ':' {
			if r.OnComment != nil {
				r.OnComment(string(bytes.TrimPrefix(line[1:], []byte(" "))))
			}
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(field) {
		case "event":
			r.typ = string(value)
		case "data":
			if r.data.Len()+len(value)+1 > r.max+1 {
				return streamEvent{}, fmt.Errorf("%w (%d bytes)", errEventTooLarge, r.max)
			}
			r.data.Write(value)
			r.data.WriteByte('\n')
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				r.id, r.hasID = string(value), true
			}
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 32); err == nil && isDigits(value) && r.OnRetry != nil {
				r.OnRetry(time.Duration(ms) * time.Millisecond)
			}
		}
	}
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return streamEvent{}, fmt.Errorf("%w (%d bytes)", errEventTooLarge, r.max)
		}
		return streamEvent{}, err
	}
	return streamEvent{}, io.EOF
}

// dispatch ends the current block: it moves the resume position and
// reports the event if the block had data.
func (r *eventReader) dispatch() (streamEvent, bool) {
	var ev streamEvent
	if r.hasID {
		r.LastID, ev.ID = r.id, r.id
	}
	typ := r.typ
	r.id, r.typ, r.hasID = "", "", false
	if r.data.Len() == 0 {
		return ev, false
	}
	ev.Type = typ
	if ev.Type == "" {
		ev.Type = "message"
	}
	ev.Data = strings.TrimSuffix(r.data.String(), "\n")
	r.data.Reset()
	return ev, true
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}
