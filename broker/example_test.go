package broker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/rumorhq/rumor/broker"
)

func ExampleHub() {
	hub := broker.NewHub(broker.Options{
		Origin: 0xabc, // normally random per process start
		Now:    func() time.Time { return time.UnixMilli(1_700_000_000_000) },
	})
	defer hub.Close()

	orders, _ := broker.ParsePattern("orders.*")
	sub, _ := hub.Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{orders}})
	defer sub.Close()

	ids, _, _ := hub.Publish(context.Background(), []broker.Message{
		{Channel: "orders.eu", Type: "order.paid", Data: []byte("{\"id\":42}")},
		{Channel: "orders.us", Data: []byte("line one\nline two")},
	}, broker.AckLocal)

	<-sub.Ready()
	events, _ := sub.Drain(nil)
	for _, e := range events {
		fmt.Printf("%s", sub.Frame(e)) // what the stream writes
	}

	// A client that saw the first event resumes exactly after it.
	resumed, _ := hub.Subscribe(broker.SubscribeRequest{Patterns: []broker.Pattern{orders}, From: broker.PositionOf(ids[0])})
	defer resumed.Close()
	fmt.Println(len(resumed.Replay), resumed.Replay[0].Channel, resumed.Reset)

	// Output:
	// id: 018bcfe568000000-0000000000000abc-1
	// event: order.paid
	// data: {"id":42}
	//
	// id: 018bcfe568000001-0000000000000abc-2
	// data: line one
	// data: line two
	//
	// 1 orders.us false
}
