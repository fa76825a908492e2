package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/prometheus/client_golang/prometheus"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// memConn is a connection in memory: Read takes from r, Write appends to w.
// Only Read and Write may be called.
type memConn struct {
	net.Conn
	r io.Reader
	w io.Writer
}

func (c memConn) Read(p []byte) (int, error) {
	if c.r == nil {
		return 0, io.EOF
	}
	return c.r.Read(p)
}

func (c memConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// testSealKeys are the keys of one made-up connection.
func testSealKeys(tb testing.TB) (dl, ld []byte) {
	tb.Helper()
	dl, ld, err := sealKeys(relayKey(testKey, testLabel), bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 16), 1, 2)
	if err != nil {
		tb.Fatal(err)
	}
	return dl, ld
}

// sealRecords seals each message as a dialler (or, with fromListener, the
// listener) would, and returns the records as they go on the wire.
func sealRecords(tb testing.TB, fromListener bool, msgs ...[]byte) [][]byte {
	tb.Helper()
	dl, ld := testSealKeys(tb)
	if fromListener {
		dl, ld = ld, dl
	}
	var wire bytes.Buffer
	sc, err := seal(memConn{w: &wire}, dl, ld)
	if err != nil {
		tb.Fatal(err)
	}
	for _, m := range msgs {
		if n, err := sc.Write(m); n != len(m) || err != nil {
			tb.Fatalf("Write(%d bytes) = %d, %v", len(m), n, err)
		}
	}
	var recs [][]byte
	for b := wire.Bytes(); len(b) > 0; {
		n := recordHeader + int(binary.BigEndian.Uint32(b)) + recordTag
		recs = append(recs, b[:n:n])
		b = b[n:]
	}
	return recs
}

// openWire reads wire as the listener would, until the first error, and
// returns what it read and that error.
func openWire(tb testing.TB, wire []byte, bufSize int) ([]byte, error) {
	tb.Helper()
	dl, ld := testSealKeys(tb)
	sc, err := seal(memConn{r: bytes.NewReader(wire)}, ld, dl)
	if err != nil {
		tb.Fatal(err)
	}
	var got []byte
	buf := make([]byte, bufSize)
	for range len(wire) + 2 { // every Read that succeeds consumes a byte of wire
		n, err := sc.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if cap(sc.pbuf) > maxRecord {
				tb.Errorf("plaintext buffer grew to %d bytes, over maxRecord", cap(sc.pbuf))
			}
			return got, err
		}
	}
	tb.Fatal("the reader never stopped")
	return nil, nil
}

func TestSealRoundTrip(t *testing.T) {
	var msgs [][]byte
	var all []byte
	for i, n := range []int{1, 100, 4096, maxRecord, maxRecord + 1, 3*maxRecord + 7} {
		m := bytes.Repeat([]byte{byte('a' + i)}, n)
		msgs = append(msgs, m)
		all = append(all, m...)
	}
	recs := sealRecords(t, false, msgs...)
	if len(recs) != 1+1+1+1+2+4 {
		t.Errorf("%d records, want 10: one per Write, large ones split at %d bytes", len(recs), maxRecord)
	}
	wire := bytes.Join(recs, nil)
	for _, size := range []int{1, 7, 4096, maxRecord + 100} {
		got, err := openWire(t, wire, size)
		if err != io.EOF || !bytes.Equal(got, all) {
			t.Errorf("reading with a %d-byte buffer: %d bytes (equal: %v), %v; want %d bytes, EOF", size, len(got), bytes.Equal(got, all), err, len(all))
		}
	}
	if bytes.Contains(wire, msgs[2][:64]) {
		t.Error("the plaintext is on the wire")
	}

	// Records that arrived together are read together, as the bytes of
	// flushes that arrived together would be without sealing: the relay's
	// readers batch acks on that.
	small := bytes.Join(sealRecords(t, false, []byte("ab"), []byte("cd"), []byte("ef")), nil)
	dl0, ld0 := testSealKeys(t)
	sc0, _ := seal(memConn{r: bytes.NewReader(small)}, ld0, dl0)
	buf := make([]byte, 100)
	if n, err := sc0.Read(buf); err != nil || string(buf[:n]) != "abcdef" {
		t.Errorf("one Read of three buffered records = %q, %v; want %q", buf[:n], err, "abcdef")
	}
	if n, err := sc0.Read(buf[:1]); err != io.EOF {
		t.Errorf("Read after them = %d, %v; want EOF", n, err)
	}

	// A reader that returns one byte at a time below the records.
	dl, ld := testSealKeys(t)
	sc, _ := seal(memConn{r: iotest.OneByteReader(bytes.NewReader(wire))}, ld, dl)
	if got, err := io.ReadAll(sc); err != nil || !bytes.Equal(got, all) {
		t.Errorf("one byte at a time: %d bytes, %v; want %d", len(got), err, len(all))
	}
}

