package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rumorhq/rumor/broker"
)

// maxKeyLen bounds an Idempotency-Key header.
const maxKeyLen = 200

// batchKeySep joins a batch's Idempotency-Key and an item's index into the
// item's key. It is a control byte, which no Idempotency-Key may hold, so
// that no single publish's key is ever a batch item's.
const batchKeySep = "\x1f"

// batchBodyFactor bounds a POST /publish body at this many times
// MaxEventBytes; each item's data is still bounded by MaxEventBytes.
const batchBodyFactor = 4

// published is the answer for one published event.
type published struct {
	ID      string `json:"id"`
	Channel string `json:"channel"`
}

// batchItem is one message of a POST /publish body.
type batchItem struct {
	Channel string `json:"channel"`
	Event   string `json:"event"`
	Data    string `json:"data"`
}

// Why publishes failed, for rumor_publish_errors_total.
const (
	publishBadRequest   = "bad_request"  // 400: the request is wrong
	publishTooLarge     = "too_large"    // 413: over MaxEventBytes or the batch body limit
	publishOverload     = "overload"     // 503: MaxPublishes in flight
	publishDraining     = "draining"     // 503: the node is draining
	publishPeerAck      = "peer_ack"     // 503: stored here, no peer acknowledged it
	publishUnavailable  = "unavailable"  // 503: the hub closed
	publishInternal     = "internal"     // 500
	publishUnauthorized = "unauthorized" // 401: no valid token
	publishForbidden    = "forbidden"    // 403: no grant for the channel
	publishRateLimited  = "rate_limited" // 429: over PublishRate
	publishClientLimit  = "client_limit" // 429: MaxPublishesPerClient in flight from the token or address
)

// errTooLarge is a publish over the size limits: 413.
var errTooLarge = errors.New("too large")

// requestError is a client's mistake: 400, or 413 when it wraps errTooLarge.
type requestError struct{ err error }

func (e requestError) Error() string { return e.err.Error() }
func (e requestError) Unwrap() error { return e.err }

func badRequest(format string, args ...any) error {
	return requestError{fmt.Errorf(format, args...)}
}

// handlePublish serves POST /channels/{channel}: the body is the event's
// data, byte for byte.
func (h *Handler) handlePublish(w http.ResponseWriter, r *http.Request) {
	defer h.metrics.observePublish(time.Now())
	// The grant is checked before the body is read and before the request
	// takes a publish slot.
	if aerr := h.authorizePublish(r, pathChannel(r)); aerr != nil {
		h.refusePublish(w, r, aerr)
		return
	}
	release, ok := h.admitPublish(w, r)
	if !ok {
		return
	}
	defer release()
	bodyRead := h.bodyDeadline(w)
	msg, ack, err := h.readMessage(w, r)
	bodyRead(err)
	if err != nil {
		h.publishError(w, err, nil)
		return
	}
	msg.Key = h.scopedKey(r, msg.Key)
	ids, replayed, err := h.hub.Publish(r.Context(), []broker.Message{msg}, ack)
	if err != nil {
		h.publishError(w, err, ids)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusOK, published{ID: ids[0].String(), Channel: msg.Channel})
}

func (h *Handler) readMessage(w http.ResponseWriter, r *http.Request) (broker.Message, broker.Ack, error) {
	var msg broker.Message
	msg.Channel = pathChannel(r)
	if err := broker.ValidateChannel(msg.Channel); err != nil {
		return msg, 0, err
	}
	if err := checkPublishChannel(msg.Channel); err != nil {
		return msg, 0, err
	}
	q := r.URL.Query()
	if msg.Type = q.Get("event"); msg.Type != "" {
		if err := broker.ValidateType(msg.Type); err != nil {
			return msg, 0, err
		}
	}
	ack, err := h.ack(q)
	if err != nil {
		return msg, 0, err
	}
	if msg.Key, err = idempotencyKey(r); err != nil {
		return msg, 0, err
	}
	msg.Data, err = readBody(w, r, h.opts.MaxEventBytes)
	return msg, ack, err
}

