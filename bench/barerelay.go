package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// The bare relay makes the bare loop the floor of a cluster: three bare
// processes, the first writing every publish to the other two over plain
// TCP, which fan it out to their own subscribers. No ack, no order, no
// encryption, no resend, no membership: one length-prefixed write per
// peer, under the publish lock, and a reader that fans out what it reads.
// Measured beside rumor-3 with the same load, it tells the hop's own cost
// on this machine (a second process's wake-ups on shared cores) apart
// from what rumor adds to it.

// maxRelayFrame bounds a relay frame: a channel name and one event.
const maxRelayFrame = maxBody + 1<<10

// RelayTo dials every address (retrying until ctx ends) and from then on
// writes each publish to all of them. Call it before serving publishes.
func (b *Bare) RelayTo(ctx context.Context, addrs []string) error {
	var d net.Dialer
	for _, a := range addrs {
		for {
			c, err := d.DialContext(ctx, "tcp", a)
			if err == nil {
				b.mu.Lock()
				b.peers = append(b.peers, c)
				b.mu.Unlock()
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("relay to %s: %w", a, err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// relay writes one event to every peer. Called with b.mu held, so frames
// go out in publish order. A peer that fails is dropped.
func (b *Bare) relay(ch string, data []byte) {
	out := binary.BigEndian.AppendUint32(b.out[:0], uint32(len(ch)))
	out = append(out, ch...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
	out = append(out, data...)
	b.out = out
	keep := b.peers[:0]
	for _, c := range b.peers {
		_ = c.SetWriteDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write(out); err != nil {
			c.Close()
			continue
		}
		keep = append(keep, c)
	}
	clear(b.peers[len(keep):])
	b.peers = keep
}

// ServeRelay accepts peers' relay connections on ln and fans out every
// event they write, until ln is closed.
func (b *Bare) ServeRelay(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go b.readRelay(c)
	}
}

func (b *Bare) readRelay(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	var buf []byte
	next := func() ([]byte, error) {
		var n [4]byte
		if _, err := io.ReadFull(br, n[:]); err != nil {
			return nil, err
		}
		size := binary.BigEndian.Uint32(n[:])
		if size > maxRelayFrame {
			return nil, fmt.Errorf("relay frame of %d bytes", size)
		}
		if cap(buf) < int(size) {
			buf = make([]byte, size)
		}
		p := buf[:size]
		_, err := io.ReadFull(br, p)
		return p, err
	}
	for {
		chb, err := next()
		if err != nil {
			return
		}
		ch := string(chb)
		data, err := next()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.fanout(ch, data) // frames a copy: data's buffer is reused
		b.mu.Unlock()
	}
}
