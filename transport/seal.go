package transport

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// The relay's record layer. After the handshake, every byte of a relay
// connection, both ways, travels in sealed records:
//
//	length  4 bytes, big endian: the plaintext's length, 1..maxRecord
//	sealed  AES-256-GCM(key, nonce, plaintext, additional data = length),
//	        the plaintext's length plus a 16-byte tag
//
// The nonce is never sent: it is the record's number in its direction (4 zero
// bytes, then a 64-bit big-endian counter from 0 on every connection). A
// record that was altered, cut, dropped, replayed or moved is opened under
// another number or key than it was sealed with, so it does not
// authenticate, and the reader fails for good: the link closes and redials
// as on any read error, and resends what the peer did not acknowledge.
//
// Each connection and direction has its own key (sealKeys), derived from the
// relay key, both handshake nonces (fresh on every connection, so a counter
// never repeats under a key) and both origins. The direction is in the
// derivation, so a record reflected back to its sender does not open.
// Every rekeyBytes of plaintext a direction's key ratchets forward, on both
// ends at the same record, which keeps AES-GCM far inside its per-key
// limits on a link that stays up for months.
//
// Without a gossip key the relay key derives from the label alone, which is
// no secret: sealing then hides nothing from whoever knows the label. The
// relay seals anyway, so that there is one code path, and a configured
// gossip key always means sealed relay traffic; it costs about a
// microsecond per 4 KiB record.
const (
	recordHeader = 4
	maxRecord    = 64 << 10 // plaintext bytes per record: one flush of the relay's 64 KiB writers
	recordTag    = 16       // GCM tag
	rekeyBytes   = 1 << 34  // plaintext per key before it ratchets (16 GiB)
)

var errSeal = errors.New("relay record rejected")

// sealKeys derives the two keys of one relay connection: dialler to
// listener, and listener to dialler.
func sealKeys(relayKey, nonceD, nonceL []byte, originD, originL uint64) (dl, ld []byte, err error) {
	salt := append(append([]byte(nil), nonceD...), nonceL...)
	var o [16]byte
	binary.BigEndian.PutUint64(o[:8], originD)
	binary.BigEndian.PutUint64(o[8:], originL)
	dl, err = hkdf.Key(sha256.New, relayKey, salt, "rumor relay v2 dialler to listener "+string(o[:]), 32)
	if err != nil {
		return nil, nil, err
	}
	ld, err = hkdf.Key(sha256.New, relayKey, salt, "rumor relay v2 listener to dialler "+string(o[:]), 32)
	return dl, ld, err
}

// sealState is one direction of a sealed connection.
type sealState struct {
	key   []byte
	aead  cipher.AEAD
	seq   uint64 // the next record's number
	bytes int64  // plaintext under the current key
	rekey int64  // ratchet after this much plaintext
	nonce [12]byte
}

func newSealState(key []byte, rekey int64) (sealState, error) {
	s := sealState{key: key, rekey: rekey}
	return s, s.setKey(key)
}

func (s *sealState) setKey(key []byte) error {
	b, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return err
	}
	s.key, s.aead = key, a
	return nil
}

// next returns the nonce of the next record.
func (s *sealState) next() ([]byte, error) {
	if s.seq == 1<<64-1 {
		return nil, fmt.Errorf("%w: record counter exhausted", errSeal)
	}
	binary.BigEndian.PutUint64(s.nonce[4:], s.seq)
	return s.nonce[:], nil
}

// done counts a record of n plaintext bytes, sealed or opened.
func (s *sealState) done(n int) error {
	s.seq++
	s.bytes += int64(n)
	if s.bytes < s.rekey {
		return nil
	}
	s.bytes = 0
	k, err := hkdf.Key(sha256.New, s.key, nil, "rumor relay v2 next key", 32)
	if err != nil {
		return err
	}
	return s.setKey(k)
}

// sealedConn is a relay connection after the handshake: each Write is sent
// as one or more records, and Read returns the plaintext of records that
// authenticate. Like net.Conn, its methods may be called from several
// goroutines; deadlines, addresses and Close go to the connection below.
// A read that times out can be retried; any other read or write error is
// final.
type sealedConn struct {
	net.Conn

	rmu   sync.Mutex
	r     *bufio.Reader // holds a whole record, so a timeout loses nothing
	in    sealState
	plain []byte // what is left of the current record
	pbuf  []byte // plaintext of a record larger than the caller's buffer
	rerr  error

	wmu  sync.Mutex
	out  sealState
	whdr [recordHeader]byte // a field: on the stack it would escape through the cipher.AEAD
	wbuf []byte
	werr error
}

// seal wraps conn, sealing what is written with send and opening what is
// read with recv.
func seal(conn net.Conn, send, recv []byte) (*sealedConn, error) {
	return sealWith(conn, send, recv, rekeyBytes)
}

