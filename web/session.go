package web

// A stream's session: the token that opened it, and how the stream tells
// its page that it ends because of that token. A stream opened with a token
// lives no longer than the token: at its exp (plus the leeway) the stream
// writes one event of the reserved type EndType, saying why, then a retry:
// line and a comment, and ends. The event carries no id, so the browser's
// Last-Event-ID stays on the last event the stream delivered, and the page
// can fetch a fresh token and resume from there without a gap: the events
// published meanwhile wait in the history. A stream is never carried on
// without its token, nor narrowed to the public channels: the reconnect
// with the old token is refused (401, reason "expired") whatever it asks for.

import (
	"encoding/json"
	"time"
)

// EndType is the type of the event a stream sends just before it ends
// because of its token. Its data is one JSON object:
//
//	{"reason": "expired", "message": "...", "lastEventId": "..."}
//
// reason is why: expired (the token's exp passed), revoked (an admin
// revoked the token) or kicked (an admin ended the streams of its subject
// or channels); lastEventId is the id of the last event the stream sent,
// where a resume picks up.
const EndType = "rumor.end"

// endEvent is the data of an EndType event.
type endEvent struct {
	Reason      string `json:"reason"`
	Message     string `json:"message"`
	LastEventID string `json:"lastEventId"`
}

// endWhy says to the page, for each reason a session ends, what to do.
var endWhy = map[string]string{
	endExpired: "token expired: fetch a fresh token and reconnect with Last-Event-ID",
	endRevoked: "token revoked: a new token is needed to reconnect",
	endKicked:  "ended by an admin",
}

// endSession writes the EndType event for reason, then a jittered retry:
// and a comment; the stream ends after it. A page that ignores the event
// reconnects after the retry: with the same token and gets 401.
func (s *stream) endSession(reason string) {
	why := endWhy[reason]
	data, _ := json.Marshal(endEvent{Reason: reason, Message: why, LastEventID: s.lastEventID()})
	b := s.h.getBatch()
	b.buf = append(b.buf, "event: "+EndType+"\ndata: "...)
	b.buf = append(b.buf, data...) // json.Marshal writes no line break
	b.buf = append(b.buf, "\n\n"...)
	b.buf = appendRetry(b.buf, jitter(s.h.opts.Retry, time.Second))
	b.buf = appendComment(b.buf, why)
	b.buf = append(b.buf, '\n')
	_ = s.write(b.buf)
	s.h.putBatch(b)
}
