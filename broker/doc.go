// Package broker is rumor's domain: events and their cluster-wide ids, the
// hub that fans events out to local subscribers, bounded per-channel
// history, dedupe, per-origin order, resume positions, and idempotent
// publish.
//
// It knows nothing about HTTP, SSE sockets or memberlist. The web package
// calls Hub.Publish and Hub.Subscribe; the transport package carries events
// between nodes through the Relay seam and hands peers' events back through
// Hub.Deliver, the one door for remote events, which dedupes, orders, stores
// and fans out locally and never relays again, so there are no loops.
//
// # Order and resume
//
// Every event's ID carries a hybrid logical clock time, its origin node
// incarnation and the origin's sequence number. A hub delivers an event as
// soon as it holds it, in its origin's sequence, and never waits for
// another node: nodes may interleave different origins differently. What a
// client has seen is, per origin, a prefix of that origin's events, and the
// Position a stream writes as each event's SSE id says so compactly; a
// client that resumes from it on any node gets exactly what it lacks (see
// Position, Hub.Member and Hub.Settle, and docs/DESIGN.md).
package broker