// handleBatch serves POST /publish: a JSON array of {channel, event, data},
// published all or none.
func (h *Handler) handleBatch(w http.ResponseWriter, r *http.Request) {
	defer h.metrics.observePublish(time.Now())
	// Without a token nothing may be published: refused before the body is
	// read and before the request takes a publish slot. The channels' grants
	// are checked once the body names them.
	if aerr := h.requireToken(r); aerr != nil {
		h.refusePublish(w, r, aerr)
		return
	}
	release, ok := h.admitPublish(w, r)
	if !ok {
		return
	}
	defer release()
	bodyRead := h.bodyDeadline(w)
	msgs, ack, err := h.readBatch(w, r)
	bodyRead(err)
	if err != nil {
		h.publishError(w, err, nil)
		return
	}
	// All or none: one channel without a grant refuses the batch.
	for i, m := range msgs {
		if aerr := h.authorizePublish(r, m.Channel); aerr != nil {
			h.refusePublish(w, r, aerr)
			return
		}
		msgs[i].Key = h.scopedKey(r, m.Key)
	}
	ids, replayed, err := h.hub.Publish(r.Context(), msgs, ack)
	if err != nil {
		h.publishError(w, err, ids)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	out := make([]published, len(ids))
	for i, id := range ids {
		out[i] = published{ID: id.String(), Channel: msgs[i].Channel}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) readBatch(w http.ResponseWriter, r *http.Request) ([]broker.Message, broker.Ack, error) {
	ack, err := h.ack(r.URL.Query())
	if err != nil {
		return nil, 0, err
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return nil, 0, err
	}
	limit := batchBodyFactor * h.opts.MaxEventBytes
	if r.ContentLength > limit {
		return nil, 0, requestError{fmt.Errorf("%w: batch body over %d bytes", errTooLarge, limit)}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, 0, batchError(err, "")
	}
	var msgs []broker.Message
	for dec.More() {
		n := len(msgs)
		if n == h.opts.MaxBatch {
			return nil, 0, badRequest("more than %d entries in one batch: split it", h.opts.MaxBatch)
		}
		var it *batchEntry
		if err := dec.Decode(&it); err != nil {
			return nil, 0, entryError(n, err)
		}
		m, err := it.message(n, h.opts.MaxEventBytes)
		if err != nil {
			return nil, 0, err
		}
		if key != "" {
			m.Key = key + batchKeySep + strconv.Itoa(n)
		}
		msgs = append(msgs, m)
	}
	if _, err := dec.Token(); err != nil {
		if err == io.EOF {
			return nil, 0, badRequest("the body ends before the batch's closing ]")
		}
		return nil, 0, batchError(err, "")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, 0, batchError(err, "data after the batch's closing ]")
	}
	if len(msgs) == 0 {
		return nil, 0, badRequest("empty batch: send at least one entry")
	}
	return msgs, ack, nil
}

// batchEntry is batchItem as decoded, telling a missing field from an
// empty one.
type batchEntry struct {
	Channel *string `json:"channel"`
	Event   *string `json:"event"`
	Data    *string `json:"data"`
}

// entryName names entry i of a batch both ways a reader may count.
func entryName(i int) string { return fmt.Sprintf("entry %d (index %d)", i+1, i) }

// message validates entry i (nil when the JSON was null) and returns it as
// a broker.Message. The hub validates again; checking here lets the error
// name the entry and the field.
func (e *batchEntry) message(i int, maxData int64) (broker.Message, error) {
	var m broker.Message
	switch {
	case e == nil:
		return m, badRequest("%s is null, want an object %s", entryName(i), entryShape)
	case e.Channel == nil:
		return m, badRequest("%s: \"channel\" is missing", entryName(i))
	case e.Data == nil || *e.Data == "":
		what := "missing"
		if e.Data != nil {
			what = "empty"
		}
		return m, badRequest("%s: \"data\" is %s: an event needs data (an SSE event without data is never dispatched)", entryName(i), what)
	case int64(len(*e.Data)) > maxData:
		return m, requestError{fmt.Errorf("%w: %s: data over %d bytes", errTooLarge, entryName(i), maxData)}
	}
	m.Channel, m.Data = *e.Channel, []byte(*e.Data)
	if err := broker.ValidateChannel(m.Channel); err != nil {
		return m, fmt.Errorf("%s: %w", entryName(i), err)
	}
	if err := checkPublishChannel(m.Channel); err != nil {
		return m, fmt.Errorf("%s: %w", entryName(i), err)
	}
	if e.Event != nil && *e.Event != "" {
		m.Type = *e.Event
		if err := broker.ValidateType(m.Type); err != nil {
			return m, fmt.Errorf("%s: %w", entryName(i), err)
		}
	}
	return m, nil
}

// entryShape is what every entry of a batch looks like.
const entryShape = `{"channel", "event", "data"}`

// entryError says in rumor's words why entry i could not be decoded.
func entryError(i int, err error) error {
	var tooBig *http.MaxBytesError
	var typ *json.UnmarshalTypeError
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &tooBig), isConnError(err) && !errors.Is(err, io.ErrUnexpectedEOF):
		return batchError(err, "")
	case errors.As(err, &typ) && typ.Field == "":
		return badRequest("%s is %s, want an object %s", entryName(i), jsonKind(typ.Value), entryShape)
	case errors.As(err, &typ):
		msg := fmt.Sprintf("%s: %q is %s, want a string", entryName(i), typ.Field, jsonKind(typ.Value))
		if typ.Field == "data" {
			msg += ` (send JSON as a string: "data": "{\"x\": 1}")`
		}
		return badRequest("%s", msg)
	case errors.As(err, &syntax):
		return badRequest("%s: not valid JSON: %s", entryName(i), syntax.Error())
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return badRequest("%s: the body ends inside it", entryName(i))
	}
	// DisallowUnknownFields reports a plain error with this prefix.
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return badRequest("%s: unknown field %s: an entry has \"channel\", \"event\" (optional) and \"data\"", entryName(i), field)
	}
	return badRequest("%s: not valid: %v", entryName(i), err)
}

