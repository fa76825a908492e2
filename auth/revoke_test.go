package auth

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rumorhq/rumor/broker"
)

func TestOverlaps(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"orders", "orders", true},
		{"orders", "news", false},
		{"orders.>", "orders.eu", true},
		{"orders.>", "orders", false},
		{"orders.*", "orders.eu.paid", false},
		{"orders.*", "*.eu", true},
		{">", "a.b.c", true},
		{"a.*.c", "a.b.>", true},
		{"a.*.c", "a.b.d", false},
		{"*.*", "a", false},
		{"orders.eu.>", "orders.*", false},
		{"orders.eu.>", "orders.*.x", true},
	} {
		if got := overlaps(pattern(t, tt.a), pattern(t, tt.b)); got != tt.want {
			t.Errorf("overlaps(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := overlaps(pattern(t, tt.b), pattern(t, tt.a)); got != tt.want {
			t.Errorf("overlaps(%s, %s) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}

// FuzzOverlaps checks overlaps against channels: a channel both patterns
// match means they overlap.
func FuzzOverlaps(f *testing.F) {
	f.Add("orders.*", "*.eu", "orders.eu")
	f.Add("a.>", "a.b.*", "a.b.c")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		pa, err1 := broker.ParsePattern(a)
		pb, err2 := broker.ParsePattern(b)
		if err1 != nil || err2 != nil || broker.ValidateChannel(c) != nil {
			return
		}
		if pa.Match(c) && pb.Match(c) && !overlaps(pa, pb) {
			t.Errorf("%q and %q both match %q, but overlaps = false", a, b, c)
		}
	})
}

func newRevocation(tb testing.TB, v Revocation) Revocation {
	tb.Helper()
	v, err := NewRevocation(v, time.Now())
	if err != nil {
		tb.Fatalf("NewRevocation(%+v): %v", v, err)
	}
	return v
}

func TestRevocationCovers(t *testing.T) {
	now := time.Now()
	alice := &Principal{Subject: "alice", ID: "t1", IssuedAt: now.Add(-time.Hour)}
	fresh := &Principal{Subject: "alice", ID: "t2", IssuedAt: now.Add(time.Minute)}
	noIat := &Principal{Subject: "alice"}
	bob := &Principal{Subject: "bob", ID: "t3", IssuedAt: now.Add(-time.Hour)}
	orders := []broker.Pattern{pattern(t, "orders.*")}
	news := []broker.Pattern{pattern(t, "news")}
	before, after := now.Add(-time.Minute), now.Add(time.Minute)

	jti := newRevocation(t, Revocation{Kind: RevokeToken, JTI: "t1"})
	sub := newRevocation(t, Revocation{Kind: RevokeSubject, Subject: "alice", At: now})
	kickSub := newRevocation(t, Revocation{Kind: KickSubject, Subject: "alice", At: now})
	kickCh := newRevocation(t, Revocation{Kind: KickChannel, Channel: "orders.>", At: now})
	for _, tt := range []struct {
		name    string
		v       Revocation
		p       *Principal
		pats    []broker.Pattern
		opened  time.Time
		refuses bool
		ends    bool
	}{
		{"jti: its token", jti, alice, orders, after, true, true},
		{"jti: another token of the subject", jti, fresh, orders, before, false, false},
		{"jti: no token", jti, nil, orders, before, false, false},
		{"subject: issued before", sub, alice, orders, after, true, true},
		{"subject: issued after", sub, fresh, orders, before, false, false},
		{"subject: no iat", sub, noIat, orders, after, true, true},
		{"subject: another subject", sub, bob, orders, before, false, false},
		{"kick subject: opened before", kickSub, fresh, news, before, false, true},
		{"kick subject: opened after", kickSub, fresh, news, after.Add(time.Hour), false, false},
		{"kick subject: another subject", kickSub, bob, news, before, false, false},
		{"kick channel: overlapping stream", kickCh, nil, orders, before, false, true},
		{"kick channel: other channels", kickCh, bob, news, before, false, false},
		{"kick channel: opened after", kickCh, nil, orders, after.Add(time.Hour), false, false},
	} {
		if got := tt.v.Refuses(tt.p); got != tt.refuses {
			t.Errorf("%s: Refuses = %v, want %v", tt.name, got, tt.refuses)
		}
		if got := tt.v.Ends(tt.p, tt.pats, tt.opened, 5*time.Second); got != tt.ends {
			t.Errorf("%s: Ends = %v, want %v", tt.name, got, tt.ends)
		}
	}
}

func TestNewRevocationErrors(t *testing.T) {
	for _, tt := range []struct {
		v    Revocation
		want string
	}{
		{Revocation{Kind: "ban"}, `kind "ban"`},
		{Revocation{Kind: RevokeToken}, "jti: required"},
		{Revocation{Kind: RevokeSubject, Subject: strings.Repeat("x", 300)}, "longer than 256"},
		{Revocation{Kind: KickChannel, Channel: "a..b"}, "channel"},
		{Revocation{Kind: RevokeToken, JTI: "x", Until: time.Now().Add(-time.Hour)}, "until must be after at"},
		{Revocation{Kind: RevokeToken, JTI: "x", Until: time.Now().Add(1000 * 24 * time.Hour)}, "more than"},
	} {
		if _, err := NewRevocation(tt.v, time.Now()); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewRevocation(%+v) = %v, want an error containing %q", tt.v, err, tt.want)
		}
	}
}

// A table merges peers' tables and changes as a set union, whatever the
// order and however often; tells its watchers about each decision once;
// forgets decisions past their Until; refuses to grow past its maximum;
// and refuses garbage without changing.
func TestRevocationsMerge(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	a := NewRevocations(RevocationOptions{Now: clock, Max: 3})
	b := NewRevocations(RevocationOptions{Now: clock, Max: 3})
	var told []string
	stop := a.Watch(func(vs []Revocation) {
		for _, v := range vs {
			told = append(told, v.ID)
		}
	})
	defer stop()
	v1 := newRevocation(t, Revocation{Kind: RevokeToken, JTI: "t1"})
	v2 := newRevocation(t, Revocation{Kind: KickSubject, Subject: "bob", Until: now.Add(time.Minute)})
	if _, err := b.Add(v1, v2); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := a.Merge(b.Snapshot()); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Merge(Encode(v1)); err != nil {
		t.Fatal(err)
	}
	if len(told) != 2 || len(a.List()) != 2 {
		t.Errorf("watcher told %v, table %v: want each of the 2 decisions once", told, a.List())
	}
	if err := a.Merge([]byte("{nonsense")); err == nil {
		t.Error("Merge(garbage) = nil error")
	}
	bad := v1
	bad.ID, bad.Kind = "0123456789abcdef01234567", "ban"
	if err := a.Merge(Encode(bad)); err == nil || len(a.List()) != 2 {
		t.Errorf("Merge(a bad decision) = %v with %d held, want an error and 2", err, len(a.List()))
	}
	v3 := newRevocation(t, Revocation{Kind: RevokeToken, JTI: "t3"})
	v4 := newRevocation(t, Revocation{Kind: RevokeToken, JTI: "t4"})
	if _, err := a.Add(v3, v4); !errors.Is(err, ErrFull) || len(a.List()) != 3 {
		t.Errorf("Add past the maximum = %v with %d held, want ErrFull and 3", err, len(a.List()))
	}
	now = now.Add(2 * time.Minute) // v2 is past its Until
	if got := a.Len(); got[KickSubject] != 0 || got[RevokeToken] != 2 {
		t.Errorf("Len after v2's Until = %v, want 2 tokens and no kick", got)
	}
}

// Verify refuses a revoked token with 401 and reason revoked; a new token
// of the subject issued after a subject revocation is good.
func TestVerifyRevoked(t *testing.T) {
	revs := NewRevocations(RevocationOptions{})
	a := newAuth(t, Config{HMACSecret: []byte(testSecret), Revocations: revs})
	tok := func(jti string, iat time.Time) string {
		c := claims(nil, []string{"a"}, time.Hour)
		c["jti"], c["iat"] = jti, iat.Unix()
		return hs256(t, c)
	}
	old, other := tok("t1", time.Now().Add(-time.Hour)), tok("t2", time.Now().Add(-time.Hour))
	if _, err := revs.Add(newRevocation(t, Revocation{Kind: RevokeToken, JTI: "t1"})); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(old); err == nil || err.Status != http.StatusUnauthorized || err.Reason != ReasonRevoked {
		t.Errorf("Verify(revoked jti) = %v, want 401 revoked", err)
	}
	if _, err := a.Verify(other); err != nil {
		t.Errorf("Verify(another jti) = %v", err)
	}
	if _, err := revs.Add(newRevocation(t, Revocation{Kind: RevokeSubject, Subject: "tester"})); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(other); err == nil || err.Reason != ReasonRevoked {
		t.Errorf("Verify(token of a revoked subject) = %v, want revoked", err)
	}
	if _, err := a.Verify(tok("t3", time.Now().Add(2*time.Second))); err != nil {
		t.Errorf("Verify(token issued after the subject's revocation) = %v", err)
	}
}
