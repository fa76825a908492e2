package transport

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
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
		n, peers, err := c.join()
		c.joinDone(n, peers, err)
		c.mu.Lock()
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

// joinDone records a join pass that joined n members of peers addresses
// other than ours (err says why none). A node whose seeds name no one but
// itself, or with no seeds, serves alone: that is a single node, or the
// first of a cluster. A node whose seeds name peers it cannot join, or do
// not resolve at all, is isolated once the join timeout has passed: an
// island that would serve its own events only. It says so loudly (an error
// log, rumor_cluster_isolated) and, if it never joined since it started,
// is not ready (Ready).
func (c *Cluster) joinDone(n, peers int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	linked := len(c.links) > 0
	switch {
	case n > 0 || linked:
		c.joined = true
		c.clearIsolated()
	case peers == 0 && err == nil:
		if !c.joined {
			c.joined = true
			c.log.Info("no peers found: serving alone until one appears", "seeds", strings.Join(c.cfg.Join, ","))
		}
		c.clearIsolated()
	default: // seeds named peers, and none could be joined
		c.metrics.joinFailures.Inc()
		if c.isolated == "" && time.Since(c.started) > c.cfg.JoinTimeout {
			c.isolated = joinCause(err)
			c.log.Error("isolated: no peer could be joined; this node serves only its own events",
				"seeds", strings.Join(c.cfg.Join, ","), "likely_cause", c.isolated, "err", err, "ready", c.joined)
		}
	}
}

// clearIsolated ends an isolation, if any. Called with c.mu held.
func (c *Cluster) clearIsolated() {
	if c.isolated != "" {
		c.isolated = ""
		c.log.Info("joined the cluster: no longer isolated")
	}
}

// joinCause turns memberlist's join error into the likely cause, in the
// words of rumor's flags.
func joinCause(err error) string {
	s := ""
	if err != nil {
		s = err.Error()
	}
	switch {
	case strings.Contains(s, "could decrypt"), strings.Contains(s, "encryption is not configured"),
		strings.Contains(s, "not encrypted"), strings.Contains(s, "decrypt"):
		return "the seeds answered but use another --gossip-key (or none)"
	case strings.Contains(s, "EOF"), strings.Contains(s, "connection reset"):
		return "the seeds closed the connection: another --cluster-label, or another --gossip-key"
	case strings.Contains(s, "no such host"), strings.Contains(s, "lookup"):
		return "the seeds do not resolve: check --join"
	case strings.Contains(s, "refused"), strings.Contains(s, "timeout"), strings.Contains(s, "no route"),
		strings.Contains(s, "unreachable"):
		return "nothing answers at the seeds: they are down, or --join names the wrong address or port"
	default:
		return "the seeds could not be joined"
	}
}

// join resolves the seeds and joins every address that is not ours. peers
// counts those addresses; err says why none was joined, or that no seed
// resolved at all.
func (c *Cluster) join() (joined, peers int, err error) {
	if len(c.cfg.Join) == 0 {
		return 0, 0, nil
	}
	self := c.GossipAddr()
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	var addrs []string
	var lookups []error
	for _, seed := range c.cfg.Join {
		host, port, err := net.SplitHostPort(seed)
		if err != nil {
			host, port = seed, "7946"
		}
		ips, err := net.DefaultResolver.LookupHost(ctx, host)
		if err != nil {
			c.log.Debug("seed not resolved", "seed", seed, "err", err)
			lookups = append(lookups, err)
			continue
		}
		for _, ip := range ips {
			a := net.JoinHostPort(ip, port)
			if a != self {
				addrs = append(addrs, a)
			}
		}
	}
	if len(lookups) == len(c.cfg.Join) {
		return 0, 0, fmt.Errorf("lookup: %w", errors.Join(lookups...))
	}
	if len(addrs) == 0 {
		return 0, 0, nil
	}
	n, err := c.ml.Join(addrs)
	if err != nil && n == 0 {
		c.log.Debug("join failed", "seeds", addrs, "err", err)
		return 0, len(addrs), err
	}
	return n, len(addrs), nil
}
