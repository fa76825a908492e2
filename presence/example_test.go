package presence_test

import (
	"fmt"

	"github.com/rumorhq/rumor/broker"
	"github.com/rumorhq/rumor/presence"
)

// A single node: the directory counts the streams the HTTP face reports.
// In a cluster, Options.Members lists the live members, and every node's
// counts are summed.
func Example() {
	hub := broker.NewHub(broker.Options{})
	defer hub.Close()
	dir, err := presence.New(presence.Options{Hub: hub})
	if err != nil {
		panic(err)
	}
	defer dir.Close()

	leave := dir.Join(presence.Stream{Patterns: []string{"room.42"}, Subject: "alice"})
	dir.Join(presence.Stream{Patterns: []string{"room.42", "orders.>"}, Subject: "bob"})
	fmt.Println(dir.Count("room.42"), dir.Subjects("room.42"), dir.Count("orders.>"))
	leave()
	fmt.Println(dir.Count("room.42"), dir.Subjects("room.42"))
	// Output:
	// 2 [alice bob] 1
	// 1 [bob]
}
