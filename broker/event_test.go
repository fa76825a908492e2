package broker_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rumorhq/rumor/broker"
)

// sseEvent is one event as a browser's EventSource dispatches it.
type sseEvent struct {
	id, typ, data string
	hasID         bool
}

// parseSSE parses a stream with the WHATWG rules: lines end at CRLF, LF or
// CR; a line starting with ':' is a comment; "field: value" loses one space
// after the colon; a blank line dispatches the event if its data buffer is
// not empty. It returns the dispatched events and every field name other
// than id, event and data, which rumor never writes.
func parseSSE(tb testing.TB, stream []byte) (events []sseEvent, others []string) {
	tb.Helper()
	var cur sseEvent
	var data []byte
	hasData := false
	s := string(stream)
	for s != "" {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			break // an unterminated line is never processed
		}
		line := s[:i]
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			s = s[i+2:]
		} else {
			s = s[i+1:]
		}
		if line == "" {
			if hasData {
				cur.data = strings.TrimSuffix(string(data), "\n")
				events = append(events, cur)
			}
			cur, data, hasData = sseEvent{id: cur.id, hasID: cur.hasID}, nil, false
			continue
		}
		if line[0] == ':' {
			continue
		}
		name, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch name {
		case "data":
			data = append(append(data, value...), '\n')
			hasData = true
		case "event":
			cur.typ = value
		case "id":
			if !strings.Contains(value, "\x00") {
				cur.id, cur.hasID = value, true
			}
		default:
			others = append(others, name)
		}
	}
	return events, others
}

// normalizeNewlines turns CRLF and lone CR into LF, as the parser does.
func normalizeNewlines(b []byte) string {
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

var testID = broker.ID{Time: 0x0192a3b4c5d60001, Origin: 0xdeadbeefcafef00d, Seq: 7}

func TestAppendFrame(t *testing.T) {
	tests := []struct {
		name, typ, data string
		want            string
	}{
		{"plain", "", "hello", "id: " + testID.String() + "\ndata: hello\n\n"},
		{"typed", "order.paid", "x", "id: " + testID.String() + "\nevent: order.paid\ndata: x\n\n"},
		{"LF", "", "a\nb", "id: " + testID.String() + "\ndata: a\ndata: b\n\n"},
		{"CRLF", "", "a\r\nb", "id: " + testID.String() + "\ndata: a\ndata: b\n\n"},
		{"CR", "", "a\rb", "id: " + testID.String() + "\ndata: a\ndata: b\n\n"},
		{"lone CR at end", "", "a\r", "id: " + testID.String() + "\ndata: a\ndata: \n\n"},
		{"CR CR LF", "", "a\r\r\nb", "id: " + testID.String() + "\ndata: a\ndata: \ndata: b\n\n"},
		{"empty lines", "", "\n\n", "id: " + testID.String() + "\ndata: \ndata: \ndata: \n\n"},
		{"leading spaces", "", "  two", "id: " + testID.String() + "\ndata:   two\n\n"},
		{"fields in data", "", "id: 1\nevent: evil\nretry: 1\n\ndata: x", "id: " + testID.String() +
			"\ndata: id: 1\ndata: event: evil\ndata: retry: 1\ndata: \ndata: data: x\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := broker.AppendFrame([]byte("prefix"), testID, tt.typ, []byte(tt.data))
			if string(got) != "prefix"+tt.want {
				t.Errorf("AppendFrame(%q, %q) = %q, want %q", tt.typ, tt.data, got, "prefix"+tt.want)
			}
			events, others := parseSSE(t, got[len("prefix"):])
			if len(events) != 1 || len(others) != 0 {
				t.Fatalf("parsed %+v and fields %q, want one event and no other field", events, others)
			}
			e := events[0]
			if e.id != testID.String() || e.typ != tt.typ || e.data != normalizeNewlines([]byte(tt.data)) {
				t.Errorf("parsed %+v, want id %s, type %q, data %q", e, testID, tt.typ, normalizeNewlines([]byte(tt.data)))
			}
		})
	}
}

