package transport

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate gives memberlist this node's metadata. The cluster's event
// state runs on the relay, not on memberlist's push/pull, which carries
// only Config.State (state.go).
type delegate struct{ c *Cluster }

func (d delegate) NodeMeta(limit int) []byte {
	b, _ := json.Marshal(meta{HTTP: d.c.cfg.HTTPAddr, Admin: d.c.cfg.AdminAddr, Origin: fmt.Sprintf("%016x", d.c.cfg.Origin), Version: relayVersion})
	if len(b) > limit {
		return nil
	}
	return b
}
func (d delegate) NotifyMsg(b []byte) {
	if name, ok := bytes.CutPrefix(b, []byte(leaveNotice)); ok {
		d.c.memberLeaving(string(name))
	}
	if change, ok := stateMessage(b); ok {
		d.c.mergeState(change, "a peer's change")
	}
}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState and MergeRemoteState carry Config.State (state.go).
func (d delegate) LocalState(join bool) []byte {
	if d.c.cfg.State == nil {
		return nil
	}
	return d.c.cfg.State.Snapshot()
}
func (d delegate) MergeRemoteState(buf []byte, join bool) { d.c.mergeState(buf, "push/pull") }

// events turns memberlist's membership events into relay links.
type events struct{ c *Cluster }

func (e events) NotifyJoin(n *memberlist.Node)   { e.c.memberUp(n) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.c.memberDown(n) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.c.memberUp(n) }

// demux shares memberlist's TCP listener with the relay: a relay stream
// starts with the byte 'R', which no memberlist stream starts with (its
// message types are small numbers, or 244 for a label).
type demux struct {
	memberlist.NodeAwareTransport
	c *Cluster
}

func (d *demux) StreamCh() <-chan net.Conn { return d.c.streams }

func (c *Cluster) demuxStreams(nt memberlist.Transport) {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case conn := <-nt.StreamCh():
			if conn = c.guard.admit(conn); conn == nil {
				continue // over the strangers' budget: closed
			}
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.route(conn)
			}()
		}
	}
}

// route reads a stream's first byte and hands it to the relay or to
// memberlist.
func (c *Cluster) route(conn net.Conn) {
	br := bufio.NewReaderSize(conn, 64)
	_ = conn.SetReadDeadline(time.Now().Add(c.timing.dialTimeout))
	first, err := br.Peek(1)
	if err != nil {
		conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	if first[0] == relayMagic[0] {
		_, _ = br.Discard(1)
		c.serveRelay(&peeked{Conn: conn, r: br})
		return
	}
	select {
	case c.streams <- &peeked{Conn: conn, r: br}:
	case <-c.ctx.Done():
		conn.Close()
	}
}

// peeked is a connection whose first bytes were read into r.
type peeked struct {
	net.Conn
	r *bufio.Reader
}

func (p *peeked) Read(b []byte) (int, error) { return p.r.Read(b) }
