package broker

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// ID identifies an event cluster-wide. Every node shows the same ID for the
// same event. IDs are ordered by Time, then Origin, then Seq; that order is
// the delivery order on every node.
type ID struct {
	// Time is the origin's hybrid logical clock when the event was
	// published: Unix milliseconds in the upper 48 bits, a logical counter
	// in the lower 16.
	Time uint64
	// Origin is the incarnation of the node that published the event: a
	// random number chosen at every process start.
	Origin uint64
	// Seq counts the origin's events from 1, with no holes.
	Seq uint64
}

// ErrBadID reports a string that is not an event id.
var ErrBadID = errors.New("invalid event id")

// IsZero reports whether id is the zero ID, which no event carries.
func (id ID) IsZero() bool { return id == ID{} }

// Compare returns -1, 0 or +1 as id sorts before, equal to or after o.
func (id ID) Compare(o ID) int {
	switch {
	case id.Time != o.Time:
		return cmpUint(id.Time, o.Time)
	case id.Origin != o.Origin:
		return cmpUint(id.Origin, o.Origin)
	default:
		return cmpUint(id.Seq, o.Seq)
	}
}

// Less reports whether id sorts before o.
func (id ID) Less(o ID) bool { return id.Compare(o) < 0 }

func cmpUint(a, b uint64) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// Unix returns the wall-clock part of the ID's time.
func (id ID) Unix() time.Time { return time.UnixMilli(int64(id.Time >> 16)) }

// String formats the ID as "TTTTTTTTTTTTTTTT-OOOOOOOOOOOOOOOO-S": time and
// origin as 16 lower-case hex digits, the sequence in hex without padding.
// Clients must treat it as opaque.
func (id ID) String() string { return string(id.Append(make([]byte, 0, 40))) }

// Append appends the ID's text form to b.
func (id ID) Append(b []byte) []byte {
	b = appendHex16(b, id.Time)
	b = append(b, '-')
	b = appendHex16(b, id.Origin)
	b = append(b, '-')
	return strconv.AppendUint(b, id.Seq, 16)
}

const hexDigits = "0123456789abcdef"

func appendHex16(b []byte, v uint64) []byte {
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, hexDigits[(v>>uint(shift))&0xf])
	}
	return b
}

// ParseID parses the text form written by ID.String. It accepts exactly that
// form: lower-case hex, fixed widths, a non-zero origin and sequence.
func ParseID(s string) (ID, error) {
	if len(s) < 35 || len(s) > 50 || s[16] != '-' || s[33] != '-' {
		return ID{}, fmt.Errorf("%w: %q", ErrBadID, clip(s))
	}
	t, ok1 := parseHex(s[:16])
	o, ok2 := parseHex(s[17:33])
	q, ok3 := parseHex(s[34:])
	if !ok1 || !ok2 || !ok3 || len(s[34:]) > 16 || t == 0 || o == 0 || q == 0 || (len(s) > 35 && s[34] == '0') {
		return ID{}, fmt.Errorf("%w: %q", ErrBadID, clip(s))
	}
	return ID{Time: t, Origin: o, Seq: q}, nil
}

func parseHex(s string) (uint64, bool) {
	if s == "" || len(s) > 16 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// clip keeps error messages about hostile input short.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Clock is a hybrid logical clock: it follows the wall clock in
// milliseconds, never goes backwards, and moves past every time it observes
// from peers, so an event published after another was received sorts after
// it. The zero Clock uses time.Now.
type Clock struct {
	mu   sync.Mutex
	last uint64
	Now  func() time.Time // nil means time.Now
}

func (c *Clock) physical() uint64 {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	return uint64(now().UnixMilli()) << 16
}

// Next returns a new time, larger than every time returned or observed before.
func (c *Clock) Next() uint64 {
	p := c.physical()
	c.mu.Lock()
	defer c.mu.Unlock()
	if p > c.last {
		c.last = p
	} else {
		c.last++
	}
	return c.last
}

// Observe moves the clock past t, a time seen from a peer.
func (c *Clock) Observe(t uint64) {
	c.mu.Lock()
	if t > c.last {
		c.last = t
	}
	c.mu.Unlock()
}

// Watermark returns a time that every later Next will exceed.
func (c *Clock) Watermark() uint64 {
	p := c.physical()
	c.mu.Lock()
	defer c.mu.Unlock()
	if p > 0 && p-1 > c.last {
		// Remember the promise: if the wall clock steps back, Next must
		// still exceed it.
		c.last = p - 1
	}
	return c.last
}
