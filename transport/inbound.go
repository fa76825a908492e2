package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

func putU64(b []byte, v uint64) { binary.BigEndian.PutUint64(b, v) }

// serveRelay handles a connection that a peer dialled to send us its
// events. The first magic byte has been read.
func (c *Cluster) serveRelay(conn net.Conn) {
	defer conn.Close()
	sealed, origin, err := acceptHandshake(conn, c.relayKey, c.cfg.Origin, c.timing.dialTimeout, c.contig)
	if err != nil {
		c.metrics.authFailures.Inc()
		c.log.Warn("relay handshake refused", "remote", conn.RemoteAddr().String(), "err", err)
		return
	}
	prove(conn)   // a peer: out of the strangers' budget (guard.go)
	conn = sealed // from here on every byte is sealed (seal.go)
	in, prev := c.trackInbound(origin, conn)
	if in == nil {
		return
	}
	defer close(in.done)
	defer c.untrackInbound(origin, in)
	if prev != nil {
		// The old reader's PeerDown must come before this reader's
		// PeerUp, or it would take the peer out of the order while this
		// connection carries it.
		<-prev.done
	}
	err = c.readRelay(conn, origin, &in.heard)
	c.log.Debug("relay inbound closed", "origin", fmt.Sprintf("%016x", origin), "err", err)
	c.sealFailed(err, fmt.Sprintf("%016x", origin))
	if errors.Is(err, errForged) {
		// It holds the key: a member with a bug, or one in hostile hands.
		c.metrics.forged.Inc()
		c.log.Warn("relay event with a forged origin: connection closed", "remote", conn.RemoteAddr().String(), "err", err)
	}
}

// errForged is an event on a peer's link that names another origin.
var errForged = fmt.Errorf("%w: forged origin", errFrame)

// maxBatch bounds how many frames the relay reader takes before it acks.
const maxBatch = 64

// readRelay reads a peer's events and watermarks, delivers them, and acks.
// It answers digests with repair frames on the same connection.
func (c *Cluster) readRelay(conn net.Conn, origin uint64, heard *atomic.Bool) error {
	br := bufio.NewReaderSize(conn, 64<<10)
	bw := bufio.NewWriterSize(deadlineWriter{conn, c.timing.stallTimeout}, 64<<10)
	var (
		buf, scratch []byte
		out          []byte // one frame to write
		names        = names{}
		up           bool   // the order waits for this peer
		seq          uint64 // last of its events received
		acked        uint64
		maxTime      uint64
		frames       int // frames in this batch
	)
	defer func() {
		if up {
			c.hub.PeerDown(origin)
		}
	}()
	for {
		if frames == 0 || br.Buffered() == 0 {
			// Moved once per batch, not per frame: it is a timer update.
			_ = conn.SetReadDeadline(time.Now().Add(c.timing.stallTimeout))
		}
		kind, p, nb, err := readFrame(br, buf)
		buf = nb
		if err != nil {
			return err
		}
		switch kind {
		case frameEvent:
			e, err := names.event(p)
			if err != nil {
				return err
			}
			if e.ID.Origin != origin {
				return fmt.Errorf("%w: event from origin %016x on %016x's link", errForged, e.ID.Origin, origin)
			}
			c.hub.Deliver(e)
			seq = max(seq, e.ID.Seq)
			maxTime = max(maxTime, e.ID.Time)
		case frameWatermark:
			w, err := decodeU64(p)
			if err != nil {
				return err
			}
			if !up {
				c.hub.PeerUp(origin, w)
				up = true
				heard.Store(true)
			} else {
				maxTime = max(maxTime, w)
			}
		case frameDigest:
			d, err := decodeDigest(p)
			if err != nil {
				return err
			}
			events := c.hub.Missing(d, c.timing.repairLimit, c.timing.repairMinAge)
			size := 0
			for _, e := range events {
				scratch = appendEvent(scratch[:0], e)
				size += len(scratch)
				out = appendFrame(out[:0], frameRepair, scratch)
				if _, err := bw.Write(out); err != nil {
					return err
				}
			}
			var more uint64
			if len(events) >= c.timing.repairLimit {
				more = 1
			}
			out = appendUvarintFrame(out[:0], frameRepairDone, more)
			if _, err := bw.Write(out); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: kind %d from dialler", errFrame, kind)
		}
		// A batch ends when the reader has caught up, or after maxBatch
		// frames: a reader with a backlog must still ack and pass the
		// peer's watermark on, or the whole cluster's order waits for it.
		if frames++; br.Buffered() > 0 && frames < maxBatch {
			continue
		}
		frames = 0
		if up && maxTime > 0 {
			c.hub.Advance(origin, maxTime)
			maxTime = 0
		}
		if seq > acked {
			acked = seq
			out = appendUvarintFrame(out[:0], frameAck, seq)
			if _, err := bw.Write(out); err != nil {
				return err
			}
		}
		if bw.Buffered() > 0 {
			if err := bw.Flush(); err != nil { // deadlineWriter bounds it
				return err
			}
		}
	}
}
