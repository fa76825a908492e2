package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rumorhq/rumor/broker"
)

// The relay protocol runs over one TCP connection per ordered pair of
// nodes, dialled by the sender, after an authenticated handshake
// (auth.go). Frames are a kind byte, a uvarint payload length and the
// payload.
//
// Dialler → listener: frameEvent (the dialler's own events, in sequence
// order), frameWatermark, frameDigest.
// Listener → dialler: frameAck (cumulative sequence of the dialler's events
// received), frameRepair (events the dialler's digest lacked, any origin),
// frameRepairDone.
const (
	frameEvent      byte = 1
	frameWatermark  byte = 2
	frameDigest     byte = 3
	frameAck        byte = 4
	frameRepair     byte = 5
	frameRepairDone byte = 6
)

// maxFrame bounds a frame so a hostile or broken peer cannot make us
// allocate without limit.
const maxFrame = 64 << 20

var errFrame = errors.New("malformed frame")

// appendFrame appends a frame with payload p.
func appendFrame(dst []byte, kind byte, p []byte) []byte {
	dst = append(dst, kind)
	dst = binary.AppendUvarint(dst, uint64(len(p)))
	return append(dst, p...)
}

// appendUvarintFrame appends a frame whose payload is one uvarint.
func appendUvarintFrame(dst []byte, kind byte, v uint64) []byte {
	var p [binary.MaxVarintLen64]byte
	return appendFrame(dst, kind, p[:binary.PutUvarint(p[:], v)])
}

// readFrame reads one frame; the payload is valid until the next call.
func readFrame(r *bufio.Reader, buf []byte) (kind byte, payload, newBuf []byte, err error) {
	kind, err = r.ReadByte()
	if err != nil {
		return 0, nil, buf, err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, nil, buf, noEOF(err)
	}
	if n > maxFrame {
		return 0, nil, buf, fmt.Errorf("%w: %d bytes", errFrame, n)
	}
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, buf, noEOF(err)
	}
	return kind, buf, buf, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// appendEvent encodes e as a frame payload.
func appendEvent(dst []byte, e *broker.Event) []byte {
	dst = binary.BigEndian.AppendUint64(dst, e.ID.Time)
	dst = binary.BigEndian.AppendUint64(dst, e.ID.Origin)
	dst = binary.AppendUvarint(dst, e.ID.Seq)
	dst = binary.AppendVarint(dst, e.Born.UnixNano())
	dst = appendString(dst, e.Channel)
	dst = appendString(dst, e.Type)
	dst = appendString(dst, e.Key)
	dst = binary.AppendUvarint(dst, uint64(len(e.Data)))
	return append(dst, e.Data...)
}

// frames encodes the events this node sends into shared chunks: each
// event is encoded once for every link (with N peers it would otherwise be
// encoded N times). A chunk goes back to the pool once every link that
// queued one of its frames has written it, so encoding allocates nothing
// in steady state. Not safe for concurrent use: the Cluster's lock guards
// it; the frames it returns are safe to write and release from any
// goroutine.
type frames struct {
	cur  *chunk // where the next frame goes; frames holds one reference on it
	pool sync.Pool
}

// chunk is a block of frames. refs counts the frames queued on links and
// not yet written, plus one while frames encodes into it; the release that
// takes it to zero returns it to the pool.
type chunk struct {
	buf  []byte
	refs atomic.Int64
	pool *sync.Pool
}

func (c *chunk) release() {
	if n := c.refs.Add(-1); n == 0 {
		c.buf = c.buf[:0]
		c.pool.Put(c)
	} else if n < 0 {
		panic("transport: frame chunk released more often than held")
	}
}

// encoded is one event's frame, shared by the links that queue it. Each
// queued copy holds a reference on its chunk (hold) and gives it back once
// written (release); a copy that is dropped unwritten just never returns
// its chunk to the pool. The bytes must not be modified.
type encoded struct {
	b []byte
	c *chunk // nil when b has an allocation of its own
}

func (f encoded) hold() encoded {
	if f.c != nil {
		f.c.refs.Add(1)
	}
	return f
}

func (f encoded) release() {
	if f.c != nil {
		f.c.release()
	}
}

// frameChunk is the size of a chunk; a frame over a quarter of it gets an
// allocation of its own.
const frameChunk = 64 << 10

// encode returns e's frameEvent frame, not yet held by anyone.
func (f *frames) encode(e *broker.Event) encoded {
	n := eventSize(e)
	size := 1 + uvarintLen(uint64(n)) + n
	if size > frameChunk/4 {
		return encoded{b: appendEventFrame(make([]byte, 0, size), e, n)}
	}
	if f.cur == nil || cap(f.cur.buf)-len(f.cur.buf) < size {
		if f.cur != nil {
			f.cur.release()
		}
		c, _ := f.pool.Get().(*chunk)
		if c == nil {
			c = &chunk{buf: make([]byte, 0, frameChunk), pool: &f.pool}
		}
		c.refs.Store(1)
		f.cur = c
	}
	c := f.cur
	start := len(c.buf)
	c.buf = appendEventFrame(c.buf, e, n)
	return encoded{b: c.buf[start:len(c.buf):len(c.buf)], c: c}
}

