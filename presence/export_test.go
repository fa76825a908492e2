package presence

// DeciderAmong returns the decider of key among origins: what Decider
// answers on a node whose member list is origins.
func DeciderAmong(key string, origins []uint64) uint64 {
	d := &Directory{order: origins}
	return d.rendezvous(key)
}
