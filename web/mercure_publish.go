package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/broker"
	"github.com/rumorhq/rumor/mercure"
)

// maxMercureID bounds a publisher-chosen id, and a type.
const (
	maxMercureID   = 1024
	maxMercureType = 256
)

// formOverhead is what a publish form may hold beyond its data.
const formOverhead = 64 << 10

// handlePublish serves POST /.well-known/mercure: a form-encoded update
// (topic, data, private, id, type, retry), published as one broker event
// however many topics it has. It answers 200 with the update's id as
// text/plain.
func (m *mercureFace) handlePublish(w http.ResponseWriter, r *http.Request) {
	h := m.h
	defer h.metrics.observePublish(time.Now())
	base := m.base(r)
	raw, via, merr := m.token(r)
	switch {
	case merr != nil:
	case raw == "":
		merr = noToken("publishing needs a token: send Authorization: Bearer TOKEN")
	case via == viaCookie && !m.publishOrigin(r):
		merr = &mercureError{status: http.StatusForbidden, code: "insufficient_scope", reason: auth.ReasonForbidden,
			msg: "a token from a cookie may publish only from this hub's origin or a --mercure-publish-origins origin: send Authorization: Bearer TOKEN"}
	}
	var cred *credential
	if merr == nil {
		cred, merr = m.verify(m.o.Publisher, "publisher", raw, base)
	}
	if merr != nil {
		m.refusePublish(w, r, merr)
		return
	}
	release, ok := h.admitPublish(w, r)
	if !ok {
		return
	}
	defer release()
	bodyRead := h.bodyDeadline(w)
	r.Body = http.MaxBytesReader(w, r.Body, h.opts.MaxEventBytes+formOverhead)
	err := r.ParseForm()
	bodyRead(err)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.publishError(w, fmt.Errorf("%w: publish form over %d bytes", errTooLarge, h.opts.MaxEventBytes+formOverhead), nil)
			return
		}
		m.refusePublish(w, r, mercureBadRequest("publish form: %v", err))
		return
	}
	u, merr := m.readUpdate(r, cred, base)
	if merr != nil {
		m.refusePublish(w, r, merr)
		return
	}
	if len(u.Data) > int(h.opts.MaxEventBytes) {
		h.publishError(w, fmt.Errorf("%w: data over %d bytes", errTooLarge, h.opts.MaxEventBytes), nil)
		return
	}
	if !cred.grants.CanPublish(u.Topics) {
		m.refusePublish(w, r, insufficientScope("the token may not publish to %s", describeTopics(u.Topics)))
		return
	}
	body, err := u.encode()
	if err != nil {
		h.publishError(w, err, nil)
		return
	}
	ack, err := h.ack(r.URL.Query())
	if err != nil {
		h.publishError(w, err, nil)
		return
	}
	ids, _, err := h.hub.Publish(r.Context(), []broker.Message{{Channel: mercureChannel, Data: body}}, ack)
	if err != nil {
		h.publishError(w, err, ids)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(u.ID))
}

// refusePublish is refuse for a publish, which rumor_publish_errors_total
// counts too.
func (m *mercureFace) refusePublish(w http.ResponseWriter, r *http.Request, e *mercureError) {
	reason := publishBadRequest
	switch e.status {
	case http.StatusRequestEntityTooLarge:
		reason = publishTooLarge
	case http.StatusUnauthorized:
		reason = publishUnauthorized
	case http.StatusForbidden:
		reason = publishForbidden
	}
	m.h.metrics.publishErrors.WithLabelValues(reason).Inc()
	skipBody(w, r)
	m.refuse(w, r, e)
}

// readUpdate reads and checks the publish form's fields (the body, and
// the query as 1.0 allows).
func (m *mercureFace) readUpdate(r *http.Request, cred *credential, base string) (*update, *mercureError) {
	f := r.Form
	u := &update{Topics: f["topic"]}
	switch {
	case len(u.Topics) == 0:
		return nil, mercureBadRequest("no topic: add topic=... to the form")
	case len(u.Topics) > 1 && cred.grants.Form == mercure.AccessToken:
		// 1.0: an update has exactly one topic.
		return nil, mercureBadRequest("%d topic fields: a 1.0 update has exactly one topic", len(u.Topics))
	case len(u.Topics) > m.o.MaxSelectors:
		return nil, mercureBadRequest("%d topics: at most %d", len(u.Topics), m.o.MaxSelectors)
	}
	for _, t := range u.Topics {
		if len(t) > mercure.MaxTopicLen {
			return nil, fieldTooLarge("topic", mercure.MaxTopicLen)
		}
		if err := mercure.CheckTopic(t); err != nil {
			return nil, mercureBadRequest("topic: %v", err)
		}
		if mercure.Reserved(t, base) {
			return nil, &mercureError{status: http.StatusForbidden, code: "insufficient_scope", reason: auth.ReasonForbidden,
				msg: fmt.Sprintf("topic %q is in the hub's own namespace %s/", clip(t), MercurePath)}
		}
	}
	// The field's presence makes the update private, whatever its value.
	_, u.Private = f["private"]
	u.Data = f.Get("data")
	if !utf8.ValidString(u.Data) {
		return nil, mercureBadRequest("data: not UTF-8")
	}
	u.ID = f.Get("id")
	switch {
	case u.ID == "":
		u.ID = newUUID()
	case u.ID == earliest:
		return nil, mercureBadRequest("id: %q is reserved for resuming from the start", earliest)
	case strings.HasPrefix(u.ID, "#"):
		return nil, mercureBadRequest("id: must not start with #")
	case strings.ContainsAny(u.ID, "\r\n\x00"):
		return nil, mercureBadRequest("id: must not hold CR, LF or NUL")
	case len(u.ID) > maxMercureID:
		return nil, fieldTooLarge("id", maxMercureID)
	case !utf8.ValidString(u.ID):
		return nil, mercureBadRequest("id: not UTF-8")
	}
	u.Type = f.Get("type")
	if len(u.Type) > maxMercureType {
		return nil, fieldTooLarge("type", maxMercureType)
	}
	if strings.ContainsAny(u.Type, "\r\n\x00") || !utf8.ValidString(u.Type) {
		return nil, mercureBadRequest("type: UTF-8 without CR, LF or NUL")
	}
	u.Retry = f.Get("retry")
	if u.Retry != "" {
		if len(u.Retry) > 10 || strings.Trim(u.Retry, "0123456789") != "" {
			return nil, mercureBadRequest("retry: want milliseconds, ASCII digits only")
		}
	}
	return u, nil
}

// fieldTooLarge is a publish field over its limit: 413, as 1.0 says.
func fieldTooLarge(field string, limit int) *mercureError {
	return &mercureError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("%s: longer than %d bytes", field, limit)}
}

// describeTopics names topics in an error, briefly.
func describeTopics(topics []string) string {
	if len(topics) == 1 {
		return fmt.Sprintf("%q", clip(topics[0]))
	}
	return fmt.Sprintf("%q and %d other topics", clip(topics[0]), len(topics)-1)
}
