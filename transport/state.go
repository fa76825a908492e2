package transport

// Small state every node holds whole, such as the revocations of tokens:
// memberlist's push/pull carries it. A node that joins merges its seed's
// state in memberlist's Join, right after the seed's member list and before
// its relay links have caught up, so before it reports ready; every
// PushPullInterval (30 s on a LAN) two nodes swap theirs, which heals what a
// partition or a lost message missed. A change is also sent at once to every
// member (Spread), over memberlist's reliable (TCP) user messages.

import (
	"bytes"
	"context"
	"time"

	"github.com/hashicorp/memberlist"
)

// State is state every node holds whole and merges from its peers. Its
// methods are called from memberlist's goroutines, concurrently with each
// other and with Spread: implementations lock. Merging must be commutative
// and idempotent (a set union, say), since the same state arrives many
// times and in any order.
type State interface {
	// Snapshot encodes the whole state.
	Snapshot() []byte
	// Merge folds in a peer's Snapshot or a Spread change. It must not
	// trust b: a peer of another version, or a bug, may send anything.
	Merge(b []byte) error
}

// stateNotice starts a user message that carries a State change.
const stateNotice = "rumor.state\x00"

// spreadTimeout bounds one send of a change to one member.
const spreadTimeout = 5 * time.Second

// Spread sends b, a change of Config.State, to every other member now,
// and returns once each has it or could not be reached within ctx or 5 s.
// Members it misses get it at the next push/pull. It is a no-op without a
// State or before Start.
func (c *Cluster) Spread(ctx context.Context, b []byte) {
	if c.cfg.State == nil {
		return
	}
	msg := append([]byte(stateNotice), b...)
	c.mu.Lock()
	ml := c.ml
	var peers []*memberlist.Node
	for name, n := range c.known {
		if name != c.name {
			peers = append(peers, &n)
		}
	}
	c.mu.Unlock()
	if ml == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, spreadTimeout)
	defer cancel()
	done := make(chan struct{}, len(peers))
	for _, n := range peers {
		c.wg.Add(1) // Shutdown waits for a send still dialling
		go func() {
			defer c.wg.Done()
			if err := ml.SendReliable(n, msg); err != nil {
				c.log.Warn("state change not sent: the next push/pull carries it", "node", n.Name, "err", err)
			}
			done <- struct{}{}
		}()
	}
	for range peers {
		select {
		case <-done:
		case <-ctx.Done():
			return
		}
	}
}

// mergeState hands a peer's state or change to Config.State.
func (c *Cluster) mergeState(b []byte, from string) {
	if c.cfg.State == nil || len(b) == 0 {
		return
	}
	if err := c.cfg.State.Merge(b); err != nil {
		c.log.Warn("peer state refused", "from", from, "err", err)
	}
}

// stateMessage reports whether a user message carries a state change, and
// the change.
func stateMessage(b []byte) ([]byte, bool) { return bytes.CutPrefix(b, []byte(stateNotice)) }
