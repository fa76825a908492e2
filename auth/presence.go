package auth

// Grants of presence: who may see who is subscribed to a channel, and
// follow its joins and leaves on rumor.presence.<channel>.

import (
	"strings"

	"github.com/rumorhq/rumor/broker"
)

// noticePrefix starts the channels where presence announces a channel's
// transitions (package presence): rumor.presence.<channel>.
const noticePrefix = broker.ReservedToken + ".presence."

// CanSeePresence reports whether p may see the subjects subscribed to key,
// a channel or a pattern as streams write it: one of p's presence grants
// must cover it. Subscribe grants do not: knowing who else listens is a
// grant of its own.
func (a *Authenticator) CanSeePresence(p *Principal, key broker.Pattern) *Error {
	if p == nil {
		return unauthorized(ReasonMissing, "a token with a presence grant is required to see who is subscribed to %q", clip(key.String()))
	}
	if !coveredBy(p.Presence, key) {
		return forbidden("token does not grant presence of %q", clip(key.String()))
	}
	return nil
}

// CanCount reports whether p may read how many streams are subscribed to
// key: anyone who may subscribe to it (a public pattern or a subscribe
// grant), or see its presence.
func (a *Authenticator) CanCount(p *Principal, key broker.Pattern) *Error {
	if coveredBy(a.public, key) {
		return nil
	}
	if p == nil {
		return unauthorized(ReasonMissing, "a token is required to read the subscribers of %q: send Authorization: Bearer TOKEN or the %s cookie", clip(key.String()), a.cookie)
	}
	if coveredBy(p.Subscribe, key) || coveredBy(p.Presence, key) {
		return nil
	}
	return forbidden("token grants neither subscribe nor presence of %q", clip(key.String()))
}

// canWatch checks a subscription to rumor's own channels: only
// rumor.presence.<pattern>, with a presence grant that covers <pattern>
// (or a public pattern that names rumor.presence itself).
func (a *Authenticator) canWatch(p *Principal, want broker.Pattern) *Error {
	rest, ok := strings.CutPrefix(want.String(), noticePrefix)
	if !ok {
		return forbidden("%q is rumor's own: only %s<channel> may be subscribed to", clip(want.String()), noticePrefix)
	}
	for _, g := range a.public {
		if broker.Reserved(g.String()) && covers(g, want) {
			return nil
		}
	}
	key, err := broker.ParsePattern(rest)
	if err != nil {
		return forbidden("%q: %v", clip(want.String()), err)
	}
	return a.CanSeePresence(p, key)
}