// appendEventFrame appends e's frameEvent frame to dst; n is
// eventSize(e).
func appendEventFrame(dst []byte, e *broker.Event, n int) []byte {
	dst = binary.AppendUvarint(append(dst, frameEvent), uint64(n))
	return appendEvent(dst, e)
}

// eventSize is the length of appendEvent's encoding of e.
func eventSize(e *broker.Event) int {
	born := e.Born.UnixNano()
	return 8 + 8 + uvarintLen(e.ID.Seq) + uvarintLen(uint64(born<<1)^uint64(born>>63)) +
		uvarintLen(uint64(len(e.Channel))) + len(e.Channel) +
		uvarintLen(uint64(len(e.Type))) + len(e.Type) +
		uvarintLen(uint64(len(e.Key))) + len(e.Key) +
		uvarintLen(uint64(len(e.Data))) + len(e.Data)
}

// uvarintLen is the length of binary.AppendUvarint's encoding of x.
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decoder reads fields from a payload, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errFrame
	}
	d.b = nil
}

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errFrame, len(d.b))
	}
	return d.err
}

// decodeEvent decodes and checks an event. The event owns its memory.
func decodeEvent(p []byte) (*broker.Event, error) { return names(nil).event(p) }

// names interns the channel names and event types one relay reader sees:
// they repeat from event to event, and a fresh string for each was a third
// of decoding's allocations. It holds at most maxNames; a nil names interns
// nothing.
type names map[string]string

const maxNames = 1024

func (n names) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := n[string(b)]; ok {
		return s
	}
	s := string(b)
	if n != nil {
		if len(n) >= maxNames {
			clear(n) // a peer cycling through names gets no help, and no growth
		}
		n[s] = s
	}
	return s
}

// event decodes and checks an event, as decodeEvent, with n's names.
func (n names) event(p []byte) (*broker.Event, error) {
	d := decoder{b: p}
	e := &broker.Event{}
	e.ID.Time = d.u64()
	e.ID.Origin = d.u64()
	e.ID.Seq = d.uvarint()
	e.Born = time.Unix(0, d.varint())
	e.Channel = n.intern(d.bytes())
	e.Type = n.intern(d.bytes())
	e.Key = string(d.bytes())
	e.Data = bytes.Clone(d.bytes())
	if err := d.done(); err != nil {
		return nil, err
	}
	if e.ID.Time == 0 || e.ID.Origin == 0 || e.ID.Seq == 0 {
		return nil, fmt.Errorf("%w: zero id field", errFrame)
	}
	if err := broker.ValidateEventChannel(e.Channel); err != nil {
		return nil, err
	}
	if e.Type != "" {
		if err := broker.ValidateType(e.Type); err != nil {
			return nil, err
		}
	}
	if len(e.Data) == 0 || !utf8.Valid(e.Data) {
		// What a publisher could not publish, a peer cannot relay.
		return nil, fmt.Errorf("%w: data empty or not UTF-8", errFrame)
	}
	return e, nil
}

func appendDigest(dst []byte, d broker.Digest) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(d)))
	for _, o := range d {
		dst = binary.BigEndian.AppendUint64(dst, o.Origin)
		dst = binary.AppendUvarint(dst, o.Max)
		dst = binary.AppendUvarint(dst, uint64(len(o.Gaps)))
		for _, g := range o.Gaps {
			dst = binary.AppendUvarint(dst, g.From)
			dst = binary.AppendUvarint(dst, g.To)
		}
	}
	return dst
}

// maxDigestOrigins bounds a digest: origins are node incarnations.
const maxDigestOrigins = 4096

func decodeDigest(p []byte) (broker.Digest, error) {
	d := decoder{b: p}
	n := d.uvarint()
	if n > maxDigestOrigins {
		return nil, fmt.Errorf("%w: %d origins", errFrame, n)
	}
	out := make(broker.Digest, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		o := broker.OriginDigest{Origin: d.u64(), Max: d.uvarint()}
		gaps := d.uvarint()
		if gaps > 1024 {
			return nil, fmt.Errorf("%w: %d gaps", errFrame, gaps)
		}
		for j := uint64(0); j < gaps && d.err == nil; j++ {
			g := broker.Range{From: d.uvarint(), To: d.uvarint()}
			if g.From == 0 || g.To < g.From {
				return nil, fmt.Errorf("%w: bad gap", errFrame)
			}
			o.Gaps = append(o.Gaps, g)
		}
		out = append(out, o)
	}
	return out, d.done()
}

func decodeU64(p []byte) (uint64, error) {
	d := decoder{b: p}
	v := d.u64()
	return v, d.done()
}

func decodeUvarint(p []byte) (uint64, error) {
	d := decoder{b: p}
	v := d.uvarint()
	return v, d.done()
}
