package transport

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rumorhq/rumor/broker"
)

func sampleEvent() *broker.Event {
	return &broker.Event{
		ID:      broker.ID{Time: 0x01a2b3c4d5e60001, Origin: 0x8b7264f89d048d46, Seq: 42},
		Channel: "orders.eu",
		Type:    "order.created",
		Key:     "k-1",
		Data:    []byte("{\"id\":1}\nsecond line"),
		Born:    time.Unix(1_700_000_000, 123456789),
	}
}

func sameEvent(a, b *broker.Event) bool {
	return a.ID == b.ID && a.Channel == b.Channel && a.Type == b.Type && a.Key == b.Key &&
		bytes.Equal(a.Data, b.Data) && a.Born.Equal(b.Born)
}

// valid is what the broker accepts from a publisher, which is what a peer
// may send.
func valid(e *broker.Event) bool {
	if e.ID.Time == 0 || e.ID.Origin == 0 || e.ID.Seq == 0 || len(e.Data) == 0 || !utf8.Valid(e.Data) {
		return false
	}
	if broker.ValidateChannel(e.Channel) != nil {
		return false
	}
	return e.Type == "" || broker.ValidateType(e.Type) == nil
}

func TestEventRoundTrip(t *testing.T) {
	e := sampleEvent()
	got, err := decodeEvent(appendEvent(nil, e))
	if err != nil {
		t.Fatalf("decodeEvent(appendEvent(%v)): %v", e.ID, err)
	}
	if !sameEvent(got, e) {
		t.Fatalf("round trip = %+v, want %+v", got, e)
	}
}

// The frames every link shares are the ones a link would encode, whatever
// the payload's length takes to write, and none can grow into the next.
func TestFramesEncode(t *testing.T) {
	var f frames
	var got, want [][]byte
	for _, n := range []int{1, 100, 127 - 60, 128 - 60, 200, 1 << 14, 1 << 21, 3} {
		e := sampleEvent()
		e.Data = bytes.Repeat([]byte("x"), n)
		e.Born = time.Unix(0, -int64(n)) // negative and positive times
		if n%2 == 0 {
			e.Born = time.Unix(int64(n), 0)
		}
		got = append(got, f.encode(e).b)
		want = append(want, appendFrame(nil, frameEvent, appendEvent(nil, e)))
		if size := eventSize(e); size != len(appendEvent(nil, e)) {
			t.Fatalf("eventSize = %d, want %d", size, len(appendEvent(nil, e)))
		}
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) || cap(got[i]) != len(got[i]) {
			t.Fatalf("frame %d = %x… (cap %d), want %x… (cap %d)", i, got[i][:16], cap(got[i]), want[i][:16], len(want[i]))
		}
		kind, p, _, err := readFrame(bufio.NewReader(bytes.NewReader(got[i])), nil)
		if err != nil || kind != frameEvent {
			t.Fatalf("frame %d: readFrame = %d, %v", i, kind, err)
		}
		if _, err := decodeEvent(p); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
}

// A chunk is reused only once every link that queued one of its frames
// has written it: frames still held keep their bytes, however many events
// are encoded (into recycled chunks) meanwhile.
func TestFramesReuseOnlyReleased(t *testing.T) {
	var f frames
	type queued struct {
		enc  encoded
		want []byte
	}
	var held []queued
	rng := rand.New(rand.NewPCG(1, 2))
	recycled := 0
	seen := map[*chunk]bool{}
	for i := range 20000 {
		e := sampleEvent()
		e.ID.Seq = uint64(i + 1)
		e.Data = bytes.Repeat([]byte{'a' + byte(i%26)}, 1+rng.IntN(3000))
		enc := f.encode(e)
		if enc.c != nil && seen[enc.c] && len(enc.c.buf) == len(enc.b) {
			recycled++ // the first frame of a chunk that came back
		}
		seen[enc.c] = true
		want := appendFrame(nil, frameEvent, appendEvent(nil, e))
		for range rng.IntN(3) { // 0 to 2 links queue it
			held = append(held, queued{enc.hold(), want})
		}
		// Links write in their own time: release a random part of what
		// is held, checking each frame's bytes as it is written.
		for len(held) > 0 && rng.IntN(4) != 0 {
			j := rng.IntN(len(held))
			if q := held[j]; !bytes.Equal(q.enc.b, q.want) {
				t.Fatalf("event %d: a held frame changed before it was written", i)
			}
			held[j].enc.release()
			held[j] = held[len(held)-1]
			held = held[:len(held)-1]
		}
	}
	for _, q := range held {
		if !bytes.Equal(q.enc.b, q.want) {
			t.Fatal("a held frame changed before it was written")
		}
	}
	if recycled == 0 {
		t.Error("no chunk was ever reused: released frames do not go back to the pool")
	}
}

