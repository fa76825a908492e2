package main

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
	"net/url"
	"os"
	"strings"
	"time"
)

// defaultServer is where publish and subscribe go without --server or
// RUMOR_SERVER: `rumor serve` with its defaults.
const defaultServer = "http://localhost:8080"

// runPublish is `rumor publish`: POST /channels/{channel} with DATA (or
// stdin) as the body, and the server's JSON answer on stdout.
func runPublish(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rumor publish", flag.ContinueOnError)
	server := fs.String("server", cmp.Or(getenv("RUMOR_SERVER"), defaultServer), "rumor node's base URL (env RUMOR_SERVER)")
	event := fs.String("event", "", "SSE event type; empty means the default \"message\"")
	key := fs.String("idempotency-key", "", "Idempotency-Key: a retry with the same key returns the first publish's id")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: rumor publish [flags] CHANNEL [DATA]\n\nPublishes DATA (or standard input when DATA is absent) to CHANNEL and prints\nthe server's answer.\n\nFlags:\n")
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
	base, err := parseServer(*server)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	var body io.Reader
	if fs.NArg() == 2 {
		body = strings.NewReader(fs.Arg(1))
	} else {
		// Read it all first: a request body that fails half-way through
		// must not become half an event.
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			return fmt.Errorf("publish: read stdin: %w", err)
		}
		body = bytes.NewReader(data)
	}
	u := base.JoinPath("channels", fs.Arg(0))
	if *event != "" {
		u.RawQuery = url.Values{"event": {*event}}.Encode()
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), body)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if *key != "" {
		req.Header.Set("Idempotency-Key", *key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
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

// parseServer checks a --server URL.
func parseServer(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want a URL like %s", s, defaultServer)
	}
	return u, nil
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
