package mercure

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Form is the form of a token's grants.
type Form uint8

const (
	// Claim is the `mercure` claim: {"publish": [...], "subscribe": [...],
	// "payload": ...}, whose entries are 0.x selector strings or, as the
	// reference hub 1.0 writes them, {"match", "match_type", "payload"}
	// objects.
	Claim Form = iota + 1
	// AccessToken is the 1.0 OAuth access token (RFC 9068): its
	// `authorization_details` (RFC 9396) list `mercure` details of
	// actions and topic matchers.
	AccessToken
)

func (f Form) String() string {
	if f == AccessToken {
		return "1.0"
	}
	return "0.x"
}

// Bounds on what a token's grants may cost.
const (
	MaxGrants  = 256 // selectors in one list (or one detail's topics)
	MaxDetails = 64  // mercure authorization details in one token
)

// ErrBadGrant reports grants that do not parse; the token is refused whole.
var ErrBadGrant = errors.New("invalid mercure grant")

// Grants are what a token allows: topics it may publish to, topics whose
// private updates it may receive, and the payloads its subscriptions show.
type Grants struct {
	Form      Form
	Publish   *Set // nil: publishing is not allowed at all
	Subscribe *Set // nil: no private update

	payload  json.RawMessage // the claim's own payload, for subscriptions no rule covers
	payloads []payloadRule   // per-matcher payloads, first match wins
}

type payloadRule struct {
	set     *Set
	payload json.RawMessage
}

// Payload returns the payload a subscription with the given matcher shows
// in subscription events and the subscriptions API: that of the first rule
// whose selectors match the matcher's text (as if it were a topic), else
// the claim's own payload; nil if none.
func (g *Grants) Payload(matcher string) json.RawMessage {
	if g == nil {
		return nil
	}
	for _, r := range g.payloads {
		if r.set.Match(matcher) {
			return r.payload
		}
	}
	return g.payload
}

// CanPublish reports whether g allows publishing an update on topics: each
// of them must be granted, as the reference hub demands.
func (g *Grants) CanPublish(topics []string) bool {
	return g != nil && g.Publish.MatchAll(topics)
}

// CanReceive reports whether g allows receiving a private update on
// topics: one of them granted is enough.
func (g *Grants) CanReceive(topics []string) bool {
	return g != nil && g.Subscribe.MatchAny(topics)
}

// claimEntry is one entry of a `mercure` claim list: a string, or an object.
type claimEntry struct {
	Match     *string         `json:"match"`
	MatchType *string         `json:"match_type"`
	Type1     *string         `json:"matchType"`
	Payload   json.RawMessage `json:"payload"`
}

// ParseClaim reads a token's `mercure` claim. base is the hub's URL, for
// relative URL patterns; c shares compiled selectors (nil: none).
func ParseClaim(raw json.RawMessage, base string, c *Cache) (*Grants, error) {
	var claim struct {
		Publish   json.RawMessage `json:"publish"`
		Subscribe json.RawMessage `json:"subscribe"`
		Payload   json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(raw, &claim); err != nil {
		return nil, fmt.Errorf("%w: the mercure claim must be an object: %v", ErrBadGrant, err)
	}
	g := &Grants{Form: Claim}
	if !isNull(claim.Payload) {
		g.payload = claim.Payload
	}
	var err error
	if g.Publish, _, err = parseClaimList("publish", claim.Publish, base, c); err != nil {
		return nil, err
	}
	if g.Subscribe, g.payloads, err = parseClaimList("subscribe", claim.Subscribe, base, c); err != nil {
		return nil, err
	}
	return g, nil
}

func parseClaimList(what string, raw json.RawMessage, base string, c *Cache) (*Set, []payloadRule, error) {
	if isNull(raw) {
		return nil, nil, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, nil, fmt.Errorf("%w: mercure.%s must be an array", ErrBadGrant, what)
	}
	if len(list) > MaxGrants {
		return nil, nil, fmt.Errorf("%w: mercure.%s has more than %d entries", ErrBadGrant, what, MaxGrants)
	}
	sels := make([]*Selector, 0, len(list))
	var rules []payloadRule
	for i, item := range list {
		var s string
		if err := json.Unmarshal(item, &s); err == nil {
			sel, err := c.Compile(Template, s, base)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: mercure.%s[%d]: %v", ErrBadGrant, what, i, err)
			}
			sels = append(sels, sel)
			continue
		}
		var e claimEntry
		if err := json.Unmarshal(item, &e); err != nil || e.Match == nil {
			return nil, nil, fmt.Errorf("%w: mercure.%s[%d] must be a string or an object with \"match\"", ErrBadGrant, what, i)
		}
		k := Exact
		switch {
		case e.MatchType != nil && e.Type1 != nil:
			return nil, nil, fmt.Errorf("%w: mercure.%s[%d] has both match_type and matchType", ErrBadGrant, what, i)
		case e.MatchType != nil:
			switch *e.MatchType {
			case "exact":
			case "urlpattern":
				k = URLPattern
			default:
				return nil, nil, fmt.Errorf("%w: mercure.%s[%d]: match_type %q: want exact or urlpattern", ErrBadGrant, what, i, clip(*e.MatchType))
			}
		case e.Type1 != nil:
			var err error
			if k, err = matchType(*e.Type1); err != nil {
				return nil, nil, fmt.Errorf("%w: mercure.%s[%d]: %v", ErrBadGrant, what, i, err)
			}
		}
		sel, err := c.Compile(k, *e.Match, base)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: mercure.%s[%d]: %v", ErrBadGrant, what, i, err)
		}
		sels = append(sels, sel)
		if !isNull(e.Payload) {
			rules = append(rules, payloadRule{set: NewSet([]*Selector{sel}), payload: e.Payload})
		}
	}
	return NewSet(sels), rules, nil
}