func TestDecodeEventRejects(t *testing.T) {
	for name, mutate := range map[string]func(*broker.Event){
		"zero time":     func(e *broker.Event) { e.ID.Time = 0 },
		"zero origin":   func(e *broker.Event) { e.ID.Origin = 0 },
		"zero seq":      func(e *broker.Event) { e.ID.Seq = 0 },
		"bad channel":   func(e *broker.Event) { e.Channel = "orders.*" },
		"empty channel": func(e *broker.Event) { e.Channel = "" },
		"reserved type": func(e *broker.Event) { e.Type = broker.ResetType },
		"type newline":  func(e *broker.Event) { e.Type = "a\nb" },
		"empty data":    func(e *broker.Event) { e.Data = nil },
		"not UTF-8":     func(e *broker.Event) { e.Data = []byte{0xff, 0xfe} },
	} {
		t.Run(name, func(t *testing.T) {
			e := sampleEvent()
			mutate(e)
			if got, err := decodeEvent(appendEvent(nil, e)); err == nil {
				t.Fatalf("decodeEvent accepted %+v", got)
			}
		})
	}
	p := appendEvent(nil, sampleEvent())
	for i := range len(p) {
		if _, err := decodeEvent(p[:i]); err == nil {
			t.Fatalf("decodeEvent accepted a payload cut to %d of %d bytes", i, len(p))
		}
	}
	if _, err := decodeEvent(append(p, 0)); !errors.Is(err, errFrame) {
		t.Fatalf("decodeEvent with a trailing byte = %v, want errFrame", err)
	}
}

func sampleDigest() broker.Digest {
	return broker.Digest{
		{Origin: 1, Max: 10},
		{Origin: 0xffffffffffffffff, Max: 1 << 40, Gaps: []broker.Range{{From: 1, To: 3}, {From: 7, To: 7}}},
	}
}

func TestDigestRoundTrip(t *testing.T) {
	for _, d := range []broker.Digest{nil, sampleDigest()} {
		got, err := decodeDigest(appendDigest(nil, d))
		if err != nil {
			t.Fatalf("decodeDigest: %v", err)
		}
		if !sameDigest(got, d) {
			t.Fatalf("round trip = %+v, want %+v", got, d)
		}
	}
	bad := appendDigest(nil, broker.Digest{{Origin: 1, Max: 9, Gaps: []broker.Range{{From: 5, To: 4}}}})
	if _, err := decodeDigest(bad); err == nil {
		t.Fatal("decodeDigest accepted a gap that ends before it starts")
	}
}

func sameDigest(a, b broker.Digest) bool {
	return slices.EqualFunc(a, b, func(x, y broker.OriginDigest) bool {
		return x.Origin == y.Origin && x.Max == y.Max && slices.Equal(x.Gaps, y.Gaps)
	})
}

type frame struct {
	kind    byte
	payload string
}

// readFrames reads frames until the input ends or a frame fails.
func readFrames(data []byte) (frames []frame, err error) {
	br := bufio.NewReader(bytes.NewReader(data))
	var buf []byte
	for range len(data) + 1 { // every frame takes at least two bytes
		var kind byte
		var p []byte
		kind, p, buf, err = readFrame(br, buf)
		if err != nil {
			return frames, err
		}
		frames = append(frames, frame{kind, string(p)})
	}
	return frames, errors.New("more frames than bytes")
}

