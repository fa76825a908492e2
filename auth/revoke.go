package auth

// Revocations: tokens refused before their exp, and streams to end now,
// decided by an admin on any node and held by every node. The table is a
// set of decisions, each with a random id: merging two tables is their
// union, so it does not matter how often, or in which order, a node hears
// of a decision (cmd/rumor spreads the table with the transport's State).
// A decision is held until its Until, then forgotten.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// The kinds of decision.
const (
	RevokeToken   = "token"        // refuse one token, by its jti, and end its streams
	RevokeSubject = "subject"      // refuse every token of a subject issued before At, and end their streams
	KickSubject   = "kick-subject" // end the streams of a subject opened before At; its tokens stay good
	KickChannel   = "kick-channel" // end the streams of a channel pattern opened before At
	maxRevokeText = 256            // bytes in a jti or a subject
	idBytes       = 12             // of a decision's random id
	defaultHold   = 24 * time.Hour // how long a decision is held without Until
	maxHold       = 366 * 24 * time.Hour
)

// DefaultMaxRevocations bounds the table unless RevocationOptions.Max says
// otherwise: every node holds it whole and sends it on every push/pull.
const DefaultMaxRevocations = 10000

// ErrFull is returned by Add when the table holds its maximum.
var ErrFull = errors.New("revocation table full")

// Revocation is one decision.
type Revocation struct {
	ID      string    `json:"id"`                // random; names the decision on every node
	Kind    string    `json:"kind"`              // RevokeToken, RevokeSubject, KickSubject or KickChannel
	JTI     string    `json:"jti,omitempty"`     // RevokeToken
	Subject string    `json:"subject,omitempty"` // RevokeSubject, KickSubject
	Channel string    `json:"channel,omitempty"` // KickChannel: a pattern
	At      time.Time `json:"at"`                // when it was decided; RevokeSubject: tokens with an iat before it, in whole seconds
	Until   time.Time `json:"until"`             // held until then
	Node    string    `json:"node,omitempty"`    // the node that took it
}

// NewRevocation fills in a decision's id, its time (at, or now) and how
// long it is held (until, or 24 hours), and checks it.
func NewRevocation(v Revocation, now time.Time) (Revocation, error) {
	var b [idBytes]byte
	rand.Read(b[:])
	v.ID = hex.EncodeToString(b[:])
	if v.At.IsZero() {
		v.At = now
	}
	if v.Until.IsZero() {
		v.Until = now.Add(defaultHold)
	}
	return v, v.check(now)
}

