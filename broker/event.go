package broker

import (
	"encoding/json"
	"time"
)

// Message is what a publisher asks to publish.
type Message struct {
	Channel string
	Type    string // SSE event type; empty means the default "message"
	Data    []byte // UTF-8 text, kept byte for byte
	Key     string // idempotency key; empty means none
}

// Event is a published message with its id. Events are immutable once
// published and shared by every subscriber and the history; never modify one.
type Event struct {
	ID      ID
	Channel string
	Type    string
	Data    []byte
	Key     string    // idempotency key, carried so that a retry on any node finds the first id
	Born    time.Time // wall clock at the origin when published, for latency metrics

	pos   Position // this node's position once the event was delivered here
	frame []byte   // the SSE encoding, built once and shared by every subscriber
}

// Position returns what a client has passed once it has this event and
// everything this node delivered before it: the id its frame carries. It
// is the bare ID until the event is delivered.
func (e *Event) Position() Position {
	if e.pos.Last.IsZero() {
		return PositionOf(e.ID)
	}
	return e.pos
}

// Size is the event's weight against history budgets.
func (e *Event) Size() int {
	return len(e.Data) + len(e.Channel) + len(e.Type) + len(e.Key) + len(e.frame) + 128
}

// Frame returns the event's SSE encoding: id, event type (if any) and one
// data line per payload line, then a blank line. The bytes are shared: do not
// modify them.
func (e *Event) Frame() []byte {
	if e.frame == nil {
		// Room for the fields and one data line: one allocation, usually.
		e.frame = appendFrame(make([]byte, 0, len(e.Data)+len(e.Type)+80), e.Position(), e.Type, e.Data)
	}
	return e.frame
}

// AppendFrame appends the SSE encoding of one event to dst. Type must be a
// valid type or empty. Data is split at CR, LF and CRLF into data lines, so
// no payload can add a field or end the event early.
func AppendFrame(dst []byte, id ID, typ string, data []byte) []byte {
	return appendFrame(dst, PositionOf(id), typ, data)
}

func appendFrame(dst []byte, p Position, typ string, data []byte) []byte {
	dst = append(dst, "id: "...)
	dst = p.Append(dst)
	dst = append(dst, '\n')
	if typ != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, typ...)
		dst = append(dst, '\n')
	}
	return appendData(dst, data)
}

func appendData(dst, data []byte) []byte {
	start := 0
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c != '\n' && c != '\r' {
			continue
		}
		dst = append(dst, "data: "...)
		dst = append(dst, data[start:i]...)
		dst = append(dst, '\n')
		if c == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		start = i + 1
	}
	dst = append(dst, "data: "...)
	dst = append(dst, data[start:]...)
	return append(dst, '\n', '\n')
}

// ResetFrame is the SSE encoding of the reset signal for a stream that
// asked to resume from a position that is no longer retained. It carries no
// id, so the client's resume position stays where it was until the next
// real event.
func ResetFrame(after string) []byte {
	dst := append([]byte(nil), "event: "+ResetType+"\n"...)
	// after comes from the client's Last-Event-ID: escape it so the data
	// stays one JSON object whatever it holds.
	q, _ := json.Marshal(after)
	data := append([]byte(`{"lastEventId":`), q...)
	return appendData(dst, append(data, '}'))
}
