package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// errorBody is every error answer: {"error": "..."}, plus the id of an event
// that was stored although the request failed (a peer ack that timed out).
type errorBody struct {
	Error  string   `json:"error"`
	Reason string   `json:"reason,omitempty"` // why a token was refused: missing, invalid, expired or forbidden
	ID     string   `json:"id,omitempty"`
	IDs    []string `json:"ids,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// writeUnavailable answers 503 with a jittered Retry-After, so that clients
// that back off do not all return in the same second.
func writeUnavailable(w http.ResponseWriter, body errorBody) {
	w.Header().Set("Retry-After", strconv.Itoa(int(jitter(time.Second, 3*time.Second)/time.Second)))
	writeJSON(w, http.StatusServiceUnavailable, body)
}

// classify is the one place that says what a failed request's error
// means: its HTTP status and its reason for rumor_publish_errors_total.
// The client's mistakes (a requestError, a broker validation error) are
// 400, or 413 when too large; a closing hub is 503; anything else is 500.
func classify(err error) (status int, reason string) {
	var reqErr requestError
	switch {
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, publishTooLarge
	case errors.As(err, &reqErr),
		errors.Is(err, broker.ErrBadChannel), errors.Is(err, broker.ErrBadPattern),
		errors.Is(err, broker.ErrBadType), errors.Is(err, broker.ErrBadData),
		errors.Is(err, broker.ErrBadID):
		return http.StatusBadRequest, publishBadRequest
	case errors.Is(err, broker.ErrClosed), errors.Is(err, broker.ErrJoining):
		return http.StatusServiceUnavailable, publishUnavailable
	default:
		return http.StatusInternalServerError, publishInternal
	}
}

// recoverer turns a panicking handler into a 500 and a log line instead of
// a dropped connection. http.ErrAbortHandler keeps its meaning.
func (h *Handler) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", v)
			// If the handler had started its answer this write is lost in
			// it, but the client still sees the connection end.
			writeError(w, http.StatusInternalServerError, "internal error")
		}()
		next.ServeHTTP(w, r)
	})
}
