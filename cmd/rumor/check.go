package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// runCheck is `rumor check`: is an installed cluster whole? It asks one
// node for the members, checks that every live member is ready, then
// publishes on one member and waits for the event on a stream opened on
// another, so that the relay between nodes is checked too. It is what
// the Helm chart's `helm test` hook runs.
func runCheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rumor check", flag.ContinueOnError)
	server := fs.String("server", cmp.Or(getenv("RUMOR_SERVER"), defaultServer), "base `URL` of any node, where /cluster is served (its admin URL when the nodes run with --admin-addr) (env RUMOR_SERVER)")
	channel := fs.String("channel", "rumor-check", "channel the check publishes on; a random suffix is added")
	minMembers := fs.Int("min-members", 1, "fail unless at least this many members are alive")
	timeout := fs.Duration("timeout", 30*time.Second, "how long the whole check may take")
	tokenFile := fs.String("token-file", "", "when the nodes require tokens: a file holding one that may publish and subscribe to the check's channels (rumor-check.>)")
	hmacFile := fs.String("hmac-secret-file", "", "when the nodes require tokens: the file of their --auth-hmac-secret-file, to sign a short-lived token for the check's channel")
	audience := fs.String("audience", "", "with --hmac-secret-file: the token's aud, when the nodes check it (--auth-audience)")
	issuer := fs.String("issuer", "", "with --hmac-secret-file: the token's iss, when the nodes check it (--auth-issuer)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: rumor check [flags]\n\nChecks a running cluster: asks --server for the members, checks that every\nlive member answers /readyz, then publishes an event on one member and waits\nfor it on a stream opened on another. Exits 1 naming what failed.\nThe members are reached at the HTTP addresses they advertise, over the\nscheme of --server.\n\nFlags:\n")
		printFlags(fs)
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return ignoreHelp(err)
	}
	base, err := parseServer(*server)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if *tokenFile != "" && *hmacFile != "" {
		return errors.New("check: --token-file and --hmac-secret-file: give one")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	client := &http.Client{Transport: newClientTransport()}

	var view struct {
		Self    string `json:"self"`
		Members []struct {
			Name, HTTP, State string
		} `json:"members"`
	}
	if err := getJSON(ctx, client, base.JoinPath("cluster").String(), &view); err != nil {
		return fmt.Errorf("check: members: %w", err)
	}
	var alive []string // HTTP base URLs
	for _, m := range view.Members {
		if m.State == "alive" && m.HTTP != "" {
			alive = append(alive, base.Scheme+"://"+m.HTTP)
		}
	}
	slices.Sort(alive)
	fmt.Fprintf(stdout, "rumor check: %d of %d members alive, asked %s\n", len(alive), len(view.Members), view.Self)
	if len(alive) < *minMembers {
		return fmt.Errorf("check: %d members alive, want at least %d", len(alive), *minMembers)
	}
	var errs []error
	for _, u := range alive {
		if code, body, err := httpGet(ctx, client, u+"/readyz"); err != nil || code != http.StatusOK {
			errs = append(errs, fmt.Errorf("%s/readyz: %d %s %v", u, code, strings.TrimSpace(body), cmp.Or[error](err, errors.New(""))))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("check: not every member is ready: %w", err)
	}
	fmt.Fprintf(stdout, "rumor check: every live member is ready\n")

	pub, sub := alive[0], alive[len(alive)-1]
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	ch := *channel + "." + hex.EncodeToString(suffix)
	var token string
	switch {
	case *tokenFile != "":
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		token = strings.TrimSpace(string(b))
	case *hmacFile != "":
		if token, err = checkToken(*hmacFile, ch, *audience, *issuer, *timeout); err != nil {
			return fmt.Errorf("check: %w", err)
		}
	}
	took, err := roundTrip(ctx, client, pub, sub, ch, token)
	if err != nil {
		return fmt.Errorf("check: publish on %s, receive on %s: %w", pub, sub, err)
	}
	fmt.Fprintf(stdout, "rumor check: published on %s, received on %s in %v\n", pub, sub, took.Round(time.Millisecond))
	return nil
}

// roundTrip opens a stream of ch on sub, publishes on pub, and returns
// how long the event took to arrive.
func roundTrip(ctx context.Context, client *http.Client, pub, sub, ch, token string) (time.Duration, error) {
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, sub+"/channels/"+url.PathEscape(ch), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("subscribe: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, fmt.Errorf("subscribe: %s: %s", resp.Status, serverError(body))
	}
	// The stream is registered once its headers are sent: the event
	// published next is live for it.
	data := "check " + ch
	began := time.Now()
	preq, err := http.NewRequestWithContext(ctx, http.MethodPost, pub+"/channels/"+url.PathEscape(ch), strings.NewReader(data))
	if err != nil {
		return 0, err
	}
	if token != "" {
		preq.Header.Set("Authorization", "Bearer "+token)
	}
	presp, err := client.Do(preq)
	if err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	answer, _ := io.ReadAll(io.LimitReader(presp.Body, 4096))
	presp.Body.Close()
	if presp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("publish: %s: %s", presp.Status, serverError(answer))
	}
	er := newEventReader(resp.Body, 1<<20)
	for {
		ev, err := er.Next()
		if err != nil {
			if ctx.Err() != nil {
				return 0, fmt.Errorf("the event did not arrive: %w", ctx.Err())
			}
			return 0, fmt.Errorf("the stream ended before the event arrived: %w", err)
		}
		if ev.Data == data {
			return time.Since(began), nil
		}
	}
}

func httpGet(ctx context.Context, client *http.Client, u string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body), err
}

func getJSON(ctx context.Context, client *http.Client, u string, v any) error {
	code, body, err := httpGet(ctx, client, u)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", u, code, serverError([]byte(body)))
	}
	return json.Unmarshal([]byte(body), v)
}

// checkToken signs an HS256 token, valid for ttl, that may publish and
// subscribe to ch only, with the secret in file (a trailing newline is not
// part of it, as for rumor serve).
func checkToken(file, ch, audience, issuer string, ttl time.Duration) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	secret := bytes.TrimRight(b, "\r\n")
	if len(secret) < 32 {
		return "", fmt.Errorf("%s: %d bytes, want the 32 or more rumor serve takes", file, len(secret))
	}
	claims := jwt.MapClaims{
		"sub":   "rumor-check",
		"exp":   time.Now().Add(ttl + time.Minute).Unix(),
		"rumor": map[string][]string{"publish": {ch}, "subscribe": {ch}},
	}
	if audience != "" {
		claims["aud"] = audience
	}
	if issuer != "" {
		claims["iss"] = issuer
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}
