package auth

// Grants: what a token lets its holder publish and subscribe to, and
// whether one channel pattern covers another.

import (
	"fmt"
	"strings"

	"github.com/rumorhq/rumor/broker"
)

// Grants is the "rumor" claim of a token: channel patterns it may publish
// to and subscribe to.
type Grants struct {
	Publish   []string `json:"publish,omitempty"`
	Subscribe []string `json:"subscribe,omitempty"`
	Admin     bool     `json:"admin,omitempty"`    // the admin API: revocations and kicks
	Presence  []string `json:"presence,omitempty"` // channel patterns whose subscribers' subjects it may see (presence.go)
}

// parseGrants parses a grant list; a token whose issuer wrote an invalid
// pattern is refused rather than half understood.
func parseGrants(what string, list []string) ([]broker.Pattern, error) {
	if len(list) > maxGrants {
		return nil, fmt.Errorf("rumor.%s: more than %d patterns", what, maxGrants)
	}
	out := make([]broker.Pattern, 0, len(list))
	for i, s := range list {
		p, err := broker.ParsePattern(s)
		if err != nil {
			return nil, fmt.Errorf("rumor.%s[%d]: %w", what, i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// CanPublish reports whether p may publish to channel: a publish grant must
// match it. A nil p (no token) may not publish at all.
func (a *Authenticator) CanPublish(p *Principal, channel string) *Error {
	if p == nil {
		return unauthorized(ReasonMissing, "a token is required to publish: send Authorization: Bearer TOKEN")
	}
	for _, g := range p.Publish {
		if g.Match(channel) {
			return nil
		}
	}
	return forbidden("token does not grant publish to %q", clip(channel))
}

// CanSubscribe reports whether p may subscribe to every pattern: each must
// be covered by a public pattern or by one of p's subscribe grants. A nil p
// (no token) gets 401 for a pattern no public pattern covers, so that the
// client knows to send one.
func (a *Authenticator) CanSubscribe(p *Principal, patterns []broker.Pattern) *Error {
	for _, want := range patterns {
		if broker.Reserved(want.String()) {
			if err := a.canWatch(p, want); err != nil {
				return err
			}
			continue
		}
		if coveredBy(a.public, want) {
			continue
		}
		if p == nil {
			return unauthorized(ReasonMissing, "a token is required to subscribe to %q: send Authorization: Bearer TOKEN or the %s cookie", clip(want.String()), a.cookie)
		}
		if !coveredBy(p.Subscribe, want) {
			return forbidden("token does not grant subscribe to %q", clip(want.String()))
		}
	}
	return nil
}

func coveredBy(grants []broker.Pattern, want broker.Pattern) bool {
	for _, g := range grants {
		if covers(g, want) {
			return true
		}
	}
	return false
}

// covers reports whether every channel that requested matches is also
// matched by grant: "orders.>" covers "orders.*", "orders.eu.>" and
// "orders.eu"; "orders.*" covers "orders.eu" but not "orders.>" (which
// matches "orders.eu.paid") nor "*.eu". Only whole-pattern containment by
// one grant counts: two grants that together cover a pattern do not.
func covers(grant, requested broker.Pattern) bool {
	g := strings.Split(grant.String(), ".")
	r := strings.Split(requested.String(), ".")
	for i, gt := range g {
		if gt == ">" {
			// One or more tokens, whatever they are: r has at least one
			// token left (a literal, '*' or '>', each matching one or more).
			return i < len(r)
		}
		if i >= len(r) {
			return false // r's channels are shorter than any grant matches
		}
		switch rt := r[i]; {
		case rt == ">":
			return false // r matches channels of this length and longer; g (no '>' here) does not match both
		case gt == "*":
			// any token r allows here is fine
		case rt == "*" || rt != gt:
			return false
		}
	}
	return len(r) == len(g)
}

// overlaps reports whether some channel matches both a and b.
func overlaps(a, b broker.Pattern) bool {
	return overlapTokens(strings.Split(a.String(), "."), strings.Split(b.String(), "."))
}

func overlapTokens(a, b []string) bool {
	switch {
	case len(a) == 0 || len(b) == 0:
		return len(a) == len(b)
	case a[0] == ">" || b[0] == ">":
		// '>' is last and matches one token or more; the other side
		// has a token here, and whatever follows it matches something.
		return true
	case a[0] == "*" || b[0] == "*" || a[0] == b[0]:
		return overlapTokens(a[1:], b[1:])
	default:
		return false
	}
}
