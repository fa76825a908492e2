package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
)

func TestPublish(t *testing.T) {
	var got struct {
		method, uri, key, body string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.method, got.uri, got.key, got.body = r.Method, r.URL.RequestURI(), r.Header.Get("Idempotency-Key"), string(b)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"X","channel":"orders.eu"}`+"\n")
	}))
	defer srv.Close()

	var out bytes.Buffer
	args := []string{"publish", "--event", "order.paid", "--ack", "all", "--idempotency-key", "k-1", "orders.eu", "line 1\nline 2"}
	// RUMOR_SERVER stands in for --server.
	if err := run(t.Context(), args, env(map[string]string{"RUMOR_SERVER": srv.URL}), &out, io.Discard); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if got.method != "POST" || got.uri != "/channels/orders.eu?ack=all&event=order.paid" || got.key != "k-1" || got.body != "line 1\nline 2" {
		t.Errorf("publish sent %s %s, Idempotency-Key %q, body %q; want POST /channels/orders.eu?ack=all&event=order.paid, k-1, the data", got.method, got.uri, got.key, got.body)
	}
	if want := `{"id":"X","channel":"orders.eu"}` + "\n"; out.String() != want {
		t.Errorf("publish printed %q, want %q", out.String(), want)
	}
}

func TestPublishServerError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		io.WriteString(w, `{"error":"event data over 1048576 bytes"}`)
	}))
	defer srv.Close()
	var out bytes.Buffer
	err := run(t.Context(), []string{"publish", "--server", srv.URL, "demo", "x"}, env(nil), &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "413 Request Entity Too Large: event data over 1048576 bytes") {
		t.Errorf("publish to a server answering 413 = %v, want the status and the server's error", err)
	}
	if out.Len() != 0 {
		t.Errorf("publish printed %q on failure, want nothing", out.String())
	}
}

func TestPublishUsage(t *testing.T) {
	for _, args := range [][]string{
		{"publish"},
		{"publish", "a", "b", "c"},
		{"publish", "--server", "ftp://x", "a", "b"},
		{"publish", "--ack", "every", "a", "b"},
	} {
		if err := run(t.Context(), args, env(nil), io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) = nil, want a usage error", args)
		}
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"help", "publish"}, env(nil), &out, io.Discard); err != nil || !strings.Contains(out.String(), "--idempotency-key") {
		t.Errorf("rumor help publish = %v, %q; want the flags", err, out.String())
	}
}

// `echo hello | rumor publish demo` publishes "hello": one trailing newline
// from standard input goes, unless --keep-newline. Run as a process, with
// a real stdin. A server that cannot be reached is skipped for the next.
func TestPublishStdin(t *testing.T) {
	t.Parallel()
	bin := binary.get(t)
	bodies := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- string(b)
		io.WriteString(w, `{"id":"X","channel":"demo"}`)
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, c := range []struct {
		stdin string
		flags []string
		want  string
	}{
		{"hello\n", nil, "hello"},
		{"hello\r\n", nil, "hello"},
		{"two\nlines\n\n", nil, "two\nlines\n"},
		{"no newline", nil, "no newline"},
		{"hello\n", []string{"--keep-newline"}, "hello\n"},
	} {
		cmd := exec.Command(bin, append(append([]string{"publish", "--server", closed.URL + "," + srv.URL}, c.flags...), "demo")...)
		cmd.Stdin = strings.NewReader(c.stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if out, err := cmd.Output(); err != nil {
			t.Fatalf("rumor publish %v < %q: %v, %q\n%s", c.flags, c.stdin, err, out, stderr.String())
		}
		if got := <-bodies; got != c.want {
			t.Errorf("rumor publish %v < %q published %q, want %q", c.flags, c.stdin, got, c.want)
		}
		if !strings.Contains(stderr.String(), "trying "+srv.URL) {
			t.Errorf("stderr %q does not say it moved on to %s", stderr.String(), srv.URL)
		}
	}
}
