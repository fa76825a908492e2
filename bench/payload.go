package bench

import (
	"strconv"
)

// MinSize is the smallest event a run publishes: the stamp must fit.
const MinSize = 64

// stampMagic starts every payload a run publishes.
const stampMagic = "rb1 "

// stamp is what an event's data says about it. A payload is
//
//	rb1 RUN PUB CHAN SEQ SENT xxxx…
//
// in decimal (RUN in hex), padded with x to the event size: one line, so
// it is one data: line on the wire.
type stamp struct {
	run  uint32 // the run: events of other runs on the same channel are foreign
	pub  int    // the publisher
	ch   int    // the channel index
	seq  uint64 // per publisher and channel, from 1, no holes
	sent int64  // Unix nanoseconds right before the publish request
}

// appendPayload appends s padded with 'x' to size bytes (or longer if the
// stamp does not fit).
func appendPayload(dst []byte, s stamp, size int) []byte {
	start := len(dst)
	dst = append(dst, stampMagic...)
	dst = strconv.AppendUint(dst, uint64(s.run), 16)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(s.pub), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(s.ch), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, s.seq, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, s.sent, 10)
	dst = append(dst, ' ')
	for len(dst)-start < size {
		dst = append(dst, 'x')
	}
	return dst
}

// parsePayload reads the stamp of an event's data. It accepts nothing but
// what appendPayload writes: a stamp and x padding.
func parsePayload(data string) (stamp, bool) {
	var s stamp
	if len(data) < len(stampMagic) || data[:len(stampMagic)] != stampMagic {
		return s, false
	}
	rest := data[len(stampMagic):]
	var fields [5]uint64
	for i := range fields {
		end := 0
		for end < len(rest) && rest[end] != ' ' {
			end++
		}
		if end == 0 || end == len(rest) {
			return s, false
		}
		base := 10
		if i == 0 {
			base = 16
		}
		v, err := strconv.ParseUint(rest[:end], base, 64)
		if err != nil {
			return s, false
		}
		fields[i] = v
		rest = rest[end+1:]
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] != 'x' {
			return s, false
		}
	}
	if fields[0] > 1<<32-1 || fields[1] > 1<<20 || fields[2] > 1<<30 || fields[4] > 1<<63-1 {
		return s, false
	}
	s.run, s.pub, s.ch, s.seq, s.sent = uint32(fields[0]), int(fields[1]), int(fields[2]), fields[3], int64(fields[4])
	return s, true
}
