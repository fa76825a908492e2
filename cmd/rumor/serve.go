package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// runServe is `rumor serve`: one node until ctx ends (SIGINT or SIGTERM),
// then a graceful shutdown within --drain-timeout.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseServe(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		printServeHelp(stdout, getenv)
		return nil
	}
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	log := newLogger(stdout, cfg.LogFormat, cfg.LogLevel)
	log.Info("starting", "version", version(), "pid", os.Getpid(), "node", cfg.NodeName, "http", cfg.HTTPAddr, "gossip", cfg.GossipAddr, "join", strings.Join(cfg.Join, ","))
	n, err := startNode(ctx, cfg, log, nodeOptions{})
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down", "drain_timeout", cfg.DrainTimeout)
	case err := <-n.Done():
		// Serve stopped by itself: shut down what is left, then report it.
		log.Error("http server stopped", "err", err)
	}
	start := time.Now()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.DrainTimeout)
	defer cancel()
	if err := n.shutdown(sctx); err != nil {
		log.Error("shutdown", "err", err, "took", time.Since(start).Round(time.Millisecond))
		return err
	}
	log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func printServeHelp(w io.Writer, getenv func(string) string) {
	fmt.Fprintf(w, "Usage: rumor serve [flags]\n\nRuns a rumor node. Every flag can also be set with the environment variable\nnamed after it; a flag wins over the variable, the variable over the default.\n\nFlags:\n")
	for _, o := range serveOptions(getenv) {
		def := ""
		if o.def != "" {
			def = ", default " + o.def
		}
		fmt.Fprintf(w, "  --%s %s\n      %s (env %s%s)\n", o.name, o.kind, o.usage, envName(o.name), def)
	}
}