// matchType reads a 1.0 matchType value, case-sensitive.
func matchType(s string) (Kind, error) {
	switch s {
	case "Exact":
		return Exact, nil
	case "URLPattern":
		return URLPattern, nil
	}
	return 0, fmt.Errorf("matchType %q: want Exact or URLPattern", clip(s))
}

// ParseAuthorizationDetails reads a 1.0 access token's
// `authorization_details` claim. Details of other types are left alone; a
// `mercure` detail that does not validate refuses the whole token, as the
// specification demands.
func ParseAuthorizationDetails(raw json.RawMessage, base string, c *Cache) (*Grants, error) {
	g := &Grants{Form: AccessToken}
	if isNull(raw) {
		return g, nil
	}
	var details []json.RawMessage
	if err := json.Unmarshal(raw, &details); err != nil {
		return nil, fmt.Errorf("%w: authorization_details must be an array", ErrBadGrant)
	}
	var pub, sub []*Selector
	n := 0
	for i, d := range details {
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(d, &head); err != nil {
			return nil, fmt.Errorf("%w: authorization_details[%d] must be an object with a type", ErrBadGrant, i)
		}
		if head.Type != "mercure" {
			continue
		}
		if n++; n > MaxDetails {
			return nil, fmt.Errorf("%w: more than %d mercure authorization details", ErrBadGrant, MaxDetails)
		}
		var det struct {
			Actions []string          `json:"actions"`
			Topics  []json.RawMessage `json:"topics"`
			Payload json.RawMessage   `json:"payload"`
		}
		if err := json.Unmarshal(d, &det); err != nil {
			return nil, fmt.Errorf("%w: authorization_details[%d]: %v", ErrBadGrant, i, err)
		}
		if len(det.Actions) == 0 {
			return nil, fmt.Errorf("%w: authorization_details[%d]: actions must be a non-empty array", ErrBadGrant, i)
		}
		var publish, subscribe bool
		for _, a := range det.Actions {
			switch a {
			case "publish":
				publish = true
			case "subscribe":
				subscribe = true
			default:
				return nil, fmt.Errorf("%w: authorization_details[%d]: action %q: want publish or subscribe", ErrBadGrant, i, clip(a))
			}
		}
		if len(det.Topics) == 0 || len(det.Topics) > MaxGrants {
			return nil, fmt.Errorf("%w: authorization_details[%d]: topics must hold 1 to %d matchers", ErrBadGrant, i, MaxGrants)
		}
		if !isNull(det.Payload) && (det.Payload[0] != '{') {
			return nil, fmt.Errorf("%w: authorization_details[%d]: payload must be an object", ErrBadGrant, i)
		}
		sels := make([]*Selector, 0, len(det.Topics))
		for j, t := range det.Topics {
			var m struct {
				Match     *string `json:"match"`
				MatchType *string `json:"matchType"`
			}
			if err := json.Unmarshal(t, &m); err != nil || len(t) == 0 || t[0] != '{' || m.Match == nil {
				return nil, fmt.Errorf("%w: authorization_details[%d].topics[%d] must be an object with a match string", ErrBadGrant, i, j)
			}
			k := Exact
			if m.MatchType != nil {
				var err error
				if k, err = matchType(*m.MatchType); err != nil {
					return nil, fmt.Errorf("%w: authorization_details[%d].topics[%d]: %v", ErrBadGrant, i, j, err)
				}
			}
			sel, err := c.Compile(k, *m.Match, base)
			if err != nil {
				return nil, fmt.Errorf("%w: authorization_details[%d].topics[%d]: %v", ErrBadGrant, i, j, err)
			}
			sels = append(sels, sel)
		}
		if publish {
			pub = append(pub, sels...)
		}
		if subscribe {
			sub = append(sub, sels...)
			if !isNull(det.Payload) {
				g.payloads = append(g.payloads, payloadRule{set: NewSet(sels), payload: det.Payload})
			}
		}
	}
	if pub != nil {
		g.Publish = NewSet(pub)
	}
	if sub != nil {
		g.Subscribe = NewSet(sub)
	}
	return g, nil
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}
