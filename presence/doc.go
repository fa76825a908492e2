// Package presence answers "who is here" for the whole cluster: how many
// streams are subscribed to each channel on every node together, which
// subjects (the tokens' sub) they belong to, and, with Options.Records,
// the list of every open stream (what Mercure's subscriptions API needs).
// It also announces when a channel becomes occupied (its first subscriber
// anywhere) or vacated (its last one gone), and when a subject joins or
// leaves it, as ordinary events on the reserved channel
// rumor.presence.<channel>, each transition once for the cluster.
//
// # How the counts travel
//
// Each node keeps its own streams' counts (Directory.Join) and publishes
// what changed, at most once per Options.Interval, as an event on the
// reserved channel rumor.census: the relay carries it to every node in its
// origin's order, with repair, like any event. A node that sees a gap in
// another's census, or meets a new member, asks for (or sends) a whole
// snapshot. So counts lag by at most Interval plus the relay's delay.
//
// # Who decides
//
// One node decides each channel's transitions: the live member with the
// highest rendezvous hash of (its origin, the channel), so every node that
// sees the same members picks the same one, and a death moves only that
// node's channels. Decisions are events on rumor.presence.<channel>, which
// every node follows: each holds the last announced state per channel and
// subject (the latest by event id wins), so a new decider, after a death
// or a join, announces only what differs from what was announced. A node
// decides only while it holds a fresh census of every live member, and
// only after membership and freshness have held still for
// Options.Handover, so that the previous decider's last announcements
// reach it first; after a member leaves, also only once it has applied
// every announcement of the departed that a live member reported having
// applied in a census sent since (the census carries, per origin, the
// highest announcement applied). A channel is vacated, and a subject has left, only after
// it stayed empty for Options.Grace: a subscriber who reconnects to
// another node within it is neither a leave nor a join.
//
// It imports only broker and the standard library: cmd wires it to the
// hub and to the cluster's member list, web asks it.
package presence
