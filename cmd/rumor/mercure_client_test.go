package main

// A Mercure client nobody here wrote: Debian's php-symfony-mercure, the
// publisher of Symfony applications, with its own publish request and its
// own mercureAuthorization cookie (testdata/mercure/symfony.php), against
// a three-node cluster. It publishes on node 1; a browser page holding the
// cookie it made subscribes on node 2.
//
// The test skips with -short, and when php or the library is missing;
// RUMOR_REQUIRE_MERCURE_CLIENT=1 (set by CI, which installs php-cli and
// php-symfony-mercure) turns that skip into a failure.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// symfonyMercure finds php with symfony/mercure, or skips the test.
func symfonyMercure(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("runs php and a cluster: not with -short")
	}
	php, err := exec.LookPath("php")
	if err == nil {
		err = exec.Command(php, "-r", `exit(stream_resolve_include_path("Symfony/Component/Mercure/autoload.php") ? 0 : 1);`).Run()
	}
	if err != nil {
		msg := fmt.Sprintf("no php with symfony/mercure (%v; apt-get install php-cli php-symfony-mercure)", err)
		if os.Getenv("RUMOR_REQUIRE_MERCURE_CLIENT") == "1" {
			tb.Fatalf("%s, and RUMOR_REQUIRE_MERCURE_CLIENT=1", msg)
		}
		tb.Skip(msg)
	}
	return php
}

// runSymfony runs testdata/mercure/symfony.php's command with in as its
// JSON input and returns what it printed.
func runSymfony(tb testing.TB, php, command string, in map[string]any) string {
	tb.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(tb.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, php, filepath.Join("testdata", "mercure", "symfony.php"), command)
	cmd.Stdin = bytes.NewReader(b)
	// The library's HTTP client honours proxy variables: loopback only.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasSuffix(strings.ToLower(strings.SplitN(kv, "=", 2)[0]), "_proxy")
	})
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("php symfony.php %s: %v\n%s", command, err, stderr.Bytes())
	}
	return string(out)
}

func TestMercureSymfonyClient(t *testing.T) {
	php := symfonyMercure(t)
	exe := browserPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), browserBudget)
	defer cancel()
	app := startMercureApp(t)
	c := startMercureCluster(t, ctx, 3, "--mercure",
		"--mercure-publisher-key", mercurePublisherKey, "--mercure-subscriber-key", mercureSubscriberKey,
		"--mercure-anonymous", "--mercure-cors-origins", app.srv.URL)
	n1, n2 := c.nodes[0], c.nodes[1]

	// The application hands the page the cookie symfony/mercure makes.
	cookie := runSymfony(t, php, "cookie", map[string]any{
		"hub": n2.URL() + "/.well-known/mercure", "secret": mercureSubscriberKey,
		"app": app.srv.URL + "/", "subscribe": []string{"https://example.com/books/{id}"},
	})
	if !strings.HasPrefix(cookie, "mercureAuthorization=") || !strings.Contains(cookie, "path=/.well-known/mercure") {
		t.Fatalf("symfony/mercure made the cookie %q, want mercureAuthorization for /.well-known/mercure", cookie)
	}
	app.setCookie("reader", cookie)
	b := startBrowser(t, ctx, exe)
	p := b.open(t, app.srv.URL+"/")
	app.login(t, p, "reader")
	p.eval(t, fmt.Sprintf(`sub("books", %q, true)`, hubURL(n2.URL(), "topic", "https://example.com/books/{id}")))
	p.eval(t, fmt.Sprintf(`sub("anonymous", %q, false)`, hubURL(n2.URL(), "topic", "*")))
	waitSubs(t, p, "both subscriptions open", `S.books.opens === 1 && S.anonymous.opens === 1`)

	publish := func(update map[string]any) string {
		t.Helper()
		update["hub"], update["secret"] = n1.URL()+"/.well-known/mercure", mercurePublisherKey
		id := runSymfony(t, php, "publish", update)
		if id == "" || strings.ContainsAny(id, "\r\n") {
			t.Fatalf("Hub::publish returned %q, want the update's id", id)
		}
		return id
	}
	public := publish(map[string]any{"topics": bookOne, "data": `{"title":"public"}`})
	private := publish(map[string]any{"topics": bookTwo, "data": `{"title":"private"}`, "private": true})
	multi := publish(map[string]any{"topics": []string{bookTwo, bookOne, authorOne}, "data": "three topics"})
	typed := publish(map[string]any{"topics": bookOne, "data": "typed", "type": "book.updated",
		"id": "urn:rumor-test:symfony", "retry": 2000})
	if typed != "urn:rumor-test:symfony" {
		t.Errorf("publishing with an id returned %q, want the id", typed)
	}
	waitSubs(t, p, "the last update on both", fmt.Sprintf(`ids("books").includes(%q) && ids("anonymous").includes(%[1]q)`, typed))

	books := subEvents(t, p, "books")
	if got, want := eventIDs(books), []string{public, private, multi, typed}; !slices.Equal(got, want) {
		t.Errorf("the cookie's subscriber got\n  %q\nwant\n  %q", got, want)
	}
	if got, want := eventIDs(subEvents(t, p, "anonymous")), []string{public, multi, typed}; !slices.Equal(got, want) {
		t.Errorf("the anonymous subscriber got\n  %q\nwant (no private update)\n  %q", got, want)
	}
	for _, e := range books {
		var want dispatched
		switch e.ID {
		case public:
			want = dispatched{public, "message", `{"title":"public"}`}
		case private:
			want = dispatched{private, "message", `{"title":"private"}`}
		case typed:
			want = dispatched{typed, "book.updated", "typed"}
		default:
			continue
		}
		if e != want {
			t.Errorf("dispatched %+v, want %+v", e, want)
		}
	}
	b.checkExceptions(t)
}
