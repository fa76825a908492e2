package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// lab is a small network of namespaces the test creates and removes: a
// bridge in a namespace of its own, and one namespace per host joined to it
// by a veth pair. Nothing of it lives in the root namespace, so no address
// rule or route there changes, and nothing is reachable from it.
type lab struct {
	tb     testing.TB
	prefix string // namespace names start with it: rmr<pid><random>
	subnet netip.Prefix
	hosts  []string
}

// requireNetns skips the test, or fails it when RUMOR_REQUIRE_NETNS=1 (CI,
// as root), with why.
func requireNetns(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("RUMOR_REQUIRE_NETNS") == "1" {
		tb.Fatalf("RUMOR_REQUIRE_NETNS=1 but %s", msg)
	}
	tb.Skipf("needs network namespaces: %s (run as root with iproute2 and nftables; set RUMOR_REQUIRE_NETNS=1 to make this a failure)", msg)
}

// newLab builds the network for hosts, each at .1, .2, … of a private /24,
// and removes all of it in tb.Cleanup, whatever happened.
func newLab(tb testing.TB, hosts ...string) *lab {
	tb.Helper()
	if os.Geteuid() != 0 {
		requireNetns(tb, "not root")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			requireNetns(tb, "%s not found", tool)
		}
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	l := &lab{
		tb:     tb,
		prefix: fmt.Sprintf("rmr%d%s", os.Getpid(), hex.EncodeToString(b[:1])),
		// Only ever used inside the lab's namespaces.
		subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200 + b[1]%50, b[2], 0}), 24),
		hosts:  hosts,
	}
	br := l.ns("br")
	if out, err := l.run("ip", "netns", "add", br); err != nil {
		requireNetns(tb, "ip netns add: %v: %s", err, out)
	}
	tb.Cleanup(func() { l.remove(br) })
	l.must("ip", "-n", br, "link", "set", "lo", "up")
	l.must("ip", "-n", br, "link", "add", "br0", "type", "bridge")
	l.must("ip", "-n", br, "link", "set", "br0", "up")
	for i, h := range hosts {
		ns := l.ns(h)
		l.must("ip", "netns", "add", ns)
		tb.Cleanup(func() { l.remove(ns) })
		port := fmt.Sprintf("v%d", i)
		l.must("ip", "-n", ns, "link", "set", "lo", "up")
		l.must("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", br)
		l.must("ip", "-n", ns, "addr", "add", netip.PrefixFrom(l.addr(h), 24).String(), "dev", "eth0")
		l.must("ip", "-n", ns, "link", "set", "eth0", "up")
		l.must("ip", "-n", br, "link", "set", port, "master", "br0")
		l.must("ip", "-n", br, "link", "set", port, "up")
	}
	return l
}

// ns is the namespace name of host h.
func (l *lab) ns(h string) string { return l.prefix + h }

// addr is host h's address.
func (l *lab) addr(h string) netip.Addr {
	for i, x := range l.hosts {
		if x == h {
			a := l.subnet.Addr().As4()
			a[3] = byte(i + 1)
			return netip.AddrFrom4(a)
		}
	}
	l.tb.Fatalf("lab has no host %q", h)
	return netip.Addr{}
}

func (l *lab) run(name string, args ...string) ([]byte, error) {
	return l.runInput("", name, args...)
}

func (l *lab) runInput(stdin, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd.CombinedOutput()
}

