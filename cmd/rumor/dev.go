package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// devOwned are the serve options `rumor dev` sets itself, per node or for
// the whole local cluster; every other serve option applies to every node,
// from its flag or RUMOR_* variable as for `rumor serve`.
var devOwned = map[string]string{
	"http-addr":            "use --host and --http-port",
	"admin-addr":           "rumor dev serves everything on --http-port",
	"node-name":            "nodes are n1, n2, …",
	"gossip-addr":          "gossip listens on free ports of --host",
	"advertise-addr":       "nodes advertise --host",
	"join":                 "every node joins the first",
	"cluster-label":        "the label is rumor-dev",
	"gossip-key":           "a fresh key is made every run",
	"gossip-key-file":      "a fresh key is made every run",
	"tls-cert":             "rumor dev serves plain HTTP on loopback",
	"tls-key":              "rumor dev serves plain HTTP on loopback",
	"peer-tls-server-name": "rumor dev serves plain HTTP on loopback",
}

// devOptions are the serve options `rumor dev` takes, with its own
// defaults where they differ: a shorter drain, for a quick Ctrl-C.
func devOptions(getenv func(string) string) []option {
	var opts []option
	for _, o := range serveOptions(getenv) {
		if _, owned := devOwned[o.name]; owned {
			continue
		}
		if o.name == "drain-timeout" {
			o.def = "5s"
		}
		opts = append(opts, o)
	}
	return opts
}

// runDev is `rumor dev`: a cluster of --nodes nodes in this process, with
// real memberlist gossip and relays over loopback, for trying rumor out.
func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rumor dev", flag.ContinueOnError)
	nodes := fs.Int("nodes", 3, "how many nodes to run")
	httpPort := fs.Int("http-port", 8080, "HTTP port of the first node; node i listens on http-port+i-1 (0 picks free ports)")
	host := fs.String("host", "127.0.0.1", "address every node listens on, for HTTP and gossip")
	own := []string{"nodes", "http-port", "host"}
	// The serve options' flags are added by parseConfig; flags it does not
	// know are checked here first, so that a serve flag rumor dev sets
	// itself gets a reason instead of "flag provided but not defined".
	var errs []error
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if why, owned := devOwned[name]; owned && strings.HasPrefix(a, "-") {
			errs = append(errs, fmt.Errorf("--%s is not a rumor dev setting: %s", name, why))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	base, err := parseConfig(fs, devOptions(getenv), args, getenv, func(c *Config) {
		// What startLocal sets per node, so that Validate passes.
		c.HTTPAddr, c.NodeName = "127.0.0.1:0", "n"
	})
	if errors.Is(err, flag.ErrHelp) {
		printDevHelp(stdout, fs, own, getenv)
		return nil
	}
	errs = append(errs, err) // every problem of the serve options at once
	if *nodes < 1 || *nodes > 64 {
		errs = append(errs, fmt.Errorf("--nodes %d: want 1 to 64", *nodes))
	}
	if *httpPort < 0 || *httpPort+*nodes-1 > 65535 {
		errs = append(errs, fmt.Errorf("--http-port %d: the ports of %d nodes must be within 0 to 65535", *httpPort, *nodes))
	}
	if ip := net.ParseIP(*host); ip == nil {
		errs = append(errs, fmt.Errorf("--host %q: want an IP address", *host))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dev: %w", err)
	}

	log := newLogger(stdout, base.LogFormat, base.LogLevel)
	started, stopAll, err := startLocal(ctx, localCluster{
		nodes: *nodes, host: *host, httpPort: *httpPort, label: "rumor-dev", name: "n", base: &base,
	}, log)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	printDev(stdout, started)
	<-ctx.Done()
	log.Info("shutting down")
	err = stopAll()
	log.Info("stopped")
	return err
}

func printDevHelp(w io.Writer, fs *flag.FlagSet, own []string, getenv func(string) string) {
	fmt.Fprintf(w, "Usage: rumor dev [flags]\n\nRuns a local cluster in one process: HTTP on consecutive ports, gossip on\nfree ports, every node joined to the first, with a fresh gossip key. Ctrl-C\nstops it.\n\nFlags:\n")
	for _, name := range own {
		f := fs.Lookup(name)
		kind, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s %s\n      %s (default %s)\n", f.Name, kind, usage, f.DefValue)
	}
	fmt.Fprintf(w, "\nEvery node also takes these settings of rumor serve (see rumor serve -h),\neach as a flag or as its RUMOR_* variable; a flag wins over the variable:\n\n")
	for _, o := range devOptions(getenv) {
		def := ""
		if o.def != "" {
			def = ", default " + o.def
		}
		fmt.Fprintf(w, "  --%s %s (env %s%s)\n", o.name, o.kind, envName(o.name), def)
	}
}

