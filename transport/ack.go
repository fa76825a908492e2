package transport

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// ErrNotAllAcked means some live member did not acknowledge an event in
// time. The event is stored here and still spreads to it.
var ErrNotAllAcked = errors.New("not every live member acknowledged in time")

// AckedAll implements broker.Relay: it waits until every live member holds
// e. A live member is one memberlist has not declared dead or left and
// that was a member when e was sent (its link carried e): a member that
// joins later catches up by resend and repair and is not waited for. A
// member that is unreachable but not yet declared dead (its relay link is
// down, or memberlist suspects it) is still waited for: it may be holding
// subscribers. One that memberlist declares dead or left while Publish
// waits stops being waited for at that moment. The wait ends with an
// error, naming the members still missing, when ctx ends or after the ack
// timeout (10s).
func (c *Cluster) AckedAll(ctx context.Context, e *broker.Event) error {
	timer := time.NewTimer(c.timing.ackTimeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		if c.shutdown {
			c.mu.Unlock()
			return errors.New("cluster shut down")
		}
		ch := c.ackCh
		var missing []string
		for name, l := range c.links {
			if first := l.first.Load(); first != 0 && first <= e.ID.Seq && l.acked.Load() < e.ID.Seq {
				missing = append(missing, name)
			}
		}
		c.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		var err error
		select {
		case <-ch:
			continue
		case <-ctx.Done():
			err = ctx.Err()
		case <-timer.C:
			err = ErrNotAllAcked
		}
		slices.Sort(missing)
		return fmt.Errorf("waiting for %s: %w", strings.Join(missing, ", "), err)
	}
}
