package web

import "net/http"

// status is the answer of the health and readiness probes.
type status struct {
	Status  string `json:"status"`
	Error   string `json:"error,omitempty"`
	Version string `json:"version,omitempty"`
}

// handleHealth serves GET /healthz: the process is alive and serving HTTP.
// It checks nothing else, so that a busy or draining node is not restarted.
func (h *Handler) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, status{Status: "ok", Version: h.opts.Version})
}

// handleReady serves GET /readyz: 200 while the node should get traffic,
// 503 from Drain on and while Options.Ready fails (not yet joined or caught
// up).
func (h *Handler) handleReady(w http.ResponseWriter, r *http.Request) {
	if h.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, status{Status: "draining"})
		return
	}
	if h.opts.Ready != nil {
		if err := h.opts.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, status{Status: "not ready", Error: err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, status{Status: "ready"})
}
