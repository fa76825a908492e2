package broker

import "time"

// idempotency remembers publish ids by idempotency key, bounded by count and
// age. It is not safe for concurrent use: the hub holds its lock.
type idempotency struct {
	ttl   time.Duration
	limit int
	ids   map[string]ID
	order []idemKey // insertion order, for expiry
	head  int
}

type idemKey struct {
	key string
	at  time.Time
}

func (m *idempotency) get(key string) (ID, bool) {
	id, ok := m.ids[key]
	return id, ok
}

func (m *idempotency) put(key string, id ID, now time.Time) {
	if _, ok := m.ids[key]; ok {
		return
	}
	if m.ids == nil {
		m.ids = make(map[string]ID)
	}
	m.ids[key] = id
	m.order = append(m.order, idemKey{key, now})
	m.expire(now)
}

func (m *idempotency) expire(now time.Time) {
	for m.head < len(m.order) {
		k := m.order[m.head]
		if len(m.ids) <= m.limit && now.Sub(k.at) < m.ttl {
			break
		}
		delete(m.ids, k.key)
		m.order[m.head] = idemKey{}
		m.head++
	}
	if m.head > 1024 && m.head > len(m.order)/2 {
		n := copy(m.order, m.order[m.head:])
		clear(m.order[n:]) // drop the moved-out keys' strings
		m.order, m.head = m.order[:n], 0
	}
}
