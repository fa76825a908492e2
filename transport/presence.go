package transport

import (
	"encoding/json"
	"slices"
	"strconv"
)

// Origins returns the hub origins of the members memberlist holds alive or
// suspect, this node's included, sorted: the nodes whose state presence
// counts (package presence), and among which it picks each channel's
// decider. A member that left or was declared dead is not in it.
func (c *Cluster) Origins() []uint64 {
	out := []uint64{c.cfg.Origin}
	c.mu.Lock()
	for name, n := range c.known {
		if name == c.name {
			continue
		}
		var md meta
		if json.Unmarshal(n.Meta, &md) != nil {
			continue
		}
		if o, err := strconv.ParseUint(md.Origin, 16, 64); err == nil && o != 0 {
			out = append(out, o)
		}
	}
	c.mu.Unlock()
	slices.Sort(out)
	return slices.Compact(out)
}
