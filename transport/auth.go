package transport

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// The relay handshake proves both ends hold the same relay key (derived
// from the gossip key and the cluster label) without sending it, and binds
// the connection to both nodes' origins and fresh nonces so it cannot be
// replayed:
//
//	dialler  → "RUMR" version nonceD originD
//	listener → nonceL originL HMAC(k, "L"|nonceD|nonceL|originD|originL)
//	dialler  → HMAC(k, "D"|nonceD|nonceL|originD|originL)
//	         from here on, both ways, only sealed records (seal.go)
//	listener → contig: the highest sequence of the dialler's events it holds
//	           with none missing below, so the dialler resends only what is
//	           missing; the first sealed record, so nobody on the path can
//	           change it.
//
// Without a gossip key the key derives from the label alone: that separates
// clusters but keeps no stranger out.
//
// Version 2 seals everything after the proofs; version 1 sent it in clear.
// The two refuse each other's hello, so mixed versions do not relay.
const (
	relayMagic   = "RUMR"
	relayVersion = 2
)

var (
	errAuth      = errors.New("relay handshake failed")
	errWrongPeer = errors.New("relay answered by another node")
)

func relayKey(gossipKey []byte, label string) []byte {
	m := hmac.New(sha256.New, gossipKey)
	m.Write([]byte("rumor relay v1\x00"))
	m.Write([]byte(label))
	return m.Sum(nil)
}

func handshakeMAC(key []byte, side byte, nonceD, nonceL []byte, originD, originL uint64) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte{side})
	m.Write(nonceD)
	m.Write(nonceL)
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], originD)
	binary.BigEndian.PutUint64(b[8:], originL)
	m.Write(b[:])
	return m.Sum(nil)
}

// dialHandshake runs the dialler's side and returns the sealed connection,
// the listener's origin and its contig for our events. want, unless 0, is the origin we mean to reach:
// when another node answers (a new process at a departed member's address),
// the handshake stops before proving ourselves, so the listener never takes
// this connection for our relay and closes our real one.
func dialHandshake(conn net.Conn, key []byte, origin, want uint64, timeout time.Duration) (sealed net.Conn, peerOrigin, contig uint64, err error) {
	_ = conn.SetDeadline(time.Now().Add(timeout))
	defer conn.SetDeadline(time.Time{})
	nonceD := make([]byte, 16)
	_, _ = rand.Read(nonceD)
	hello := append([]byte(relayMagic), relayVersion)
	hello = append(hello, nonceD...)
	hello = binary.BigEndian.AppendUint64(hello, origin)
	if _, err := conn.Write(hello); err != nil {
		return nil, 0, 0, err
	}
	var reply [16 + 8 + 32]byte
	if _, err := io.ReadFull(conn, reply[:]); err != nil {
		return nil, 0, 0, fmt.Errorf("%w: %v", errAuth, err)
	}
	nonceL := reply[:16]
	peerOrigin = binary.BigEndian.Uint64(reply[16:24])
	if !hmac.Equal(reply[24:], handshakeMAC(key, 'L', nonceD, nonceL, origin, peerOrigin)) {
		return nil, 0, 0, fmt.Errorf("%w: peer does not hold our key or label", errAuth)
	}
	if want != 0 && peerOrigin != want {
		return nil, 0, 0, fmt.Errorf("%w: origin %016x, want %016x", errWrongPeer, peerOrigin, want)
	}
	if _, err := conn.Write(handshakeMAC(key, 'D', nonceD, nonceL, origin, peerOrigin)); err != nil {
		return nil, 0, 0, err
	}
	dl, ld, err := sealKeys(key, nonceD, nonceL, origin, peerOrigin)
	if err != nil {
		return nil, 0, 0, err
	}
	sc, err := seal(conn, dl, ld)
	if err != nil {
		return nil, 0, 0, err
	}
	var c [8]byte
	if _, err := io.ReadFull(sc, c[:]); err != nil {
		return nil, 0, 0, fmt.Errorf("%w: %v", errAuth, err)
	}
	return sc, peerOrigin, binary.BigEndian.Uint64(c[:]), nil
}

// acceptHandshake runs the listener's side after the first magic byte was
// read, and returns the sealed connection and the dialler's origin. contig
// answers the dialler's origin with our contig for it.
func acceptHandshake(conn net.Conn, key []byte, origin uint64, timeout time.Duration, contig func(uint64) uint64) (sealed net.Conn, peerOrigin uint64, err error) {
	_ = conn.SetDeadline(time.Now().Add(timeout))
	defer conn.SetDeadline(time.Time{})
	var hello [3 + 1 + 16 + 8]byte // magic rest, version, nonce, origin
	if _, err := io.ReadFull(conn, hello[:]); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errAuth, err)
	}
	if string(hello[:3]) != relayMagic[1:] {
		return nil, 0, fmt.Errorf("%w: not a rumor relay", errAuth)
	}
	if hello[3] != relayVersion {
		return nil, 0, fmt.Errorf("%w: relay protocol version %d, want %d (a node of another rumor version)", errAuth, hello[3], relayVersion)
	}
	nonceD := hello[4:20]
	peerOrigin = binary.BigEndian.Uint64(hello[20:28])
	if peerOrigin == 0 || peerOrigin == origin {
		return nil, 0, fmt.Errorf("%w: bad origin", errAuth)
	}
	nonceL := make([]byte, 16)
	_, _ = rand.Read(nonceL)
	reply := append([]byte(nil), nonceL...)
	reply = binary.BigEndian.AppendUint64(reply, origin)
	reply = append(reply, handshakeMAC(key, 'L', nonceD, nonceL, peerOrigin, origin)...)
	if _, err := conn.Write(reply); err != nil {
		return nil, 0, err
	}
	var mac [32]byte
	if _, err := io.ReadFull(conn, mac[:]); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errAuth, err)
	}
	if !hmac.Equal(mac[:], handshakeMAC(key, 'D', nonceD, nonceL, peerOrigin, origin)) {
		return nil, 0, fmt.Errorf("%w: dialler does not hold our key or label", errAuth)
	}
	dl, ld, err := sealKeys(key, nonceD, nonceL, peerOrigin, origin)
	if err != nil {
		return nil, 0, err
	}
	sc, err := seal(conn, ld, dl)
	if err != nil {
		return nil, 0, err
	}
	var c [8]byte
	binary.BigEndian.PutUint64(c[:], contig(peerOrigin))
	if _, err := sc.Write(c[:]); err != nil {
		return nil, 0, err
	}
	return sc, peerOrigin, nil
}
