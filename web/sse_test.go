package web

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rumorhq/rumor/broker"
)

// sseEvent is one event as a browser's EventSource dispatches it.
type sseEvent struct {
	Type        string   // "message" unless an event: field said otherwise
	Data        string   // data lines joined with LF
	LastEventID string   // the EventSource's last event ID when it was dispatched
	Fields      []string // names of the fields seen since the previous event, in order
}

// sseParser parses a text/event-stream per the WHATWG HTML "event stream
// interpretation" rules, tolerating CR, LF and CRLF line ends.
type sseParser struct {
	r        *bufio.Reader
	started  bool
	partial  []byte   // bytes read up to the next LF
	lines    []string // lines read but not yet parsed
	lastID   string
	retry    int // the last valid retry: value in ms; -1 if none
	comments []string

	data   strings.Builder
	typ    string
	fields []string
}

func newParser(r io.Reader) *sseParser {
	return &sseParser{r: bufio.NewReader(r), retry: -1}
}

// readLine returns one line without its terminator. It reads up to each
// LF and splits what it read at CR, CRLF and LF (a lone CR before more data
// waits for the next LF, which changes only when a line is seen, not what).
func (p *sseParser) readLine() (string, error) {
	for len(p.lines) == 0 {
		chunk, err := p.r.ReadSlice('\n')
		p.partial = append(p.partial, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if err == io.EOF && len(p.partial) > 0 {
				err = io.ErrUnexpectedEOF // the spec discards an unterminated line
			}
			return "", err
		}
		b := p.partial
		for len(b) > 0 {
			i := bytes.IndexAny(b, "\r\n")
			p.lines = append(p.lines, string(b[:i]))
			if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
			b = b[i+1:]
		}
		p.partial = p.partial[:0]
	}
	line := p.lines[0]
	p.lines = p.lines[1:]
	return line, nil
}

// next returns the next dispatched event; io.EOF once the stream has ended.
func (p *sseParser) next() (sseEvent, error) {
	for {
		line, err := p.readLine()
		if err != nil {
			return sseEvent{}, err
		}
		if !p.started {
			p.started = true
			line = strings.TrimPrefix(line, "\uFEFF")
		}
		if line == "" {
			if ev, ok := p.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		if line[0] == ':' {
			p.comments = append(p.comments, line[1:])
			continue
		}
		field, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		p.fields = append(p.fields, field)
		switch field {
		case "event":
			p.typ = value
		case "data":
			p.data.WriteString(value)
			p.data.WriteByte('\n')
		case "id":
			if !strings.ContainsRune(value, 0) {
				p.lastID = value
			}
		case "retry":
			if n, ok := digits(value); ok {
				p.retry = n
			}
		}
	}
}

func (p *sseParser) dispatch() (sseEvent, bool) {
	data, typ, fields := p.data.String(), p.typ, p.fields
	p.data.Reset()
	p.typ, p.fields = "", nil
	if data == "" {
		return sseEvent{}, false
	}
	if typ == "" {
		typ = "message"
	}
	return sseEvent{Type: typ, Data: strings.TrimSuffix(data, "\n"), LastEventID: p.lastID, Fields: fields}, true
}

func digits(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// parseAll parses a complete stream.
func parseAll(tb testing.TB, b []byte) ([]sseEvent, *sseParser) {
	tb.Helper()
	p := newParser(bytes.NewReader(b))
	var out []sseEvent
	for {
		ev, err := p.next()
		if errors.Is(err, io.EOF) {
			return out, p
		}
		if err != nil {
			tb.Fatalf("parse %q: %v", b, err)
		}
		out = append(out, ev)
	}
}

// normalize is what an EventSource makes of data: every CRLF and CR is a LF.
func normalize(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

func TestParser(t *testing.T) {
	in := "\uFEFFretry: 1500\r\n: hello\rid: 7\nevent: a\ndata: x\ndata:y\ndata\n\n" +
		"data: no id here\r\n\r\n" +
		"id\nretry: 1x\ndata: z\n\n" +
		"event: lost\n\n"
	evs, p := parseAll(t, []byte(in))
	want := []sseEvent{
		{Type: "a", Data: "x\ny\n", LastEventID: "7", Fields: []string{"retry", "id", "event", "data", "data", "data"}},
		{Type: "message", Data: "no id here", LastEventID: "7", Fields: []string{"data"}},
		{Type: "message", Data: "z", LastEventID: "", Fields: []string{"id", "retry", "data"}},
	}
	if len(evs) != len(want) {
		t.Fatalf("parsed %d events %+v, want %d", len(evs), evs, len(want))
	}
	for i := range want {
		if evs[i].Type != want[i].Type || evs[i].Data != want[i].Data || evs[i].LastEventID != want[i].LastEventID ||
			strings.Join(evs[i].Fields, ",") != strings.Join(want[i].Fields, ",") {
			t.Errorf("event %d = %+v, want %+v", i, evs[i], want[i])
		}
	}
	if p.retry != 1500 {
		t.Errorf("retry = %d, want 1500", p.retry)
	}
	if len(p.comments) != 1 || p.comments[0] != " hello" {
		t.Errorf("comments = %q, want [\" hello\"]", p.comments)
	}
}

// FuzzFrame checks the broker's SSE encoding as a browser reads it: for any
// data and event type, the frame is exactly one event with that data (line
// ends normalized to LF), that type and that id, and no other field.
func FuzzFrame(f *testing.F) {
	for _, s := range []string{"x", "a\nb", "a\r\nb", "a\rb", "\n\nid: evil", "event: x\ndata: y", "\x00", "\r", "\n", "\r\n\r\n", " lead", ":comment", "\uFEFFbom", "retry: 1"} {
		f.Add([]byte(s), "", uint64(1))
		f.Add([]byte(s), "order.paid", uint64(0xfff))
	}
	f.Fuzz(func(t *testing.T, data []byte, typ string, seq uint64) {
		if len(data) == 0 || !utf8.Valid(data) {
			t.Skip("the broker rejects empty and non-UTF-8 data")
		}
		if typ != "" && broker.ValidateType(typ) != nil {
			t.Skip("the broker rejects the type")
		}
		id := broker.ID{Time: 1 << 16, Origin: 0xabc, Seq: seq | 1}
		frame := broker.AppendFrame(nil, id, typ, data)
		evs, p := parseAll(t, frame)
		if len(evs) != 1 {
			t.Fatalf("AppendFrame(%q, %q) parsed as %d events: %+v", data, typ, len(evs), evs)
		}
		ev := evs[0]
		wantType := typ
		if wantType == "" {
			wantType = "message"
		}
		if ev.Data != normalize(string(data)) || ev.Type != wantType || ev.LastEventID != id.String() {
			t.Errorf("AppendFrame(%q, %q) parsed as %+v, want data %q type %q id %q", data, typ, ev, normalize(string(data)), wantType, id)
		}
		var ids, types int
		for _, f := range ev.Fields {
			switch f {
			case "id":
				ids++
			case "event":
				types++
			case "data":
			default:
				t.Errorf("AppendFrame(%q, %q) has field %q", data, typ, f)
			}
		}
		if ids != 1 || types != min(len(typ), 1) {
			t.Errorf("AppendFrame(%q, %q) has %d id and %d event fields", data, typ, ids, types)
		}
		if p.retry != -1 || len(p.comments) != 0 {
			t.Errorf("AppendFrame(%q, %q) has retry %d, comments %q", data, typ, p.retry, p.comments)
		}
	})
}
