package main

// The admin commands: rumor revoke, rumor kick and rumor revocations call
// the admin API (POST and GET /revocations) of a node with an admin token.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// adminFlags are the flags every admin command takes.
type adminFlags struct {
	server  *serverFlag
	token   *string
	timeout *time.Duration
	getenv  func(string) string
}

func newAdminFlags(fs *flag.FlagSet, getenv func(string) string) adminFlags {
	a := adminFlags{server: newServerFlag(getenv), getenv: getenv}
	fs.Var(a.server, "server", "the node's admin `URL` (its --admin-addr, or its HTTP address without one); repeat it or give a comma-separated list to fall back on the next when one cannot be reached (env RUMOR_SERVER)")
	// Read from the environment only when used, so that -h never prints it.
	a.token = fs.String("admin-token", "", `a token with the grant "rumor": {"admin": true}, sent as Authorization: Bearer (env RUMOR_ADMIN_TOKEN)`)
	a.timeout = fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	return a
}

// call sends body (nil for a GET) to /revocations and writes the answer
// to stdout.
func (a adminFlags) call(ctx context.Context, cmd string, body any, stdout io.Writer) error {
	token := cmp.Or(*a.token, a.getenv("RUMOR_ADMIN_TOKEN"))
	if token == "" {
		return fmt.Errorf("%s: an admin token is required: --admin-token or RUMOR_ADMIN_TOKEN", cmd)
	}
	bases, err := a.server.URLs()
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	method, payload := http.MethodGet, []byte(nil)
	if body != nil {
		method = http.MethodPost
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *a.timeout)
	defer cancel()
	var resp *http.Response
	for i, base := range bases {
		req, err := http.NewRequestWithContext(ctx, method, base.JoinPath("revocations").String(), bytes.NewReader(payload))
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		if resp, err = http.DefaultClient.Do(req); err == nil {
			break
		}
		// A decision that reached a node is held: only an unreachable
		// node is safe to replace.
		if !isDialError(err) || i == len(bases)-1 {
			return fmt.Errorf("%s: %w", cmd, err)
		}
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s: read answer: %w", cmd, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s: %s", cmd, resp.Status, serverError(answer))
	}
	_, err = stdout.Write(append(bytes.TrimSpace(answer), '\n'))
	return err
}

// timeFlag is an RFC 3339 time, or empty.
type timeFlag struct{ t time.Time }

func (f *timeFlag) String() string {
	if f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f *timeFlag) Set(s string) error {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return errors.New("want an RFC 3339 time like 2026-01-02T15:04:05Z")
	}
	f.t = t
	return nil
}

// runRevoke is `rumor revoke`: refuse a token (by jti) or every token of a
// subject issued before a time, on every node, and end their streams.
func runRevoke(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rumor revoke", flag.ContinueOnError)
	a := newAdminFlags(fs, getenv)
	jti := fs.String("jti", "", "revoke the token with this jti")
	subject := fs.String("subject", "", "revoke every token of this subject (sub) issued before --issued-before")
	var before, until timeFlag
	fs.Var(&before, "issued-before", "with --subject: revoke the tokens whose iat is before this RFC 3339 `time`, in whole seconds; empty means now")
	fs.Var(&until, "until", "hold the revocation until this RFC 3339 `time`: the latest exp of the tokens it covers; empty means 24 hours from now")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: rumor revoke [flags] --jti ID | --subject SUB\n\nRevokes a token, or every token of a subject issued before a time, on\nevery node: they are refused from now on and their streams end.\n\nFlags:\n")
		printFlags(fs)
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return ignoreHelp(err)
	}
	body := map[string]any{"until": until.t}
	switch {
	case fs.NArg() > 0 || (*jti == "") == (*subject == ""):
		fs.SetOutput(stderr)
		fs.Usage()
		return errors.New("revoke: want exactly one of --jti and --subject")
	case *jti != "":
		if !before.t.IsZero() {
			return errors.New("revoke: --issued-before goes with --subject")
		}
		body["kind"], body["jti"] = "token", *jti
	default:
		body["kind"], body["subject"], body["at"] = "subject", *subject, before.t
	}
	return a.call(ctx, "revoke", body, stdout)
}

// runKick is `rumor kick`: end every stream of a subject or of a channel
// pattern, on every node.
func runKick(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rumor kick", flag.ContinueOnError)
	a := newAdminFlags(fs, getenv)
	subject := fs.String("subject", "", "end the streams whose token has this subject (sub)")
	channel := fs.String("channel", "", "end the streams subscribed to a channel this `pattern` can match")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: rumor kick [flags] --subject SUB | --channel PATTERN\n\nEnds every stream of a subject, or of channels a pattern matches, on\nevery node. Their tokens stay good: clients may reconnect (revoke them\nto stop that).\n\nFlags:\n")
		printFlags(fs)
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return ignoreHelp(err)
	}
	if fs.NArg() > 0 || (*subject == "") == (*channel == "") {
		fs.SetOutput(stderr)
		fs.Usage()
		return errors.New("kick: want exactly one of --subject and --channel")
	}
	body := map[string]any{"kind": "kick-subject", "subject": *subject}
	if *channel != "" {
		body = map[string]any{"kind": "kick-channel", "channel": *channel}
	}
	return a.call(ctx, "kick", body, stdout)
}

// runRevocations is `rumor revocations`: the decisions a node holds.
func runRevocations(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rumor revocations", flag.ContinueOnError)
	a := newAdminFlags(fs, getenv)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: rumor revocations [flags]\n\nPrints the revocations and kicks a node holds, as JSON.\n\nFlags:\n")
		printFlags(fs)
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return ignoreHelp(err)
	}
	if fs.NArg() > 0 {
		return errors.New("revocations: takes no arguments")
	}
	return a.call(ctx, "revocations", nil, stdout)
}
