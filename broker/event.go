package broker

import (
	"encoding/json"
	"sync/atomic"
	"time"
	"unicode/utf8"
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
	// envelope is the enveloped SSE encoding (EnvelopeFrame), built by the
	// first stream that asks for it and shared by every other.
	envelope atomic.Pointer[[]byte]

	decoded atomic.Value // of decodedValue: what a face made of Data (Decoded)
}

// Decoded returns what decode makes of the event, computing it once per
// event however many subscribers and goroutines ask: a face that carries
// its own envelope in Data (the Mercure face) parses it once, not once
// per subscriber. decode must be a pure function of the event; if two
// goroutines race, one result wins and both return it. Only one face may
// use it for the events of a channel.
func (e *Event) Decoded(decode func(*Event) any) any {
	if v, ok := e.decoded.Load().(decodedValue); ok {
		return v.v
	}
	e.decoded.CompareAndSwap(nil, decodedValue{decode(e)})
	return e.decoded.Load().(decodedValue).v
}

// decodedValue wraps Decoded's results, which atomic.Value needs of one
// concrete type.
type decodedValue struct{ v any }

// Position returns what a client has passed once it has this event and
// everything this node delivered before it: the id its frame carries. It
// is the bare ID until the event is delivered.
func (e *Event) Position() Position {
	if e.pos.Last.IsZero() {
		return PositionOf(e.ID)
	}
	return e.pos
}

// Size is the event's weight against history budgets. It leaves out the
// enveloped frame, which appears whenever a stream first asks for it: a
// weight that changed while the event is held would unbalance the budgets.
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

// EnvelopeFrame returns the event's enveloped SSE encoding, for streams
// that ask which channel each event came from: the same id and event type
// lines as Frame, and one data line holding the JSON object
//
//	{"id":"ID","channel":"CHANNEL","type":"TYPE","data":"DATA"}
//
// where id is the bare event id (its publisher's), type is left out when the
// event has none, and data is the payload as a JSON string. It is built
// once, by the first stream that needs it, and shared: do not modify it.
func (e *Event) EnvelopeFrame() []byte {
	if f := e.envelope.Load(); f != nil {
		return *f
	}
	f := appendEnvelopeFrame(make([]byte, 0, len(e.Data)+len(e.Channel)+len(e.Type)+160), e.Position(), e)
	// Two streams may build it at once: one copy wins, both are equal.
	e.envelope.CompareAndSwap(nil, &f)
	return *e.envelope.Load()
}

// AppendEnvelope appends the envelope's JSON object (see EnvelopeFrame) to
// dst.
func AppendEnvelope(dst []byte, e *Event) []byte {
	dst = append(dst, `{"id":"`...)
	dst = e.ID.Append(dst)
	// Channel names and types are plain ASCII without quotes or
	// backslashes (ValidateChannel, ValidateType): no escaping.
	dst = append(dst, `","channel":"`...)
	dst = append(dst, e.Channel...)
	if e.Type != "" {
		dst = append(dst, `","type":"`...)
		dst = append(dst, e.Type...)
	}
	dst = append(dst, `","data":`...)
	dst = appendJSONString(dst, e.Data)
	return append(dst, '}')
}

func appendEnvelopeFrame(dst []byte, p Position, e *Event) []byte {
	dst = append(dst, "id: "...)
	dst = p.Append(dst)
	dst = append(dst, '\n')
	if e.Type != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, e.Type...)
		dst = append(dst, '\n')
	}
	// The JSON escapes every line break: one data line.
	dst = append(dst, "data: "...)
	dst = AppendEnvelope(dst, e)
	return append(dst, '\n', '\n')
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD (events are UTF-8, this keeps the output JSON whatever it gets);
// U+2028 and U+2029 are escaped too, so the text is also JavaScript.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\u202`...)
			dst = append(dst, hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
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