// Whatever is done to the records on the way, the reader returns the
// records before the damage and then an error, never the damaged record's
// bytes nor anything after it.
func TestSealRejectsTampering(t *testing.T) {
	m0, m1, m2 := []byte("first record"), []byte("second record"), []byte("third record")
	recs := sealRecords(t, false, m0, m1, m2)
	back := sealRecords(t, true, []byte("the listener's first record"))
	flip := func(i, at int) []byte {
		r := bytes.Clone(recs[i])
		r[at] ^= 0x01
		return r
	}
	hostile := binary.BigEndian.AppendUint32(nil, 1<<31)
	for _, tc := range []struct {
		name  string
		wire  [][]byte
		want  []byte // delivered before the error
		cause error  // besides errSeal
	}{
		{"bit flipped in the length", [][]byte{recs[0], flip(1, 3), recs[2]}, m0, nil},
		{"bit flipped in the ciphertext", [][]byte{recs[0], flip(1, recordHeader+2), recs[2]}, m0, nil},
		{"bit flipped in the tag", [][]byte{recs[0], flip(1, len(recs[1])-1), recs[2]}, m0, nil},
		{"truncated record", [][]byte{recs[0], recs[1][:len(recs[1])-5]}, m0, io.ErrUnexpectedEOF},
		{"truncated header", [][]byte{recs[0], recs[1][:2]}, m0, io.ErrUnexpectedEOF},
		{"replayed record", [][]byte{recs[0], recs[0], recs[1]}, m0, nil},
		{"reordered records", [][]byte{recs[1], recs[0], recs[2]}, nil, nil},
		{"dropped record", [][]byte{recs[0], recs[2]}, m0, nil},
		{"reflected record", [][]byte{back[0]}, nil, nil},
		{"hostile length", [][]byte{recs[0], hostile, make([]byte, 64)}, m0, nil},
		{"empty record", [][]byte{recs[0], make([]byte, recordHeader+recordTag)}, m0, nil},
		{"garbage", [][]byte{bytes.Repeat([]byte{0}, 3), []byte("GET / HTTP/1.1\r\n\r\n")}, nil, nil},
	} {
		got, err := openWire(t, bytes.Join(tc.wire, nil), 4096)
		if !errors.Is(err, errSeal) || tc.cause != nil && !errors.Is(err, tc.cause) {
			t.Errorf("%s: error %v, want %v (and %v)", tc.name, err, errSeal, tc.cause)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s: delivered %q, want %q", tc.name, got, tc.want)
		}
	}
}

// The key ratchets at the same record on both ends, and records after the
// ratchet no longer open under the first key.
func TestSealRekey(t *testing.T) {
	dl, ld := testSealKeys(t)
	var wire bytes.Buffer
	w, _ := sealWith(memConn{w: &wire}, dl, ld, 1000)
	var all []byte
	for i := range 50 {
		m := bytes.Repeat([]byte{byte(i)}, 90+i)
		all = append(all, m...)
		if _, err := w.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	r, _ := sealWith(memConn{r: bytes.NewReader(wire.Bytes())}, ld, dl, 1000)
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, all) {
		t.Errorf("with the same ratchet: %d bytes, %v; want %d bytes", len(got), err, len(all))
	}
	r, _ = seal(memConn{r: bytes.NewReader(wire.Bytes())}, ld, dl)
	got, err := io.ReadAll(r)
	if !errors.Is(err, errSeal) || len(got) >= len(all) || len(got) < 1000 {
		t.Errorf("without the ratchet: %d bytes, %v; want the first ~1000 bytes, then %v", len(got), err, errSeal)
	}
}

// A read deadline that passes in the middle of a record loses nothing: the
// next Read finishes the record.
func TestSealReadTimeoutResumes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	dl, ld := testSealKeys(t)
	sc, _ := seal(server, ld, dl)
	rec := sealRecords(t, false, []byte("patience"))[0]

	_ = client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = client.Write(rec[:7])
	_ = sc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, 64)
	var ne net.Error
	if n, err := sc.Read(buf); n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read of half a record = %d, %v; want 0 and a timeout", n, err)
	}
	_, _ = client.Write(rec[7:])
	_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := sc.Read(buf); err != nil || string(buf[:n]) != "patience" {
		t.Fatalf("Read after the timeout = %q, %v; want %q", buf[:n], err, "patience")
	}
}

// tapConn records every byte a connection reads and writes.
type tapConn struct {
	net.Conn
	in, out bytes.Buffer // guarded by the test: one reader, one writer, read after both stopped
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Write(p[:n])
	return n, err
}

func (c *tapConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Write(p[:n])
	return n, err
}

