package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// runPublish is `rumor publish`: POST /channels/{channel} with DATA (or
// stdin) as the body, and the server's JSON answer on stdout.
func runPublish(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rumor publish", flag.ContinueOnError)
	server := newServerFlag(getenv)
	fs.Var(server, "server", "rumor node's base `URL`; repeat it or give a comma-separated list to fall back on the next when one cannot be reached (env RUMOR_SERVER)")
	event := fs.String("event", "", "SSE event type; empty means the default \"message\"")
	key := fs.String("idempotency-key", "", "Idempotency-Key: a retry with the same key returns the first publish's id")
	keepNewline := fs.Bool("keep-newline", false, "publish standard input as is; without it one trailing newline (\\n or \\r\\n, as echo adds) is removed")
	ack := fs.String("ack", "", "when the server answers: peer (a live peer holds the event), local, or all (every live member holds it: events published after the answer reach every subscriber after this one); empty means the server's default")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: rumor publish [flags] CHANNEL [DATA]\n\nPublishes DATA (or standard input when DATA is absent, without its one\ntrailing newline) to CHANNEL and prints the server's answer.\n\nFlags:\n")
		printFlags(fs)
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return ignoreHelp(err)
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fs.SetOutput(stderr)
		fs.Usage()
		return errors.New("publish: want CHANNEL [DATA]")
	}
	bases, err := server.URLs()
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	switch *ack {
	case "", "peer", "local", "all":
	default:
		return fmt.Errorf("publish: --ack %q: want peer, local or all", *ack)
	}
	query := url.Values{}
	if *event != "" {
		query.Set("event", *event)
	}
	if *ack != "" {
		query.Set("ack", *ack)
	}
	var data []byte
	if fs.NArg() == 2 {
		data = []byte(fs.Arg(1))
	} else {
		// Read it all first: a request body that fails half-way through
		// must not become half an event.
		if data, err = io.ReadAll(os.Stdin); err != nil {
			return fmt.Errorf("publish: read stdin: %w", err)
		}
		if !*keepNewline {
			data = trimNewline(data)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var resp *http.Response
	for i, base := range bases {
		u := base.JoinPath("channels", fs.Arg(0))
		u.RawQuery = query.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
		if *key != "" {
			req.Header.Set("Idempotency-Key", *key)
		}
		resp, err = http.DefaultClient.Do(req)
		if err == nil {
			break
		}
		// Only a server that was never reached is safe to replace: one
		// that was may have published the event.
		if !isDialError(err) || i == len(bases)-1 {
			return fmt.Errorf("publish: %w", err)
		}
		fmt.Fprintf(stderr, "rumor publish: %v; trying %s\n", err, bases[i+1].Redacted())
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("publish: read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("publish: %s: %s", resp.Status, serverError(answer))
	}
	_, err = stdout.Write(append(bytes.TrimSpace(answer), '\n'))
	return err
}

// trimNewline removes one trailing "\n" or "\r\n": the one `echo` and
// most editors end input with, which would otherwise become an empty last
// data: line.
func trimNewline(b []byte) []byte {
	if b, ok := bytes.CutSuffix(b, []byte("\n")); ok {
		b, _ = bytes.CutSuffix(b, []byte("\r"))
		return b
	}
	return b
}

// isDialError reports whether err is a failure to connect, before any
// byte of the request was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// serverError is the text of an error answer: {"error": "..."} or, from
// something that is not rumor, the body itself, shortened.
func serverError(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		return "no error text"
	}
	return s
}
