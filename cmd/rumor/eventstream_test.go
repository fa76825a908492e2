package main

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// readAll parses a whole stream and returns its events, the final resume
// position, the retry: values seen and the error that ended it.
func readAll(r io.Reader, max int) (evs []streamEvent, last string, retries []time.Duration, err error) {
	er := newEventReader(r, max)
	er.OnRetry = func(d time.Duration) { retries = append(retries, d) }
	for {
		ev, err := er.Next()
		if err != nil {
			return evs, er.LastID, retries, err
		}
		evs = append(evs, ev)
	}
}

func TestEventReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []streamEvent
		last    string
		retries []time.Duration
	}{
		{"one event", "id: 1\ndata: hello\n\n", []streamEvent{{"1", "message", "hello"}}, "1", nil},
		{"type and lines", "id: 2\nevent: order\ndata: a\ndata:\ndata: b\n\n", []streamEvent{{"2", "order", "a\n\nb"}}, "2", nil},
		{"CRLF", "id: 3\r\ndata: x\r\n\r\n", []streamEvent{{"3", "message", "x"}}, "3", nil},
		{"CR", "id: 4\rdata: y\r\r", []streamEvent{{"4", "message", "y"}}, "4", nil},
		{"comments and retry", ": hi\nretry: 2500\n\n: heartbeat\n\nid: 5\ndata: z\n\n", []streamEvent{{"5", "message", "z"}}, "5", []time.Duration{2500 * time.Millisecond}},
		{"bad retry ignored", "retry: 2.5s\nretry: -1\nretry:\n\n", nil, "", nil},
		{"no space after colon", "id:6\ndata:  two spaces\n\n", []streamEvent{{"6", "message", " two spaces"}}, "6", nil},
		{"field without colon", "id: 7\ndata\n\n", []streamEvent{{"7", "message", ""}}, "7", nil},
		{"BOM", "\uFEFFid: 8\ndata: bom\n\n", []streamEvent{{"8", "message", "bom"}}, "8", nil},
		{"id only moves the position", "id: 9\n\n", nil, "9", nil},
		{"no id keeps the position", "id: 10\ndata: a\n\ndata: b\n\n", []streamEvent{{"10", "message", "a"}, {"", "message", "b"}}, "10", nil},
		{"id with NUL ignored", "id: 11\ndata: a\n\nid: 1\x002\ndata: b\n\n", []streamEvent{{"11", "message", "a"}, {"", "message", "b"}}, "11", nil},
		{"unknown fields ignored", "id: 12\nfoo: bar\ndata: a\n\n", []streamEvent{{"12", "message", "a"}}, "12", nil},
		// The stream ends in the middle of an event: it is dropped, and the
		// resume position stays before it, so a reconnect gets it whole.
		{"cut off event dropped", "id: 13\ndata: whole\n\nid: 14\ndata: hal", []streamEvent{{"13", "message", "whole"}}, "13", nil},
		{"cut off before blank line", "id: 13\ndata: whole\n\nid: 14\ndata: half\n", []streamEvent{{"13", "message", "whole"}}, "13", nil},
	}
	for _, tt := range tests {
		for _, reader := range []struct {
			name string
			wrap func(io.Reader) io.Reader
		}{{"", func(r io.Reader) io.Reader { return r }}, {" byte by byte", iotest.OneByteReader}} {
			evs, last, retries, err := readAll(reader.wrap(strings.NewReader(tt.in)), 1<<20)
			if !errors.Is(err, io.EOF) {
				t.Errorf("%s%s: error %v, want io.EOF", tt.name, reader.name, err)
			}
			if !reflect.DeepEqual(evs, tt.want) || last != tt.last || !reflect.DeepEqual(retries, tt.retries) {
				t.Errorf("%s%s: read %q =\n  %q, last %q, retries %v\nwant\n  %q, last %q, retries %v",
					tt.name, reader.name, tt.in, evs, last, retries, tt.want, tt.last, tt.retries)
			}
		}
	}
}

// A read error mid-event drops the event too, and is reported.
func TestEventReaderErrorDropsPartialEvent(t *testing.T) {
	boom := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("id: 1\ndata: a\n\nid: 2\ndata: b"), iotest.ErrReader(boom))
	evs, last, _, err := readAll(r, 1<<20)
	if !errors.Is(err, boom) || len(evs) != 1 || last != "1" {
		t.Errorf("readAll = %q, last %q, %v; want one event, last 1, %v", evs, last, err, boom)
	}
}

// The r3labs client's scanner stops at 64 KiB; this reader takes events up
// to its limit, whatever their shape, and refuses bigger ones.
func TestEventReaderLargeEvents(t *testing.T) {
	line := strings.Repeat("x", 200<<10)
	lines := strings.TrimSuffix(strings.Repeat(strings.Repeat("y", 99)+"\n", 2<<10), "\n")
	for _, data := range []string{line, lines} {
		frame := string(broker.AppendFrame(nil, broker.ID{Time: 1, Origin: 2, Seq: 3}, "", []byte(data)))
		evs, _, _, err := readAll(strings.NewReader(frame), 1<<20)
		if !errors.Is(err, io.EOF) || len(evs) != 1 || evs[0].Data != data {
			t.Errorf("read a %d-byte event: %d events, %v", len(data), len(evs), err)
		}
		_, _, _, err = readAll(strings.NewReader(frame), 100<<10)
		if !errors.Is(err, errEventTooLarge) {
			t.Errorf("read a %d-byte event with a 100 KiB limit: %v, want errEventTooLarge", len(data), err)
		}
	}
}

// FuzzEventReader: any bytes parse without panic, and every frame the
// broker encodes reads back as the event it encoded (line breaks become LF).
func FuzzEventReader(f *testing.F) {
	f.Add("order", []byte("hello"), []byte("id: 1\ndata: x\n\n"))
	f.Add("", []byte("a\r\nb\rc\nd"), []byte("\r\r\n\n:\xff\x00data"))
	f.Add("t", []byte("\n\n"), []byte("retry: 99999999999999\n\n"))
	f.Fuzz(func(t *testing.T, typ string, data, raw []byte) {
		_, _, _, _ = readAll(strings.NewReader(string(raw)), 1<<10)

		if typ != "" && broker.ValidateType(typ) != nil {
			typ = "t"
		}
		id := broker.ID{Time: 1 << 20, Origin: 7, Seq: 9}
		frame := broker.AppendFrame(nil, id, typ, data)
		evs, last, _, err := readAll(strings.NewReader(string(frame)), 1<<20)
		wantType := typ
		if wantType == "" {
			wantType = "message"
		}
		want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(string(data))
		if !errors.Is(err, io.EOF) || len(evs) != 1 || evs[0] != (streamEvent{id.String(), wantType, want}) || last != id.String() {
			t.Errorf("read AppendFrame(%q, %q) = %q, last %q, %v; want [{%s %s %q}]", typ, data, evs, last, err, id, wantType, want)
		}
	})
}