// jsonKind names a JSON value kind as encoding/json reports it, with its
// article.
func jsonKind(v string) string {
	switch v {
	case "object", "array":
		return "an " + v
	case "bool":
		return "a boolean"
	}
	if strings.HasPrefix(v, "number") { // "number 5.5" for a number that fits no Go type
		return "a number"
	}
	return "a " + v
}

// batchError reports a body that is not a valid batch outside its entries,
// or that is too large; what, when set, says what is wrong when err does
// not.
func batchError(err error, what string) error {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &tooBig):
		return requestError{fmt.Errorf("%w: batch body over %d bytes", errTooLarge, tooBig.Limit)}
	case isConnError(err) && !errors.Is(err, io.ErrUnexpectedEOF):
		return bodyError(err)
	case what != "":
		return badRequest("%s", what)
	case err == nil:
		return badRequest("a batch is a JSON array of %s objects", entryShape)
	case errors.Is(err, io.EOF):
		return badRequest("a batch is a JSON array of %s objects; the body is empty", entryShape)
	case errors.As(err, &syntax):
		return badRequest("a batch is a JSON array of %s objects; not valid JSON: %s", entryShape, syntax.Error())
	default:
		return badRequest("a batch is a JSON array of %s objects: %v", entryShape, err)
	}
}

// isConnError reports whether err came from the connection rather than
// from what was sent on it.
func isConnError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, os.ErrDeadlineExceeded)
}

// bodyError says why a body could not be read, in rumor's words: the
// connection's own error names this node's internal address.
func bodyError(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return badRequest("the body did not arrive in time (--read-body-timeout)")
	}
	return badRequest("the body was cut off: the connection failed or closed early")
}

