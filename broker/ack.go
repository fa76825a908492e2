package broker

// Ack says when Publish returns.
type Ack int

const (
	// AckPeer returns once the event is stored here and a live peer has
	// acknowledged it; alone, it is the same as AckLocal.
	AckPeer Ack = iota
	// AckLocal returns once the event is stored on this node.
	AckLocal
	// AckAll returns once the event is stored here and every live member
	// of the cluster holds it (Relay.AckedAll says who counts as live).
	// Because every node delivers an event as soon as it holds it, an
	// event answered with AckAll reaches every subscriber before any event
	// published after that answer, on any node: causal publishing behind
	// a load balancer. Alone, it is the same as AckLocal.
	AckAll
)