func sealWith(conn net.Conn, send, recv []byte, rekey int64) (*sealedConn, error) {
	out, err := newSealState(send, rekey)
	if err != nil {
		return nil, err
	}
	in, err := newSealState(recv, rekey)
	if err != nil {
		return nil, err
	}
	return &sealedConn{Conn: conn, r: bufio.NewReaderSize(conn, recordHeader+maxRecord+recordTag), in: in, out: out}, nil
}

// Write seals p in records of at most maxRecord bytes, each written to the
// connection at once.
func (c *sealedConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxRecord)]
		nonce, err := c.out.next()
		if err != nil {
			c.werr = err
			return n, err
		}
		binary.BigEndian.PutUint32(c.whdr[:], uint32(len(chunk)))
		b := append(c.wbuf[:0], c.whdr[:]...)
		b = c.out.aead.Seal(b, nonce, chunk, c.whdr[:])
		c.wbuf = b
		if err := c.out.done(len(chunk)); err != nil {
			c.werr = err
			return n, err
		}
		// A record cut short by an error or a deadline cannot be finished
		// later: the stream is broken from here on.
		if _, err := c.Conn.Write(b); err != nil {
			c.werr = err
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// Read returns plaintext from the current record, or waits for the next
// one, opens it and returns it with the records after it that have already
// arrived whole and fit in p. Like a read of the connection below, it
// returns what is there: the relay's readers end a batch (an ack, a flush)
// when nothing more is buffered, and one Read per record would end one per
// peer flush.
func (c *sealedConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(c.plain) > 0 {
		n := copy(p, c.plain)
		c.plain = c.plain[n:]
		return n, nil
	}
	if c.rerr != nil {
		return 0, c.rerr
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	for {
		m, err := c.readRecord(p[n:])
		n += m
		if err != nil {
			if n > 0 {
				return n, nil // the error is kept for the next Read
			}
			return 0, err
		}
		if m == 0 { // larger than p: kept in c.plain
			k := copy(p[n:], c.plain)
			c.plain = c.plain[k:]
			return n + k, nil
		}
		if !c.arrived(len(p) - n) {
			return n, nil
		}
	}
}

// arrived reports whether the next record is buffered whole, and is no
// larger than room, so that it can be opened without waiting.
func (c *sealedConn) arrived(room int) bool {
	if c.r.Buffered() < recordHeader {
		return false
	}
	hdr, _ := c.r.Peek(recordHeader)
	n := int(binary.BigEndian.Uint32(hdr))
	return n <= room && c.r.Buffered() >= recordHeader+n+recordTag
}

// readRecord reads and opens the next record: straight into p when it fits
// (and returns its length), otherwise into c.plain (and returns 0).
func (c *sealedConn) readRecord(p []byte) (int, error) {
	hdr, err := c.r.Peek(recordHeader)
	if err != nil {
		return 0, c.readErr(len(hdr), err)
	}
	n := int(binary.BigEndian.Uint32(hdr))
	if n == 0 || n > maxRecord {
		c.rerr = fmt.Errorf("%w: record %d claims %d bytes (1 to %d)", errSeal, c.in.seq, n, maxRecord)
		return 0, c.rerr
	}
	rec, err := c.r.Peek(recordHeader + n + recordTag)
	if err != nil {
		return 0, c.readErr(len(rec), err)
	}
	dst := p
	if len(p) < n {
		if cap(c.pbuf) < n {
			c.pbuf = make([]byte, n, maxRecord)
		}
		dst = c.pbuf
	}
	nonce, err := c.in.next()
	if err != nil {
		c.rerr = err
		return 0, err
	}
	plain, err := c.in.aead.Open(dst[:0], nonce, rec[recordHeader:], rec[:recordHeader])
	if err != nil {
		c.rerr = fmt.Errorf("%w: record %d does not authenticate (altered, replayed, reordered or reflected)", errSeal, c.in.seq)
		return 0, c.rerr
	}
	_, _ = c.r.Discard(len(rec))
	if err := c.in.done(n); err != nil {
		c.rerr = err
		return 0, err
	}
	if len(p) >= n {
		return n, nil
	}
	c.plain = plain
	return 0, nil
}

// readErr says why a record could not be read whole. A timeout leaves the
// bytes read so far in the buffer for the next Read; the end of the stream
// is fine between records and a truncation inside one.
func (c *sealedConn) readErr(got int, err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	if err == io.EOF && got == 0 {
		c.rerr = io.EOF
	} else if err == io.EOF {
		c.rerr = fmt.Errorf("%w: record %d truncated after %d bytes: %w", errSeal, c.in.seq, got, io.ErrUnexpectedEOF)
	} else {
		c.rerr = err
	}
	return c.rerr
}
