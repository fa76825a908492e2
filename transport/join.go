package transport

import (
	"context"
	"math/rand/v2"
	"net"
	"time"
)

// joinLoop joins the seeds, retrying with backoff while none answers, then
// re-resolves and re-joins them on a jittered interval: that heals a
// partition (memberlist forgets peers it declared dead) and a cluster whose
// every peer restarted.
func (c *Cluster) joinLoop() {
	defer c.wg.Done()
	backoff := 200 * time.Millisecond
	for {
		n, found := c.join()
		c.mu.Lock()
		alone := !found && len(c.links) == 0
		if n > 0 || alone || time.Since(c.started) > c.cfg.JoinTimeout {
			if !c.joined {
				c.joined = true
				if n == 0 {
					c.log.Info("no peers found: serving alone until one appears")
				}
			}
		}
		joined := c.joined && len(c.links) > 0
		c.mu.Unlock()
		c.changed()
		wait := c.cfg.RejoinInterval
		if !joined && len(c.cfg.Join) > 0 {
			wait = backoff
			backoff = min(2*backoff, 5*time.Second)
		}
		wait += rand.N(wait/5 + 1)
		t := time.NewTimer(wait)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// join resolves the seeds and joins every address that is not ours. found
// says whether any address other than ours was resolved.
func (c *Cluster) join() (joined int, found bool) {
	if len(c.cfg.Join) == 0 {
		return 0, false
	}
	self := c.GossipAddr()
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	var addrs []string
	for _, seed := range c.cfg.Join {
		host, port, err := net.SplitHostPort(seed)
		if err != nil {
			host, port = seed, "7946"
		}
		ips, err := net.DefaultResolver.LookupHost(ctx, host)
		if err != nil {
			c.log.Debug("seed not resolved", "seed", seed, "err", err)
			continue
		}
		for _, ip := range ips {
			a := net.JoinHostPort(ip, port)
			if a != self {
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 {
		return 0, false
	}
	n, err := c.ml.Join(addrs)
	if err != nil && n == 0 {
		c.log.Debug("join failed", "seeds", addrs, "err", err)
	}
	return n, true
}