// admitPublish refuses publishes while draining, beyond MaxPublishes in
// flight, and beyond MaxPublishesPerClient from one token (or, without
// one, one client address), without reading their bodies: one client
// holding bodies open cannot take every slot. On ok the caller must call
// release once the publish is done.
func (h *Handler) admitPublish(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	if h.draining.Load() {
		skipBody(w, r)
		h.metrics.publishErrors.WithLabelValues(publishDraining).Inc()
		writeUnavailable(w, errorBody{Error: "node is draining: publish to another node"})
		return nil, false
	}
	if h.inflight.Add(1) > int64(h.opts.MaxPublishes) {
		h.inflight.Add(-1)
		skipBody(w, r)
		h.metrics.publishErrors.WithLabelValues(publishOverload).Inc()
		writeUnavailable(w, errorBody{Error: "too many publishes in flight"})
		return nil, false
	}
	key := h.publisherKey(r)
	if !h.acquirePublisher(key) {
		h.inflight.Add(-1)
		skipBody(w, r)
		h.metrics.publishErrors.WithLabelValues(publishClientLimit).Inc()
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("%d publishes of yours in flight already: wait for their answers", h.opts.MaxPublishesPerClient))
		return nil, false
	}
	return func() {
		h.releasePublisher(key)
		h.inflight.Add(-1)
	}, true
}

// publishError answers a failed publish. ids are set when the events were
// stored here but no peer acknowledged them: they still spread, and a retry
// with the same Idempotency-Key returns the same ids.
func (h *Handler) publishError(w http.ResponseWriter, err error, ids []broker.ID) {
	if len(ids) > 0 {
		h.metrics.publishErrors.WithLabelValues(publishPeerAck).Inc()
		body := errorBody{Error: err.Error()}
		if len(ids) == 1 {
			body.ID = ids[0].String()
		} else {
			for _, id := range ids {
				body.IDs = append(body.IDs, id.String())
			}
		}
		writeUnavailable(w, body)
		return
	}
	status, reason := classify(err)
	h.metrics.publishErrors.WithLabelValues(reason).Inc()
	switch status {
	case http.StatusServiceUnavailable:
		writeUnavailable(w, errorBody{Error: err.Error()})
	case http.StatusInternalServerError:
		h.log.Error("publish failed", "err", err)
		writeError(w, status, "publish failed")
	default:
		writeError(w, status, err.Error())
	}
}

// ack reads ?ack=local|peer|all.
func (h *Handler) ack(q url.Values) (broker.Ack, error) {
	switch v := q.Get("ack"); v {
	case "":
		return h.opts.DefaultAck, nil
	case "local":
		return broker.AckLocal, nil
	case "peer":
		return broker.AckPeer, nil
	case "all":
		return broker.AckAll, nil
	default:
		return 0, badRequest("ack %q: want local, peer or all", clip(v))
	}
}

// idempotencyKey reads the Idempotency-Key header: at most maxKeyLen
// printable ASCII bytes.
func idempotencyKey(r *http.Request) (string, error) {
	vals := r.Header.Values("Idempotency-Key")
	switch len(vals) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", badRequest("more than one Idempotency-Key")
	}
	k := vals[0]
	if k == "" || len(k) > maxKeyLen {
		return "", badRequest("Idempotency-Key must be 1 to %d bytes", maxKeyLen)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return "", badRequest("Idempotency-Key must be printable ASCII")
		}
	}
	return k, nil
}

// skipBody makes a request refused before its body was read end with its
// answer: net/http would otherwise read up to 256 KiB of what is left of
// the body after the handler returns, at the client's pace, to keep the
// connection. The client gets the answer, then the connection closes.
func skipBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 || r.ProtoMajor != 1 {
		return // nothing to read; HTTP/2 resets the stream instead
	}
	w.Header().Set("Connection", "close")
	// The answer is written before net/http reads the rest: a deadline
	// already past fails that read at once.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// readBody reads a request body of at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, requestError{fmt.Errorf("%w: data over %d bytes", errTooLarge, limit)}
	}
	// Sized from Content-Length, so that the usual body is read into one
	// allocation.
	buf := bytes.NewBuffer(make([]byte, 0, max(r.ContentLength, 0)+bytes.MinRead))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, requestError{fmt.Errorf("%w: data over %d bytes", errTooLarge, limit)}
	case err != nil:
		return nil, bodyError(err)
	}
	return buf.Bytes(), nil
}

// pathChannel returns the {channel} route parameter, unescaped: chi matches
// on the escaped path when the request has one (say "orders.%3E").
func pathChannel(r *http.Request) string {
	s := chi.URLParam(r, "channel")
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// clip keeps echoes of hostile input short.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
