package broker

import (
	"errors"
	"fmt"
	"strings"
)

// Limits on names; they keep hostile input small and unambiguous.
const (
	MaxChannelLen   = 200 // bytes in a channel name or pattern
	MaxChannelParts = 16  // dot-separated tokens
	MaxTypeLen      = 64  // bytes in an event type
)

// Errors for bad names, compared with errors.Is.
var (
	ErrBadChannel = errors.New("invalid channel")
	ErrBadPattern = errors.New("invalid channel pattern")
	ErrBadType    = errors.New("invalid event type")
)

// ResetType is the event type rumor sends when a resume position is no
// longer retained: the client missed events and should refetch its state.
// Publishers cannot use types starting with "rumor.".
const ResetType = "rumor.reset"

// ValidateChannel checks a channel name: dot-separated tokens of ASCII
// letters, digits, '_', '-', ':' and '@', no wildcard.
func ValidateChannel(name string) error {
	if err := validateName(name, false); err != nil {
		return fmt.Errorf("%w %q: %s", ErrBadChannel, clip(name), err)
	}
	return nil
}

func validateName(name string, pattern bool) error {
	if name == "" {
		return errors.New("empty")
	}
	if len(name) > MaxChannelLen {
		return fmt.Errorf("longer than %d bytes", MaxChannelLen)
	}
	parts := strings.Split(name, ".")
	if len(parts) > MaxChannelParts {
		return fmt.Errorf("more than %d tokens", MaxChannelParts)
	}
	for i, p := range parts {
		if p == "" {
			return errors.New("empty token")
		}
		if pattern && p == "*" {
			continue
		}
		if pattern && p == ">" {
			if i != len(parts)-1 {
				return errors.New("'>' must be the last token")
			}
			continue
		}
		for j := 0; j < len(p); j++ {
			if !nameByte(p[j]) {
				if p[j] == '*' || p[j] == '>' {
					if pattern {
						return errors.New("a wildcard must be a whole token")
					}
					return errors.New("wildcards are only allowed in subscriptions")
				}
				return fmt.Errorf("byte %q not allowed", p[j])
			}
		}
	}
	return nil
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == ':' || c == '@'
}

// ValidateType checks an event type: 1 to 64 bytes of letters, digits and
// "._:-", not starting with the reserved "rumor.".
func ValidateType(t string) error {
	if t == "" || len(t) > MaxTypeLen {
		return fmt.Errorf("%w %q: must be 1 to %d bytes", ErrBadType, clip(t), MaxTypeLen)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(nameByte(c) || c == '.') || c == '@' {
			return fmt.Errorf("%w %q: byte %q not allowed", ErrBadType, clip(t), c)
		}
	}
	if strings.HasPrefix(t, "rumor.") {
		return fmt.Errorf("%w %q: the rumor. prefix is reserved", ErrBadType, t)
	}
	return nil
}

// SystemPrefix starts the names of system channels: channels that rumor's
// own faces use (the Mercure face keeps its updates in "$mercure"). No
// client can name one: ValidateChannel and ParsePattern refuse the "$",
// and wildcard patterns never match a system channel, so a stream on ">"
// sees none of their events. Publish accepts them, and a face subscribes
// with SystemPattern.
const SystemPrefix = "$"

// IsSystem reports whether name is a system channel's.
func IsSystem(name string) bool { return strings.HasPrefix(name, SystemPrefix) }

// ValidateEventChannel checks the channel of an event: a channel name, or
// a system channel's ("$" and a channel name). Faces check what clients
// send with ValidateChannel.
func ValidateEventChannel(name string) error {
	if IsSystem(name) {
		if err := validateName(name[len(SystemPrefix):], false); err != nil {
			return fmt.Errorf("%w %q: %s", ErrBadChannel, clip(name), err)
		}
		return nil
	}
	return ValidateChannel(name)
}

// SystemPattern returns the pattern of the system channel "$" + name,
// which ParsePattern refuses.
func SystemPattern(name string) (Pattern, error) {
	if err := validateName(name, false); err != nil {
		return Pattern{}, fmt.Errorf("%w %q: %s", ErrBadPattern, clip(name), err)
	}
	full := SystemPrefix + name
	return Pattern{text: full, parts: strings.Split(full, ".")}, nil
}

// Pattern matches channel names. "*" matches exactly one token and ">" (last
// only) one or more tokens: "orders.*" matches "orders.eu" but not
// "orders.eu.paid"; "orders.>" matches both but not "orders".
// A pattern without wildcards matches only itself. Wildcards never match a
// system channel (see SystemPrefix).
type Pattern struct {
	text  string
	parts []string
}

// ParsePattern parses a subscription: a channel name or a pattern.
func ParsePattern(s string) (Pattern, error) {
	if err := validateName(s, true); err != nil {
		return Pattern{}, fmt.Errorf("%w %q: %s", ErrBadPattern, clip(s), err)
	}
	return Pattern{text: s, parts: strings.Split(s, ".")}, nil
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.text }

// Literal reports whether the pattern has no wildcard and so names one channel.
func (p Pattern) Literal() bool { return !strings.ContainsAny(p.text, "*>") }

// Match reports whether channel matches the pattern.
func (p Pattern) Match(channel string) bool {
	if p.Literal() {
		return channel == p.text
	}
	if IsSystem(channel) {
		return false
	}
	if (p.parts[0] == "*" || p.parts[0] == ">") && Reserved(channel) {
		return false // rumor's own channels match only patterns that name them
	}
	for i, want := range p.parts {
		if want == ">" {
			return channel != ""
		}
		tok, rest, found := strings.Cut(channel, ".")
		if want != "*" && want != tok {
			return false
		}
		if i == len(p.parts)-1 {
			return !found
		}
		if !found {
			return false
		}
		channel = rest
	}
	return false
}
