package web

import (
	"cmp"
	"net/http"
	"slices"
	"sync"
)

// Member is one node of the cluster as this node sees it.
type Member struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`            // gossip address
	HTTP  string `json:"http"`            // HTTP API address
	Admin string `json:"admin,omitempty"` // admin listener address, if it has one: peers ask it for the cluster view
	State string `json:"state"`           // alive, suspect, dead or left
	Self  bool   `json:"self,omitempty"`
}

// Cluster is what web needs from membership; cmd adapts transport.Cluster
// to it. A nil Options.Cluster means a single node. Its methods are called
// from any goroutine.
type Cluster interface {
	// Self returns this node's member name.
	Self() string
	// Members returns every member, self included, with its state: alive,
	// suspect, dead or left.
	Members() []Member
	// Changes receives, coalesced, when membership changes. It has one
	// consumer: the Handler, which fans it out to its watchers.
	Changes() <-chan struct{}
}

// memberList is the answer of GET /cluster.
type memberList struct {
	Self    string   `json:"self"`
	Members []Member `json:"members"`
}

// clusterView returns the members as this node sees them, sorted by name.
func (h *Handler) clusterView() memberList {
	if h.opts.Cluster == nil {
		return memberList{Self: h.opts.NodeName, Members: []Member{{
			Name: h.opts.NodeName, HTTP: h.opts.HTTPAddr, Admin: h.opts.AdminAddr, State: "alive", Self: true,
		}}}
	}
	ms := slices.Clone(h.opts.Cluster.Members())
	slices.SortFunc(ms, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	if ms == nil {
		ms = []Member{}
	}
	return memberList{Self: h.opts.Cluster.Self(), Members: ms}
}

// handleCluster serves GET /cluster: the members as this node sees them.
func (h *Handler) handleCluster(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.clusterView())
}

// membership fans Cluster.Changes out to any number of watchers: every
// change closes the current channel and makes the next. A pump goroutine
// reads Changes while anyone watches; the last watcher to leave stops it and
// waits for it.
type membership struct {
	cluster Cluster

	mu       sync.Mutex
	changed  chan struct{} // closed at the next change
	watchers int
	quit     chan struct{} // stops the pump
	done     chan struct{} // closed when the pump has returned
}

// watch returns a channel closed at the next change and the function to
// call when done watching.
func (m *membership) watch() (changed <-chan struct{}, leave func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.changed == nil {
		m.changed = make(chan struct{})
	}
	m.watchers++
	if m.watchers == 1 {
		m.quit, m.done = make(chan struct{}), make(chan struct{})
		go m.pump(m.quit, m.done)
	}
	return m.changed, m.leave
}

// next returns the channel closed at the change after the one just seen.
func (m *membership) next() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

func (m *membership) leave() {
	m.mu.Lock()
	m.watchers--
	var done chan struct{}
	if m.watchers == 0 {
		close(m.quit)
		done = m.done
	}
	m.mu.Unlock()
	if done != nil {
		<-done
	}
}

func (m *membership) pump(quit, done chan struct{}) {
	defer close(done)
	changes := m.cluster.Changes()
	for {
		select {
		case <-quit:
			return
		case <-changes:
			m.mu.Lock()
			close(m.changed)
			m.changed = make(chan struct{})
			m.mu.Unlock()
		}
	}
}
