package web_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/rumorhq/rumor/broker"
	"github.com/rumorhq/rumor/web"
)

// A browser's view of a stream: subscribe, publish, read the event.
func ExampleNewHandler() {
	hub := broker.NewHub(broker.Options{})
	defer hub.Close()
	h, err := web.NewHandler(web.Options{Hub: hub, NodeName: "example"})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.CloseStreams(context.Background())

	stream, err := srv.Client().Get(srv.URL + "/channels/greetings")
	if err != nil {
		panic(err)
	}
	defer stream.Body.Close()

	resp, err := srv.Client().Post(srv.URL+"/channels/greetings?event=greeting", "text/plain", strings.NewReader("hello\nworld"))
	if err != nil {
		panic(err)
	}
	resp.Body.Close()

	lines := bufio.NewScanner(stream.Body)
	for lines.Scan() {
		line := lines.Text()
		if strings.HasPrefix(line, "id: ") {
			fmt.Println("id: …") // ids are unique per event
			continue
		}
		fmt.Println(line)
		if line == "data: world" {
			break
		}
	}
	// Output:
	// retry: 2000
	// : rumor example
	//
	// id: …
	// event: greeting
	// data: hello
	// data: world
}