func (l *lab) must(name string, args ...string) {
	l.tb.Helper()
	if out, err := l.run(name, args...); err != nil {
		l.tb.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// remove deletes a namespace (with its veth ends and nft tables) and checks
// it is gone. Processes inside it must have been stopped first: their
// cleanups were registered later, so they ran earlier.
func (l *lab) remove(ns string) {
	if out, err := l.run("ip", "netns", "del", ns); err != nil {
		l.tb.Errorf("ip netns del %s: %v: %s", ns, err, out)
	}
	if out, _ := l.run("ip", "netns", "list"); strings.Contains(string(out), ns+" ") || strings.Contains(string(out), ns+"\n") {
		l.tb.Errorf("namespace %s still listed after removal:\n%s", ns, out)
	}
}

// partitionTable is the nft table that cuts a host off.
const partitionTable = "rmr_partition"

// isolate drops every packet between host h and the hosts in others, both
// ways, from inside h's namespace: memberlist's UDP and TCP and the relay
// alike, established connections included.
func (l *lab) isolate(h string, others ...string) {
	l.tb.Helper()
	var set []string
	for _, o := range others {
		set = append(set, l.addr(o).String())
	}
	addrs := strings.Join(set, ", ")
	script := fmt.Sprintf(`table inet %s {
	chain in {
		type filter hook input priority 0; policy accept;
		ip saddr { %s } drop
	}
	chain out {
		type filter hook output priority 0; policy accept;
		ip daddr { %s } drop
	}
}
`, partitionTable, addrs, addrs)
	if out, err := l.runInput(script, "ip", "netns", "exec", l.ns(h), "nft", "-f", "-"); err != nil {
		l.tb.Fatalf("nft in %s: %v: %s", l.ns(h), err, out)
	}
}

// heal removes what isolate added.
func (l *lab) heal(h string) {
	l.tb.Helper()
	l.must("ip", "netns", "exec", l.ns(h), "nft", "delete", "table", "inet", partitionTable)
}

// partitionFor is how long TestPartition keeps n3 cut off:
// $RUMOR_E2E_PARTITION (a Go duration, 10s to 5m), else 12s.
func partitionFor(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("RUMOR_E2E_PARTITION")
	if v == "" {
		return 12 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 10*time.Second || d > 5*time.Minute {
		t.Fatalf("RUMOR_E2E_PARTITION=%q: want a duration from 10s to 5m", v)
	}
	return d
}

// TestPartition cuts one node of three off from the other two (not from
// the clients) for 12 s (RUMOR_E2E_PARTITION), then heals it. Publishers
// keep publishing on every node: the cut-off node acknowledges alone once
// it declared its peers dead. Subscribers keep hopping between nodes with
// Last-Event-ID the whole time, across the cut too, and all move onto n3
// right after the heal. Every acknowledged event must reach every
// subscriber exactly once, in per-origin order, with no gap, each with an
// id line of its own. It measures failure detection on both sides and the
// time the halves take to merge again (memberlist forgets dead peers; the
// periodic re-join, 2 s here, brings them back).
func TestPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test")
	}
	cutFor := partitionFor(t)
	l := newLab(t, "n1", "n2", "n3", "c")
	specs := make([]nodeSpec, 3)
	for i := range specs {
		name := fmt.Sprintf("n%d", i+1)
		specs[i] = nodeSpec{Name: name, NS: l.ns(name), Host: l.addr(name).String(), HTTP: 8080, Gossip: 7946}
	}
	// Every client connection starts inside the client namespace.
	fwd := startForwarder(t, l.ns("c"), l.subnet)
	c := newCluster(t, specs, clusterOptions{Transport: fwd.transport()})
	c.startAll()
	// A long partition publishes more slowly, so that the default history
	// (1000 events per channel) still covers every resume.
	every := 40 * time.Millisecond
	if cutFor > 20*time.Second {
		every = 120 * time.Millisecond
	}
	w := hopLoad(t, c, fwd.transport(), every)
	time.Sleep(2 * time.Second)

	names := c.selves()
	cut := time.Now()
	l.isolate("n3", "n1", "n2")
	t.Logf("isolated n3 from n1 and n2 for %v", cutFor)
	deadline := cut.Add(20 * time.Second)
	for _, pair := range [][2]int{{0, 2}, {1, 2}, {2, 0}, {2, 1}} {
		obs, gone := pair[0], pair[1]
		at, ok := waitLog(c.running(obs), cut, time.Until(deadline), func(l logLine) bool {
			return strings.HasPrefix(l.Msg, "member ") && l.Msg != "member joined" && l.Attrs["node"] == names[gone]
		})
		if !ok {
			t.Fatalf("%s did not drop %s within 20s of the cut", c.specs[obs].Name, c.specs[gone].Name)
		}
		t.Logf("DETECT %s dropped %s %v after the cut", c.specs[obs].Name, c.specs[gone].Name, since(at, cut))
	}
	time.Sleep(time.Until(cut.Add(cutFor)))

	healed := time.Now()
	l.heal("n3")
	// Every subscriber resumes on n3 at once, while the halves merge.
	w.MoveAll(2)
	if !w.WaitArrived(10 * time.Second) {
		t.Errorf("not every subscriber could open a stream on n3 within 10s of the heal")
	}
	merge := c.waitConverged(30 * time.Second)
	t.Logf("MERGE healed after %v of partition; every node saw every node alive %v after the heal", healed.Sub(cut).Round(10*time.Millisecond), merge.Round(10*time.Millisecond))
	for i := range c.specs {
		for _, j := range []int{0, 1, 2} {
			if i == j || (i != 2 && j != 2) {
				continue
			}
			at, _ := waitLog(c.running(i), healed, 10*time.Second, func(l logLine) bool {
				return l.Msg == "relay link up" && l.Attrs["peer"] == names[j]
			})
			t.Logf("MERGE %s: relay link to %s up %v after the heal", c.specs[i].Name, c.specs[j].Name, since(at, healed))
		}
	}
	if !w.WaitDelivered(20 * time.Second) {
		t.Errorf("events acknowledged during the partition did not reach every subscriber within 20s of the merge")
	}
	t.Logf("MERGE every subscriber had every acknowledged event %v after the heal", time.Since(healed).Round(10*time.Millisecond))
	time.Sleep(2 * time.Second)
	finish(t, w)
}
