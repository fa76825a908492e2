// Package broker is rumor's domain: events and their cluster-wide ids, the
// hub that fans events out to local subscribers, bounded per-channel
// history, dedupe, the cluster-wide delivery order, and idempotent publish.
//
// It knows nothing about HTTP, SSE sockets or memberlist. The web package
// calls Hub.Publish and Hub.Subscribe; the transport package carries events
// between nodes through the Relay seam and hands peers' events back through
// Hub.Deliver, the one door for remote events, which dedupes, orders, stores
// and fans out locally and never relays again, so there are no loops.
//
// # Order
//
// Every event's ID carries a hybrid logical clock time, its origin node
// incarnation and the origin's sequence number. Every node releases events
// to its subscribers in ID order: an event is held until every connected
// peer has promised (with a watermark) that it will never send an event with
// a smaller ID. Peers send watermarks right after they receive events, so
// holding costs about one round trip. The result is that every node delivers
// the same events in the same order, which is what makes Last-Event-ID
// resume exact on any node. An event that arrives after a larger ID has been
// released (from a peer that was cut off, or through repair) is "late": it is
// delivered at once, stored in ID order, and counted.
package broker
