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
	"time"
)

// runDev is `rumor dev`: a cluster of --nodes nodes in this process, with
// real memberlist gossip and relays over loopback, for trying rumor out.
func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rumor dev", flag.ContinueOnError)
	nodes := fs.Int("nodes", 3, "how many nodes to run")
	httpPort := fs.Int("http-port", 8080, "HTTP port of the first node; node i listens on http-port+i-1 (0 picks free ports)")
	host := fs.String("host", "127.0.0.1", "address every node listens on, for HTTP and gossip")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log format, to stdout: text or json")
	perClient := fs.Int("max-streams-per-client", 100, "concurrent SSE streams per client address on each node; 0 means no limit (load tests from one machine)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: rumor dev [flags]\n\nRuns a local cluster in one process: HTTP on consecutive ports, gossip on\nfree ports, every node joined to the first. Ctrl-C stops it.\n\nFlags:\n")
		printFlags(fs)
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return ignoreHelp(err)
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	if *nodes < 1 || *nodes > 64 {
		errs = append(errs, fmt.Errorf("--nodes %d: want 1 to 64", *nodes))
	}
	if *httpPort < 0 || *httpPort+*nodes-1 > 65535 {
		errs = append(errs, fmt.Errorf("--http-port %d: the ports of %d nodes must be within 0 to 65535", *httpPort, *nodes))
	}
	if ip := net.ParseIP(*host); ip == nil {
		errs = append(errs, fmt.Errorf("--host %q: want an IP address", *host))
	}
	if _, err := parseLevel(*logLevel); err != nil {
		errs = append(errs, err)
	}
	if *logFormat != "text" && *logFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", *logFormat))
	}
	if *perClient < 0 {
		errs = append(errs, fmt.Errorf("--max-streams-per-client %d: must not be negative (0 means no limit)", *perClient))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dev: %w", err)
	}

	log := newLogger(stdout, *logFormat, *logLevel)
	started, stopAll, err := startLocal(ctx, localCluster{
		nodes: *nodes, host: *host, httpPort: *httpPort, label: "rumor-dev", name: "n", perClient: *perClient,
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

// localCluster is a cluster of nodes in this process, as `rumor dev` and
// `rumor bench --cluster` run it.
type localCluster struct {
	nodes     int
	host      string // every node listens on it
	httpPort  int    // the first node's HTTP port, node i's is httpPort+i-1; 0 picks free ports
	label     string // the cluster label
	name      string // node names are name1, name2, …
	perClient int    // --max-streams-per-client
	alone     bool   // one node runs without gossip
}

// startLocal starts lc's nodes with the serve defaults, a fresh gossip key
// (so that they run encrypted, like production should) and lc's label,
// every node joined to the first, and waits until they formed. stop shuts
// them down, newest first: each node still has peers to flush to and to
// tell that it leaves.
func startLocal(ctx context.Context, lc localCluster, log *slog.Logger) (nodes []*node, stop func() error, err error) {
	base, err := parseServe(nil, func(string) string { return "" })
	if err != nil {
		return nil, nil, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	base.GossipKey = base64.StdEncoding.EncodeToString(key)
	base.ClusterLabel = lc.label
	base.DrainTimeout = 5 * time.Second
	base.AdvertiseAddr = ""
	base.MaxStreamsPerClient = lc.perClient
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
		n, err := startNode(ctx, cfg, log.With("node", cfg.NodeName), nodeOptions{local: true})
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