// check says what is wrong with a decision.
func (v Revocation) check(now time.Time) error {
	var errs []error
	if len(v.ID) != 2*idBytes {
		errs = append(errs, errors.New("id: want 24 hex digits"))
	}
	need := func(field, value string) {
		switch {
		case value == "":
			errs = append(errs, fmt.Errorf("%s: required for kind %s", field, v.Kind))
		case len(value) > maxRevokeText:
			errs = append(errs, fmt.Errorf("%s: longer than %d bytes", field, maxRevokeText))
		}
	}
	switch v.Kind {
	case RevokeToken:
		need("jti", v.JTI)
	case RevokeSubject, KickSubject:
		need("subject", v.Subject)
	case KickChannel:
		if _, err := broker.ParsePattern(v.Channel); err != nil {
			errs = append(errs, fmt.Errorf("channel: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("kind %q: want %s, %s, %s or %s", clip(v.Kind), RevokeToken, RevokeSubject, KickSubject, KickChannel))
	}
	if v.At.IsZero() || v.Until.IsZero() {
		errs = append(errs, errors.New("at and until are required"))
	}
	if !v.Until.After(v.At) {
		errs = append(errs, errors.New("until must be after at"))
	}
	if v.Until.After(now.Add(maxHold)) {
		errs = append(errs, fmt.Errorf("until: more than %v from now", maxHold))
	}
	return errors.Join(errs...)
}

// Refuses reports whether v refuses the token p: a RevokeToken of its jti,
// or a RevokeSubject of its subject issued before v.At (a token without
// iat counts as issued before).
func (v Revocation) Refuses(p *Principal) bool {
	if p == nil {
		return false
	}
	switch v.Kind {
	case RevokeToken:
		return p.ID != "" && p.ID == v.JTI
	case RevokeSubject:
		return p.Subject == v.Subject && (p.IssuedAt.IsZero() || p.IssuedAt.Unix() < v.At.Unix())
	}
	return false
}

// Ends reports whether v ends a stream of the token p (nil without one)
// and patterns, opened at opened: a revocation refusing p, or a kick of
// its subject or of a pattern that shares a channel with one of its
// patterns, for a stream opened before v.At plus skew (the clock skew
// between the node that decided and this one).
func (v Revocation) Ends(p *Principal, patterns []broker.Pattern, opened time.Time, skew time.Duration) bool {
	if v.Refuses(p) {
		return true
	}
	if !opened.Before(v.At.Add(skew)) {
		return false
	}
	switch v.Kind {
	case KickSubject:
		return p != nil && p.Subject == v.Subject
	case KickChannel:
		k, err := broker.ParsePattern(v.Channel)
		if err != nil {
			return false
		}
		return slices.ContainsFunc(patterns, func(s broker.Pattern) bool { return overlaps(k, s) })
	}
	return false
}

// Kicks reports whether v is a kick rather than a revocation.
func (v Revocation) Kicks() bool { return v.Kind == KickSubject || v.Kind == KickChannel }

// RevocationOptions configures a Revocations table.
type RevocationOptions struct {
	Max int              // decisions held; 0 means DefaultMaxRevocations
	Now func() time.Time // nil means time.Now
}

// Revocations is the table of decisions this node holds. It is safe for
// concurrent use. Snapshot and Merge make it a transport.State.
type Revocations struct {
	max int
	now func() time.Time

	mu       sync.Mutex
	held     map[string]Revocation
	watchers map[int]func([]Revocation)
	next     int
}

// NewRevocations returns an empty table.
func NewRevocations(o RevocationOptions) *Revocations {
	r := &Revocations{max: o.Max, now: o.Now, held: make(map[string]Revocation), watchers: make(map[int]func([]Revocation))}
	if r.max <= 0 {
		r.max = DefaultMaxRevocations
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Add holds decisions the table does not have yet and tells the watchers
// about them. It returns those it added; decisions that are invalid or
// past their Until are skipped (and counted in the error), and ErrFull
// stops it once the table is full.
func (r *Revocations) Add(vs ...Revocation) ([]Revocation, error) {
	now := r.now()
	var added []Revocation
	var errs []error
	r.mu.Lock()
	r.prune(now)
	for _, v := range vs {
		if _, ok := r.held[v.ID]; ok {
			continue
		}
		if err := v.check(now.Add(-maxHold / 2)); err != nil { // a peer's clock may run ahead
			errs = append(errs, fmt.Errorf("revocation %q: %w", clip(v.ID), err))
			continue
		}
		if !v.Until.After(now) {
			continue
		}
		if len(r.held) >= r.max {
			errs = append(errs, fmt.Errorf("%w: %d decisions held", ErrFull, r.max))
			break
		}
		r.held[v.ID] = v
		added = append(added, v)
	}
	watchers := make([]func([]Revocation), 0, len(r.watchers))
	for _, f := range r.watchers {
		watchers = append(watchers, f)
	}
	r.mu.Unlock()
	if len(added) > 0 {
		for _, f := range watchers {
			f(added)
		}
	}
	return added, errors.Join(errs...)
}

// prune forgets decisions past their Until. mu is held.
func (r *Revocations) prune(now time.Time) {
	for id, v := range r.held {
		if !v.Until.After(now) {
			delete(r.held, id)
		}
	}
}

// List returns the decisions held, oldest first.
func (r *Revocations) List() []Revocation {
	r.mu.Lock()
	r.prune(r.now())
	out := make([]Revocation, 0, len(r.held))
	for _, v := range r.held {
		out = append(out, v)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Revocation) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return cmpString(a.ID, b.ID)
	})
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Len returns how many decisions are held, by kind.
func (r *Revocations) Len() map[string]int {
	out := map[string]int{RevokeToken: 0, RevokeSubject: 0, KickSubject: 0, KickChannel: 0}
	for _, v := range r.List() {
		out[v.Kind]++
	}
	return out
}

// Check refuses p if a decision revokes it: 401 with ReasonRevoked.
func (r *Revocations) Check(p *Principal) *Error {
	if r == nil || p == nil {
		return nil
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range r.held {
		if v.Until.After(now) && v.Refuses(p) {
			return &Error{Status: http.StatusUnauthorized, Reason: ReasonRevoked, Msg: "token revoked"}
		}
	}
	return nil
}

// Watch calls f with the decisions each Add takes, from the goroutine that
// calls Add, until stop is called. f must not block: it ends streams by
// signalling them.
func (r *Revocations) Watch(f func(added []Revocation)) (stop func()) {
	r.mu.Lock()
	id := r.next
	r.next++
	r.watchers[id] = f
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(r.watchers, id)
		r.mu.Unlock()
	}
}

// table is the wire form of a snapshot or a change.
type table struct {
	Revocations []Revocation `json:"revocations"`
}

// Snapshot encodes every decision held.
func (r *Revocations) Snapshot() []byte { return Encode(r.List()...) }

// Encode encodes decisions as Snapshot does, for a change to spread.
func Encode(vs ...Revocation) []byte {
	b, _ := json.Marshal(table{Revocations: vs})
	return b
}

// Merge adds the decisions of a peer's Snapshot or change.
func (r *Revocations) Merge(b []byte) error {
	var t table
	if err := json.Unmarshal(b, &t); err != nil {
		return fmt.Errorf("revocations: %w", err)
	}
	_, err := r.Add(t.Revocations...)
	return err
}