// localCluster is a cluster of nodes in this process, as `rumor dev` and
// `rumor bench --cluster` run it.
type localCluster struct {
	nodes    int
	host     string  // every node listens on it
	httpPort int     // the first node's HTTP port, node i's is httpPort+i-1; 0 picks free ports
	label    string  // the cluster label
	name     string  // node names are name1, name2, …
	base     *Config // every node's settings; nil means serve's defaults without a per-client stream limit and a 5s drain
	alone    bool    // one node runs without gossip
}

// startLocal starts lc's nodes with lc.base's settings, a fresh gossip key
// (so that they run encrypted, like production should) and lc's label,
// every node joined to the first, and waits until they formed. stop shuts
// them down, newest first: each node still has peers to flush to and to
// tell that it leaves.
func startLocal(ctx context.Context, lc localCluster, log *slog.Logger) (nodes []*node, stop func() error, err error) {
	var base Config
	if lc.base != nil {
		base = *lc.base
	} else {
		if base, err = parseServe(nil, func(string) string { return "" }); err != nil {
			return nil, nil, err
		}
		base.DrainTimeout = 5 * time.Second
		base.MaxStreamsPerClient = 0
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	base.GossipKey = base64.StdEncoding.EncodeToString(key)
	base.ClusterLabel = lc.label
	base.AdvertiseAddr = ""
	stop = func() error {
		var errs []error
		for i := len(nodes) - 1; i >= 0; i-- {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), base.DrainTimeout)
			errs = append(errs, nodes[i].shutdown(sctx))
			cancel()
		}
		return errors.Join(errs...)
	}
	gossip := lc.nodes > 1 || !lc.alone
	var seed string
	for i := range lc.nodes {
		cfg := base
		cfg.NodeName = lc.name + strconv.Itoa(i+1)
		port := 0
		if lc.httpPort != 0 {
			port = lc.httpPort + i
		}
		cfg.HTTPAddr = net.JoinHostPort(lc.host, strconv.Itoa(port))
		if gossip {
			cfg.GossipAddr = net.JoinHostPort(lc.host, "0")
			if seed != "" {
				cfg.Join = []string{seed}
			}
		}
		// Not "node": the packages log the member a line is about under
		// that key, and the member name carries a random suffix.
		n, err := startNode(ctx, cfg, log.With("dev_node", cfg.NodeName), nodeOptions{local: true})
		if err != nil {
			return nil, nil, errors.Join(fmt.Errorf("start %s: %w", cfg.NodeName, err), stop())
		}
		nodes = append(nodes, n)
		if seed == "" && n.cluster != nil {
			seed = n.cluster.GossipAddr()
		}
	}
	if gossip {
		waitFormed(ctx, log, nodes)
	}
	return nodes, stop, nil
}

// waitFormed waits, up to 15s, until every node sees all of them alive and
// is ready, so that the banner comes after the joins and is true.
func waitFormed(ctx context.Context, log *slog.Logger, nodes []*node) {
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range nodes {
		for {
			alive := 0
			for _, m := range n.cluster.Members() {
				if m.State == "alive" {
					alive++
				}
			}
			if alive == len(nodes) && n.cluster.Ready() == nil {
				break
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				log.Warn("cluster not formed yet", "node", n.cluster.Self(), "alive", alive, "ready", n.cluster.Ready())
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// printDev tells a newcomer where the cluster is and what to try.
func printDev(w io.Writer, nodes []*node) {
	fmt.Fprintf(w, "\nrumor dev: %d nodes, one cluster\n\n", len(nodes))
	for _, n := range nodes {
		fmt.Fprintf(w, "  %-4s %s   (gossip %s)\n", n.cfg.NodeName, n.URL(), n.cluster.GossipAddr())
	}
	first, last := nodes[0].URL(), nodes[len(nodes)-1].URL()
	fmt.Fprintf(w, "\n  UI:        %s/\n", first)
	fmt.Fprintf(w, "  subscribe: curl -N %s/channels/demo\n", last)
	fmt.Fprintf(w, "  publish:   curl -d 'hello' %s/channels/demo\n", first)
	fmt.Fprintf(w, "  members:   curl %s/cluster\n\n  Ctrl-C stops the cluster.\n\n", first)
}