func TestReadFrame(t *testing.T) {
	var stream []byte
	stream = appendFrame(stream, frameEvent, appendEvent(nil, sampleEvent()))
	stream = appendFrame(stream, frameWatermark, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	stream = appendFrame(stream, frameAck, nil)
	frames, err := readFrames(stream)
	if err != io.EOF || len(frames) != 3 {
		t.Fatalf("readFrames = %d frames, %v; want 3, EOF", len(frames), err)
	}
	if _, err := readFrames(stream[:len(stream)-1]); err != io.ErrUnexpectedEOF {
		t.Fatalf("a cut frame = %v, want io.ErrUnexpectedEOF", err)
	}
	huge := appendFrame(nil, frameEvent, nil)
	huge = append(huge[:1], 0xff, 0xff, 0xff, 0xff, 0x7f) // a length far above maxFrame
	if _, err := readFrames(huge); !errors.Is(err, errFrame) {
		t.Fatalf("an oversized frame = %v, want errFrame", err)
	}
}

// Seeds for the fuzz targets are in testdata/fuzz as well.
func FuzzDecodeEvent(f *testing.F) {
	f.Add(appendEvent(nil, sampleEvent()))
	e := sampleEvent()
	e.Type, e.Key = "", ""
	f.Add(appendEvent(nil, e))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		e, err := decodeEvent(p)
		if err != nil {
			return
		}
		if !valid(e) {
			t.Fatalf("decodeEvent accepted an event the broker would refuse: %+v", e)
		}
		again, err := decodeEvent(appendEvent(nil, e))
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
		if !sameEvent(again, e) {
			t.Fatalf("round trip = %+v, want %+v", again, e)
		}
	})
}

// FuzzEventRoundTrip checks encode → decode from the fields: a valid event
// comes back unchanged, any other is refused.
func FuzzEventRoundTrip(f *testing.F) {
	e := sampleEvent()
	f.Add(e.ID.Time, e.ID.Origin, e.ID.Seq, e.Born.UnixNano(), e.Channel, e.Type, e.Key, e.Data)
	f.Add(uint64(1), uint64(1), uint64(1), int64(-1), "a", "", "", []byte("x"))
	f.Add(uint64(0), uint64(1), uint64(1), int64(0), "a.*", "rumor.reset", "", []byte{0xff})
	f.Fuzz(func(t *testing.T, tm, origin, seq uint64, born int64, channel, typ, key string, data []byte) {
		e := &broker.Event{ID: broker.ID{Time: tm, Origin: origin, Seq: seq}, Channel: channel, Type: typ, Key: key, Data: data, Born: time.Unix(0, born)}
		// The links' shared frame is the frame of the payload.
		var f frames
		if frame, want := f.encode(e).b, appendFrame(nil, frameEvent, appendEvent(nil, e)); !bytes.Equal(frame, want) {
			t.Fatalf("frames.encode(%+v) = %x, want %x", e, frame, want)
		}
		got, err := decodeEvent(appendEvent(nil, e))
		if !valid(e) {
			if err == nil {
				t.Fatalf("decodeEvent accepted an invalid event: %+v", got)
			}
			return
		}
		if err != nil {
			t.Fatalf("decodeEvent(appendEvent(%+v)): %v", e, err)
		}
		if !sameEvent(got, e) {
			t.Fatalf("round trip = %+v, want %+v", got, e)
		}
	})
}

func FuzzDecodeDigest(f *testing.F) {
	f.Add(appendDigest(nil, sampleDigest()))
	f.Add(appendDigest(nil, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, p []byte) {
		d, err := decodeDigest(p)
		if err != nil {
			return
		}
		again, err := decodeDigest(appendDigest(nil, d))
		if err != nil {
			t.Fatalf("re-encoded digest does not decode: %v", err)
		}
		if !sameDigest(again, d) {
			t.Fatalf("round trip = %+v, want %+v", again, d)
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	var stream []byte
	stream = appendFrame(stream, frameEvent, appendEvent(nil, sampleEvent()))
	stream = appendFrame(stream, frameDigest, appendDigest(nil, sampleDigest()))
	stream = appendFrame(stream, frameRepairDone, []byte{1})
	f.Add(stream)
	f.Add([]byte{frameAck, 0})
	f.Add([]byte{frameEvent, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, data []byte) {
		frames, _ := readFrames(data)
		var again []byte
		for _, fr := range frames {
			again = appendFrame(again, fr.kind, []byte(fr.payload))
		}
		got, err := readFrames(again)
		if err != io.EOF {
			t.Fatalf("re-encoded frames end with %v, want EOF", err)
		}
		if !slices.Equal(got, frames) {
			t.Fatalf("round trip = %q, want %q", got, frames)
		}
	})
}
