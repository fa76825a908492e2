package broker_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rumorhq/rumor/broker"
)

func TestValidateChannel(t *testing.T) {
	good := []string{"orders", "orders.eu", "a.b.c", "user:42", "team@x", "A-Z_0-9", strings.Repeat("a", broker.MaxChannelLen),
		strings.TrimSuffix(strings.Repeat("a.", broker.MaxChannelParts), ".")}
	for _, name := range good {
		if err := broker.ValidateChannel(name); err != nil {
			t.Errorf("ValidateChannel(%q) = %v, want nil", name, err)
		}
	}
	bad := []string{"", ".", "a.", ".a", "a..b", "orders.*", "orders.>", "*", ">", "a*", "a b", "a/b", "ä", "a\n",
		strings.Repeat("a", broker.MaxChannelLen+1),
		strings.TrimSuffix(strings.Repeat("a.", broker.MaxChannelParts+1), ".")}
	for _, name := range bad {
		if err := broker.ValidateChannel(name); !errors.Is(err, broker.ErrBadChannel) {
			t.Errorf("ValidateChannel(%q) = %v, want ErrBadChannel", name, err)
		}
	}
}

func TestValidateType(t *testing.T) {
	for _, typ := range []string{"message", "order.paid", "a:b", "x-y_z", "rumor", "rumorx.y", strings.Repeat("t", broker.MaxTypeLen)} {
		if err := broker.ValidateType(typ); err != nil {
			t.Errorf("ValidateType(%q) = %v, want nil", typ, err)
		}
	}
	for _, typ := range []string{"", "rumor.reset", "rumor.anything", "a b", "a\nb", "a@b", "a*", "é", strings.Repeat("t", broker.MaxTypeLen+1)} {
		if err := broker.ValidateType(typ); !errors.Is(err, broker.ErrBadType) {
			t.Errorf("ValidateType(%q) = %v, want ErrBadType", typ, err)
		}
	}
	if err := broker.ValidateType(broker.ResetType); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("ValidateType(%q) = %v, want the reserved-prefix error", broker.ResetType, err)
	}
}

func TestParsePattern(t *testing.T) {
	for _, s := range []string{"orders", "orders.*", "orders.>", "*.paid", "*", ">", "*.*.>", "a.*.c"} {
		p, err := broker.ParsePattern(s)
		if err != nil {
			t.Errorf("ParsePattern(%q) = %v, want nil", s, err)
			continue
		}
		if p.String() != s {
			t.Errorf("ParsePattern(%q).String() = %q", s, p.String())
		}
		if want := !strings.ContainsAny(s, "*>"); p.Literal() != want {
			t.Errorf("ParsePattern(%q).Literal() = %v, want %v", s, p.Literal(), want)
		}
	}
	for _, s := range []string{"", "orders.>.x", ">.a", "or*", "orders.>x", "a..b", "a.", "a b", "**", ">>", strings.Repeat("a", broker.MaxChannelLen+1)} {
		if _, err := broker.ParsePattern(s); !errors.Is(err, broker.ErrBadPattern) {
			t.Errorf("ParsePattern(%q) = %v, want ErrBadPattern", s, err)
		}
	}
}

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern, channel string
		want             bool
	}{
		{"orders.*", "orders.eu", true},
		{"orders.*", "orders.eu.paid", false},
		{"orders.*", "orders", false},
		{"orders.*", "ordersx.eu", false},
		{"orders.>", "orders.eu", true},
		{"orders.>", "orders.eu.paid", true},
		{"orders.>", "orders", false},
		{"orders.>", "other.eu", false},
		{"*.paid", "orders.paid", true},
		{"*.paid", "orders.eu.paid", false},
		{"*.paid", "paid", false},
		{"*.paid", "orders.unpaid", false},
		{"orders", "orders", true},
		{"orders", "orders.eu", false},
		{"orders", "order", false},
		{"orders.eu", "orders.eu", true},
		{"orders.eu", "orders.us", false},
		{"*", "orders", true},
		{"*", "orders.eu", false},
		{">", "orders", true},
		{">", "orders.eu.paid", true},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.b.d", false},
		{"a.*.c", "a.c", false},
		{"*.*.>", "a.b", false},
		{"*.*.>", "a.b.c", true},
		// rumor's own channels match only patterns that name their first token.
		{">", "rumor.presence.orders", false},
		{"*", "rumor", false},
		{"*.presence.orders", "rumor.presence.orders", false},
		{"rumor.>", "rumor.presence.orders", true},
		{"rumor.presence.*", "rumor.presence.orders", true},
		{"rumor.presence.orders", "rumor.presence.orders", true},
		{"*.paid", "rumors.paid", true},
	}
	for _, tt := range tests {
		p, err := broker.ParsePattern(tt.pattern)
		if err != nil {
			t.Fatalf("ParsePattern(%q) = %v", tt.pattern, err)
		}
		if got := p.Match(tt.channel); got != tt.want {
			t.Errorf("ParsePattern(%q).Match(%q) = %v, want %v", tt.pattern, tt.channel, got, tt.want)
		}
	}
}

func FuzzPattern(f *testing.F) {
	f.Add("orders.*", "orders.eu")
	f.Add("orders.>", "orders.eu.paid")
	f.Add("*.paid", "orders.paid")
	f.Add("orders", "orders")
	f.Add(">", "a")
	f.Add("a.*.>", "a.b")
	f.Fuzz(func(t *testing.T, pattern, channel string) {
		p, err := broker.ParsePattern(pattern)
		if err != nil {
			return
		}
		got := p.Match(channel) // must not panic, valid channel or not
		if broker.ValidateChannel(channel) != nil {
			return
		}
		if p.Literal() {
			if got != (channel == pattern) {
				t.Fatalf("literal %q.Match(%q) = %v", pattern, channel, got)
			}
			return
		}
		// Token by token, the reference semantics; rumor's own channels
		// match only patterns whose first token names them.
		pp, cp := strings.Split(pattern, "."), strings.Split(channel, ".")
		want := len(pp) == len(cp)
		for i, tok := range pp {
			if tok == ">" {
				want = len(cp) > i
				break
			}
			if i >= len(cp) || tok != "*" && tok != cp[i] {
				want = false
				break
			}
		}
		if (pp[0] == "*" || pp[0] == ">") && cp[0] == broker.ReservedToken {
			want = false
		}
		if got != want {
			t.Fatalf("%q.Match(%q) = %v, want %v", pattern, channel, got, want)
		}
		// '>' matches any extension of what its prefix matches.
		if strings.HasSuffix(pattern, ".>") && got {
			if !p.Match(channel + ".x") {
				t.Fatalf("%q.Match(%q) but not %q", pattern, channel, channel+".x")
			}
		}
		if prefix, ok := strings.CutSuffix(pattern, ".>"); ok && !strings.ContainsAny(prefix, "*>") {
			ext := prefix + "." + channel // prefix is literal: ext is reserved only if the pattern names it
			if broker.ValidateChannel(ext) == nil && !p.Match(ext) {
				t.Fatalf("%q.Match(%q) = false, want true", pattern, ext)
			}
			if p.Match(prefix) {
				t.Fatalf("%q.Match(%q) = true: '>' needs at least one token", pattern, prefix)
			}
		}
	})
}
