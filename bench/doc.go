// Package bench is the engine of `rumor bench`, a load generator for
// servers that speak rumor's HTTP surface (POST /channels/{channel} to
// publish, GET /channels/{channel} to stream Server-Sent Events), and the
// home of Bare, the reference fan-out loop its numbers are compared with.
//
// A Run opens subscribers (one goroutine and one raw HTTP/1.1 connection
// each), publishes events whose data carries the run, the publisher, the
// channel, a per-publisher sequence number and the send time, and reports
// deliveries per second, publish→receive latency percentiles from a
// histogram, and per subscriber the events lost, duplicated and delivered
// out of order. It never counts an event twice: a subscriber keeps the
// sequence numbers it got from each publisher as ranges. It can read the
// server's memory from /proc/PID/status and from /metrics.
//
// It does not parse SSE itself: the caller passes a reader (cmd/rumor
// passes the spec-following one `rumor subscribe` uses), so the bench is
// exactly as strict as the client users run. It starts no servers but
// Bare; cmd/rumor starts rumor nodes for --cluster.
//
// The measured runs and how to repeat them are in docs/BENCHMARKS.md.
package bench
