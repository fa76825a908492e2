// Command rumor is a clustered Server-Sent Events broker: `rumor serve` runs
// a node, `rumor dev` a local cluster, and `rumor publish` and `rumor
// subscribe` talk to one. Run `rumor help` for the commands.
//
// This package owns flags, environment variables, the one logger, signals,
// the wiring of broker, transport and web, and the order of shutdown.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// buildVersion overrides the version debug.ReadBuildInfo reports; the
// Dockerfile sets it with -ldflags -X main.buildVersion=....
var buildVersion string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rumor:", err)
		os.Exit(1)
	}
}