// What a node's link sends (events, watermarks, digests) and what its
// relay listener answers (repairs) never shows an event on the wire,
// though the peer receives it whole.
func TestRelayWireIsSealed(t *testing.T) {
	secret := "the launch code is 0451, tell no one"
	a := startNodeWith(t, "a", nodeOpts{timing: func(t *timing) {
		fastTiming(t)
		t.stallTimeout = 5 * time.Second // the fake peer answers no digest
		t.dialTimeout = 5 * time.Second
		t.repairMinAge = 0 // the listener answers a digest with events of any age
	}})

	// a's link dials a fake member, which records the wire.
	peer := addFakeMember(t, a.c, "fake")
	conn := peer.dialed(t)
	tap := &tapConn{Conn: conn}
	br := bufio.NewReader(tap)
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if b, err := br.ReadByte(); err != nil || b != relayMagic[0] {
		t.Fatalf("first byte %q, %v; want %q", b, err, relayMagic[0])
	}
	sealed, _, err := acceptHandshake(&peeked{Conn: tap, r: br}, relayKey(testKey, testLabel), peer.origin, 5*time.Second, func(uint64) uint64 { return 0 })
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	handshake := tap.in.Len()
	fc := &fakeConn{conn: sealed, br: bufio.NewReader(sealed)}
	id := publish(t, a.hub, broker.AckLocal, "vault", secret)
	e, _ := fc.next(t, false)
	if e.ID != id || string(e.Data) != secret {
		t.Fatalf("the fake peer received %v %q, want %v %q", e.ID, e.Data, id, secret)
	}
	fc.ack(t, e.ID.Seq)
	waitFor(t, "the ack", 5*time.Second, func() bool { return linkTo(a.c, "fake").acked.Load() == e.ID.Seq })
	conn.Close()
	if tap.in.Len() <= handshake {
		t.Fatalf("recorded %d bytes from the link, %d of them the handshake", tap.in.Len(), handshake)
	}
	if bytes.Contains(tap.in.Bytes(), []byte(secret)) || bytes.Contains(tap.in.Bytes(), []byte("vault")) {
		t.Error("the link sent the event's data or channel in clear")
	}

	// A relay client asks a's listener for repairs and gets the event.
	raw, err := net.DialTimeout("tcp", a.c.GossipAddr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	tap2 := &tapConn{Conn: raw}
	sc, _, _, err := dialHandshake(tap2, relayKey(testKey, testLabel), broker.NewOrigin(), 0, 2*time.Second)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	_ = sc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := sc.Write(appendFrame(nil, frameDigest, appendDigest(nil, nil))); err != nil {
		t.Fatal(err)
	}
	scr := bufio.NewReader(sc)
	var repaired []string
	for {
		kind, p, _, err := readFrame(scr, nil)
		if err != nil {
			t.Fatalf("reading the repair answer: %v", err)
		}
		if kind == frameRepairDone {
			break
		}
		if e, err := decodeEvent(p); err == nil {
			repaired = append(repaired, string(e.Data))
		}
	}
	raw.Close()
	if len(repaired) != 1 || repaired[0] != secret {
		t.Fatalf("repair answer %q, want [%q]", repaired, secret)
	}
	if bytes.Contains(tap2.in.Bytes(), []byte(secret)) || bytes.Contains(tap2.in.Bytes(), []byte("vault")) {
		t.Error("the relay listener sent the event's data or channel in clear")
	}
}

// A peer on the path that alters, cuts, replays, reorders or reflects a
// record of an established relay connection gets it closed, and the node
// delivers nothing from it.
func TestRelayTamperedRecordsCloseTheConnection(t *testing.T) {
	rec := newLogRecorder()
	reg := prometheus.NewRegistry()
	a := startNodeWith(t, "a", nodeOpts{timing: fastTiming, log: rec, reg: reg})
	sub := subscribe(t, a.hub, ">", broker.ID{})
	rejected := func() int {
		n := 0
		for _, r := range rec.records() {
			if r.msg == "relay inbound closed" && strings.Contains(strings.Join(r.attrs["err"], " "), errSeal.Error()) {
				n++
			}
		}
		return n
	}

	for _, tc := range []struct {
		name     string
		received uint64 // events the node takes from this connection
		attack   func(p *rawPeer, raw net.Conn, sealOnly func(frame []byte) []byte)
	}{
		{"flipped bit", 0, func(p *rawPeer, raw net.Conn, sealOnly func([]byte) []byte) {
			r := sealOnly(eventFrame(testEvent(p, 1)))
			r[len(r)/2] ^= 0x10
			_, _ = raw.Write(r)
		}},
		{"truncated record", 0, func(p *rawPeer, raw net.Conn, sealOnly func([]byte) []byte) {
			r := sealOnly(eventFrame(testEvent(p, 1)))
			_, _ = raw.Write(r[:len(r)-5])
			_ = raw.(*net.TCPConn).CloseWrite()
		}},
		{"replayed record", 1, func(p *rawPeer, raw net.Conn, sealOnly func([]byte) []byte) {
			r := sealOnly(eventFrame(testEvent(p, 1)))
			_, _ = raw.Write(r)
			_, _ = raw.Write(r)
		}},
		{"reordered records", 0, func(p *rawPeer, raw net.Conn, sealOnly func([]byte) []byte) {
			r1 := sealOnly(eventFrame(testEvent(p, 1)))
			r2 := sealOnly(eventFrame(testEvent(p, 2)))
			_, _ = raw.Write(r2)
			_, _ = raw.Write(r1)
		}},
		{"reflected record", 0, func(p *rawPeer, raw net.Conn, sealOnly func([]byte) []byte) {
			// The node answers a digest with a record of its own, which
			// goes straight back to it.
			_, _ = raw.Write(sealOnly(appendFrame(nil, frameDigest, appendDigest(nil, nil))))
			_ = raw.SetReadDeadline(time.Now().Add(2 * time.Second))
			var hdr [recordHeader]byte
			if _, err := io.ReadFull(raw, hdr[:]); err != nil {
				t.Fatalf("reading the node's answer: %v", err)
			}
			body := make([]byte, int(binary.BigEndian.Uint32(hdr[:]))+recordTag)
			if _, err := io.ReadFull(raw, body); err != nil {
				t.Fatalf("reading the node's answer: %v", err)
			}
			_, _ = raw.Write(append(hdr[:], body...))
		}},
	} {
		before, received := rejected(), a.hub.Stats().Received
		p, err := dialRaw(t, a.c.GossipAddr(), testKey, testLabel, broker.NewOrigin())
		if err != nil {
			t.Fatalf("%s: handshake: %v", tc.name, err)
		}
		sc := p.conn.(*sealedConn)
		raw := sc.Conn
		sealOnly := func(frame []byte) []byte {
			var b bytes.Buffer
			sc.Conn = memConn{w: &b}
			defer func() { sc.Conn = raw }()
			if _, err := sc.Write(frame); err != nil {
				t.Fatal(err)
			}
			return b.Bytes()
		}
		_ = raw.SetWriteDeadline(time.Now().Add(2 * time.Second))
		tc.attack(p, raw, sealOnly)
		p.waitClosed(t, 2*time.Second)
		waitFor(t, tc.name+": the rejection logged", 2*time.Second, func() bool { return rejected() > before })
		if got := a.hub.Stats().Received - received; got != tc.received {
			t.Errorf("%s: the node received %d events, want %d", tc.name, got, tc.received)
		}
		for range tc.received {
			recv(t, sub, 1)
		}
	}
	noneQueued(t, sub)
	if got, _ := gather(t, reg, "rumor_relay_records_rejected_total"); got != 5 {
		t.Errorf("rumor_relay_records_rejected_total = %v, want 5 (one per attack)", got)
	}
}

func testEvent(p *rawPeer, seq uint64) *broker.Event {
	return &broker.Event{ID: broker.ID{Time: hlcNow(), Origin: p.origin, Seq: seq}, Channel: "chat", Data: []byte("hello")}
}

// FuzzSealedRead feeds arbitrary bytes to the record reader (no panic, no
// buffer beyond a record, always an error in the end), and seals arbitrary
// bytes for a round trip.
func FuzzSealedRead(f *testing.F) {
	recs := sealRecords(f, false, []byte("one"), bytes.Repeat([]byte("two"), 1000))
	f.Add(bytes.Join(recs, nil))
	f.Add(recs[0])
	f.Add(recs[1][:20])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3})
	f.Add([]byte{0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := openWire(t, data, 1000); err != io.EOF && !errors.Is(err, errSeal) {
			t.Fatalf("reading %d bytes: %v, want EOF or %v", len(data), err, errSeal)
		}
		if len(data) == 0 {
			return
		}
		got, err := openWire(t, bytes.Join(sealRecords(t, false, data), nil), 1000)
		if err != io.EOF || !bytes.Equal(got, data) {
			t.Fatalf("round trip of %d bytes: %d bytes, %v", len(data), len(got), err)
		}
	})
}

// BenchmarkSeal seals and opens one 4 KiB record.
func BenchmarkSeal(b *testing.B) {
	dl, ld := testSealKeys(b)
	var wire bytes.Buffer
	w, _ := seal(memConn{w: &wire}, dl, ld)
	r, _ := seal(memConn{r: &wire}, ld, dl)
	msg := bytes.Repeat([]byte("x"), 4096)
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.Write(msg); err != nil {
			b.Fatal(err)
		}
		if n, err := r.Read(buf); n != len(msg) || err != nil {
			b.Fatalf("Read = %d, %v", n, err)
		}
	}
}