func TestEventFrameIsShared(t *testing.T) {
	e := &broker.Event{ID: testID, Channel: "c", Type: "t", Data: []byte("d")}
	a := e.Frame()
	if want := broker.AppendFrame(nil, testID, "t", []byte("d")); !bytes.Equal(a, want) {
		t.Errorf("Frame() = %q, want %q", a, want)
	}
	if b := e.Frame(); &a[0] != &b[0] {
		t.Error("Frame() built the frame twice")
	}
}

func FuzzFrame(f *testing.F) {
	f.Add(uint64(1), uint64(1), uint64(1), "", []byte("hello"))
	f.Add(uint64(0x0192a3b4c5d60001), uint64(7), uint64(99), "order.paid", []byte("a\r\nb\rc\nd\r"))
	f.Add(uint64(5), uint64(5), uint64(5), "x", []byte("\n\nid: 1\nretry: 5\nevent: x\n\n"))
	f.Add(uint64(5), uint64(5), uint64(5), "", []byte(": comment\r\n\r\ndata: x"))
	f.Fuzz(func(t *testing.T, tm, origin, seq uint64, typ string, data []byte) {
		if typ != "" && broker.ValidateType(typ) != nil {
			return
		}
		id := broker.ID{Time: tm, Origin: origin, Seq: seq}
		frame := broker.AppendFrame(nil, id, typ, data)
		events, others := parseSSE(t, frame)
		if len(others) != 0 {
			t.Fatalf("AppendFrame(%q, %q) = %q: fields %q", typ, data, frame, others)
		}
		if len(events) != 1 {
			t.Fatalf("AppendFrame(%q, %q) = %q: %d events, want 1", typ, data, frame, len(events))
		}
		e := events[0]
		if e.id != id.String() || e.typ != typ || e.data != normalizeNewlines(data) {
			t.Fatalf("AppendFrame(%q, %q) = %q, parsed as %+v", typ, data, frame, e)
		}
		if !bytes.HasSuffix(frame, []byte("\n\n")) {
			t.Fatalf("AppendFrame(%q, %q) = %q, does not end the event", typ, data, frame)
		}
	})
}

func TestResetFrame(t *testing.T) {
	for _, after := range []string{
		testID.String(),
		"",
		`x","evil":"1`,
		"a\\b",
		"line\nid: 1\rretry: 1\r\n\r\ndata: x",
		"\x00\x01",
		"\xff\xfe",
	} {
		checkResetFrame(t, after)
	}
}

// FuzzResetFrame: whatever a client sent as Last-Event-ID, the reset
// signal is one event without an id whose data is one JSON object.
func FuzzResetFrame(f *testing.F) {
	f.Add(testID.String())
	f.Add(`"}` + "\n\ndata: x")
	f.Fuzz(func(t *testing.T, after string) {
		checkResetFrame(t, after)
	})
}

func checkResetFrame(tb testing.TB, after string) {
	tb.Helper()
	frame := broker.ResetFrame(after)
	events, others := parseSSE(tb, frame)
	if len(events) != 1 || len(others) != 0 {
		tb.Fatalf("ResetFrame(%q) = %q: events %+v, fields %q; want one event, no other field", after, frame, events, others)
	}
	e := events[0]
	if e.hasID {
		tb.Errorf("ResetFrame(%q) = %q carries an id; the client's position must stay", after, frame)
	}
	if e.typ != broker.ResetType {
		tb.Errorf("ResetFrame(%q) has type %q, want %q", after, e.typ, broker.ResetType)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(e.data), &v); err != nil {
		tb.Fatalf("ResetFrame(%q) data %q is not JSON: %v", after, e.data, err)
	}
	want := string([]rune(after)) // each invalid byte becomes U+FFFD
	if len(v) != 1 || v["lastEventId"] != want {
		tb.Errorf("ResetFrame(%q) data = %v, want lastEventId %q only", after, v, want)
	}
}
