package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// command is one `rumor` subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run a node (configured by flags or RUMOR_* variables)", runServe},
		{"dev", "run a local cluster of N nodes in one process, for trying rumor out", runDev},
		{"publish", "publish one event to a channel", runPublish},
		{"subscribe", "print the events of channels and patterns, reconnecting forever", runSubscribe},
		{"check", "check a running cluster: members ready, an event published on one received on another", runCheck},
		{"bench", "load-test servers: deliveries/s, latency percentiles, lost and duplicated events", runBench},
		{"revoke", "revoke a token, or a subject's tokens, on every node (admin API)", runRevoke},
		{"kick", "end every stream of a subject or a channel pattern on every node (admin API)", runKick},
		{"revocations", "list the revocations and kicks a node holds (admin API)", runRevocations},
		{"version", "print the version", runVersion},
		{"help", "show the help of rumor or of a command", runHelp},
	}
}

// run is the whole program: main passes it the process's arguments,
// environment and output, and end-to-end tests call it the same way. It
// returns when the command is done or, for serve and dev, after ctx ends
// and the node has shut down.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printUsage(stderr)
		return errors.New("no command")
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		printUsage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	printUsage(stderr)
	return fmt.Errorf("unknown command %q", name)
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "rumor: a clustered Server-Sent Events broker\n\nUsage:\n  rumor <command> [flags] [arguments]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `rumor help <command>` for a command's flags.\n")
}

func runHelp(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printUsage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] && c.name != "help" {
			return c.run(ctx, []string{"-h"}, getenv, stdout, stderr)
		}
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// parseFlags parses a client command's flags. -h prints the help to stdout
// and returns errHelp, which the command turns into a clean exit.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return errHelp
	}
	if err != nil {
		fs.SetOutput(stderr)
		fs.Usage()
	}
	return err
}

// printFlags lists fs's flags GNU-style (--name TYPE), as serve's help does.
func printFlags(fs *flag.FlagSet) {
	w := fs.Output()
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s\n      %s", strings.TrimSpace(f.Name+" "+kind), usage)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// errHelp ends a command that only printed its help.
var errHelp = errors.New("help shown")

func runVersion(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), "Usage: rumor version") }
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return ignoreHelp(err)
	}
	fmt.Fprintf(stdout, "rumor %s (%s %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

func ignoreHelp(err error) error {
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

// version is buildVersion when set, else the main module's version from
// the build info with the VCS revision when the build recorded one.
func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	// A module version (v1.2.3 or a pseudo-version) already names the
	// commit; a "(devel)" build from a work tree gets the revision.
	if v == "" || v == "(devel)" {
		if rev == "" {
			return "(devel)"
		}
		return rev[:min(12, len(rev))] + dirty
	}
	return v
}
