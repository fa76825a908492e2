package web

// Presence: who is subscribed to a channel, cluster-wide (package
// presence keeps the counts; this file counts the streams in and answers
// GET /presence), and the guard of rumor's own channels.

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/broker"
	"github.com/rumorhq/rumor/presence"
)

// Presence is what web needs of the presence directory;
// *presence.Directory is one.
type Presence interface {
	// Join counts an open stream; the stream calls leave when it ends.
	Join(s presence.Stream) (leave func())
	// Count, Counts and Subjects answer GET /presence, cluster-wide.
	Count(key string) int
	Counts() map[string]int
	Subjects(key string) []string
	// Status says how current the answers are.
	Status() presence.Status
}

var _ Presence = (*presence.Directory)(nil)

// maxPresenceKeys bounds the channels one GET /presence asks about.
const maxPresenceKeys = 256

// presenceAnswer is the answer of GET /presence.
type presenceAnswer struct {
	Node     string           `json:"node"`
	Status   presence.Status  `json:"status"`
	Channels []channelPresent `json:"channels"`
}

// channelPresent is one channel (or pattern) of GET /presence and the
// answer of GET /presence/{channel}.
type channelPresent struct {
	Channel     string   `json:"channel"`
	Subscribers int      `json:"subscribers"`        // streams subscribed, on every node together
	Subjects    []string `json:"subjects,omitempty"` // distinct subjects of those streams, with a presence grant (auth on)
}

// present counts s in presence until the returned func is called.
func (h *Handler) present(s *stream) (leave func()) {
	if h.opts.Presence == nil {
		return func() {}
	}
	ps := presence.Stream{Patterns: make([]string, len(s.patterns))}
	for i, p := range s.patterns {
		ps.Patterns[i] = p.String()
	}
	if s.who != nil {
		ps.Subject = s.who.Subject
	}
	return h.opts.Presence.Join(ps)
}

// parsePresenceKeys reads the ?channel= parameters of GET /presence:
// channels or patterns as streams write them, none meaning every one.
func parsePresenceKeys(names []string) ([]broker.Pattern, error) {
	if len(names) > maxPresenceKeys {
		return nil, fmt.Errorf("%d channels in one request: at most %d", len(names), maxPresenceKeys)
	}
	out := make([]broker.Pattern, 0, len(names))
	for _, n := range names {
		p, err := broker.ParsePattern(n)
		if err != nil {
			return nil, err
		}
		if broker.Reserved(n) {
			return nil, fmt.Errorf("%w %q: rumor's own channels have no presence", broker.ErrBadPattern, clipName(n))
		}
		if !slices.ContainsFunc(out, func(q broker.Pattern) bool { return q.String() == n }) {
			out = append(out, p)
		}
	}
	return out, nil
}

// handlePresence serves GET /presence: subscriber counts per channel,
// cluster-wide, for the channels named by ?channel= (every one with
// subscribers when none is named), with their subjects where the token's
// presence grant covers them. With auth on, a channel the token may
// neither subscribe to nor see the presence of is refused when named, and
// left out when not.
func (h *Handler) handlePresence(w http.ResponseWriter, r *http.Request) {
	if h.opts.Presence == nil {
		writeError(w, http.StatusNotFound, "presence is not enabled on this node")
		return
	}
	keys, err := parsePresenceKeys(r.URL.Query()["channel"])
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	who, aerr := h.presenceCaller(r)
	if aerr != nil {
		h.refuse(w, r, aerr)
		return
	}
	named := len(keys) > 0
	if !named {
		for k := range h.opts.Presence.Counts() {
			if p, err := broker.ParsePattern(k); err == nil {
				keys = append(keys, p)
			}
		}
		slices.SortFunc(keys, func(a, b broker.Pattern) int { return strings.Compare(a.String(), b.String()) })
	}
	ans := presenceAnswer{Node: h.nodeName(), Status: h.opts.Presence.Status(), Channels: []channelPresent{}}
	for _, k := range keys {
		c, aerr := h.channelPresence(who, k)
		if aerr != nil {
			if named {
				h.refuse(w, r, aerr)
				return
			}
			continue
		}
		ans.Channels = append(ans.Channels, c)
	}
	writeJSON(w, http.StatusOK, ans)
}

// handlePresenceChannel serves GET /presence/{channel}: one channel's (or
// pattern's) subscribers, cluster-wide.
func (h *Handler) handlePresenceChannel(w http.ResponseWriter, r *http.Request) {
	if h.opts.Presence == nil {
		writeError(w, http.StatusNotFound, "presence is not enabled on this node")
		return
	}
	keys, err := parsePresenceKeys([]string{pathChannel(r)})
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	who, aerr := h.presenceCaller(r)
	if aerr != nil {
		h.refuse(w, r, aerr)
		return
	}
	c, aerr := h.channelPresence(who, keys[0])
	if aerr != nil {
		h.refuse(w, r, aerr)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// presenceCaller returns the request's token: nil without auth or without
// one.
func (h *Handler) presenceCaller(r *http.Request) (*auth.Principal, *auth.Error) {
	if h.opts.Auth == nil {
		return nil, nil
	}
	return h.opts.Auth.Authenticate(r)
}

// channelPresence answers for one key, or says why who may not see it.
func (h *Handler) channelPresence(who *auth.Principal, k broker.Pattern) (channelPresent, *auth.Error) {
	c := channelPresent{Channel: k.String(), Subscribers: h.opts.Presence.Count(k.String())}
	if h.opts.Auth == nil {
		return c, nil
	}
	if aerr := h.opts.Auth.CanCount(who, k); aerr != nil {
		return c, aerr
	}
	if h.opts.Auth.CanSeePresence(who, k) == nil {
		c.Subjects = h.opts.Presence.Subjects(k.String())
	}
	return c, nil
}

// errReserved refuses rumor's own channels to publishers, and to streams
// all but rumor.presence.<channel>.
var errReserved = errors.New("reserved: rumor's own channels")

// checkPublishChannel refuses a publish to rumor's own channels.
func checkPublishChannel(ch string) error {
	if broker.Reserved(ch) {
		return fmt.Errorf("%w %q: %v (%s<channel> carries presence, which rumor publishes)", broker.ErrBadChannel, clipName(ch), errReserved, presence.NoticePrefix)
	}
	return nil
}

// checkStreamPattern refuses a stream of rumor's own channels other than
// rumor.presence.<channel or pattern>.
func checkStreamPattern(p broker.Pattern) error {
	s := p.String()
	if !broker.Reserved(s) {
		return nil
	}
	if rest, ok := strings.CutPrefix(s, presence.NoticePrefix); ok && rest != "" {
		return nil
	}
	return fmt.Errorf("%w %q: %v: only %s<channel> may be subscribed to", broker.ErrBadPattern, clipName(s), errReserved, presence.NoticePrefix)
}

func clipName(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
