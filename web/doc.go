// Package web is rumor's HTTP face: a chi router with plain net/http
// handlers that publish events (POST /channels/{channel}, POST /publish),
// stream them as Server-Sent Events (GET /channels/{channel}, GET /events),
// list channels and cluster members, answer health and readiness probes,
// expose Prometheus metrics and serve the embedded UI from web/ui.
//
// It writes the SSE wire format itself: the broker builds every event's
// frame once and shares it, and each stream has one writer goroutine (the
// handler's, or on HTTP/1.1, once the stream has taken its connection over
// from net/http, one of its own). It batches whatever is queued into one write,
// sends comment heartbeats on idle streams and ends a stream with a jittered
// retry: line instead of an error status, because a browser's EventSource
// never reconnects after a non-200 answer.
//
// It keeps no history, orders nothing and carries no event between nodes:
// that is the broker's and the transport's work; web sees the membership
// only through the small Cluster interface. One thing in web does reach
// other nodes: the UI's cluster view (clusterview.go) asks each live peer
// for its own counts with the same read-only HTTP views a browser could
// call (GET /node, GET /channels), server side, cached for a second, so
// that the browser talks to one origin. cmd/rumor builds the Handler with
// NewHandler, serves it with an http.Server, and on shutdown calls Drain,
// then (after the relays are flushed) CloseStreams.
//
// With auth, a stream lives no longer than its token: it ends at the
// token's exp, or when an admin revokes the token or kicks the stream
// (POST /revocations, revoke.go), telling the page why with a rumor.end
// event (session.go). Spreading a decision to the other nodes is the
// caller's (Options.Spread).
//
// The HTTP contract is documented in docs/API.md.
package web
