package bench

// The Mercure face: with Config.Mercure, subscribers stream
// GET /.well-known/mercure?topic=NAME and publishers POST the form
// topic=NAME&data=PAYLOAD to /.well-known/mercure, so that the same
// workload runs through both faces of a rumor node (issue #12). The
// channel names are the topics: exact matches, the cheapest selector.

import (
	"net/url"
	"strings"
)

// mercurePath is the request target of a topic's Mercure stream under base.
func mercurePath(base, topic string) string {
	u, _ := url.Parse(base) // Validate parsed it
	return strings.TrimSuffix(u.EscapedPath(), "/") + "/.well-known/mercure?topic=" + url.QueryEscape(topic)
}

// mercureHub is the URL publishers post updates to.
func mercureHub(base string) string {
	return strings.TrimSuffix(base, "/") + "/.well-known/mercure"
}

// appendMercureForm appends the publish form of one update: its topic and
// its data, form-encoded.
func appendMercureForm(dst []byte, topic string, data []byte) []byte {
	dst = append(dst, "topic="...)
	dst = appendQueryEscaped(dst, topic)
	dst = append(dst, "&data="...)
	return appendQueryEscaped(dst, string(data))
}

// appendQueryEscaped is url.QueryEscape without the allocation: payloads
// are mostly letters, digits and spaces.
func appendQueryEscaped(dst []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			dst = append(dst, c)
		case c == ' ':
			dst = append(dst, '+')
		default:
			dst = append(dst, '%', hex[c>>4], hex[c&15])
		}
	}
	return dst
}
