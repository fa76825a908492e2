package transport_test

import (
	"context"
	"fmt"
	"time"

	"github.com/rumorhq/rumor/broker"
	"github.com/rumorhq/rumor/transport"
)

// Two nodes on loopback: the second joins the first, and an event
// published on the first reaches a subscriber on the second.
func ExampleCluster() {
	start := func(name string, join ...string) (*transport.Cluster, *broker.Hub) {
		origin := broker.NewOrigin()
		c, err := transport.New(transport.Config{
			NodeName: name,
			BindAddr: "127.0.0.1:0", // gossip and relay share one port; 0 picks a free one
			Join:     join,
			Origin:   origin,
			Label:    "example",
			Key:      []byte("example-key-0123"),
			Local:    true,
		})
		if err != nil {
			panic(err)
		}
		hub := broker.NewHub(broker.Options{Origin: origin, Relay: c})
		if err := c.Start(context.Background(), hub); err != nil {
			panic(err)
		}
		return c, hub
	}
	one, hubOne := start("one")
	two, hubTwo := start("two", one.GossipAddr())
	defer func() {
		// Leave, then Shutdown; the hub last.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = two.Leave(ctx)
		_ = two.Shutdown()
		_ = one.Shutdown()
		hubTwo.Close()
		hubOne.Close()
	}()
	for i := 0; i < 1000 && (one.Ready() != nil || two.Ready() != nil || len(one.Members()) < 2); i++ {
		time.Sleep(10 * time.Millisecond)
	}

	p, _ := broker.ParsePattern("greetings")
	sub, _ := hubTwo.Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{p}})
	defer sub.Close()
	// AckPeer: Publish returns once a peer holds the event.
	if _, _, err := hubOne.Publish(context.Background(), []broker.Message{{Channel: "greetings", Data: []byte("hello")}}, broker.AckPeer); err != nil {
		panic(err)
	}
	select {
	case <-sub.Ready():
		evs, _ := sub.Drain(nil)
		fmt.Printf("%s received %q on %s\n", "two", evs[0].Data, evs[0].Channel)
	case <-time.After(5 * time.Second):
		fmt.Println("nothing arrived")
	}
	// Output: two received "hello" on greetings
}
