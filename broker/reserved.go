package broker

import "strings"

// ReservedToken is the first token of rumor's own channels (presence's
// rumor.presence.<channel> and rumor.census): publishers may not publish
// to them, and a pattern whose first token is a wildcard does not match
// them, so that a stream of ">" never carries them. A pattern that names
// the token ("rumor.presence.>") does.
const ReservedToken = "rumor"

// Reserved reports whether channel is one of rumor's own: its first token
// is ReservedToken.
func Reserved(channel string) bool {
	return channel == ReservedToken || strings.HasPrefix(channel, ReservedToken+".")
}
