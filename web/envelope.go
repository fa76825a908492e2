package web

// Which channel an event came from, on a stream of several channels and
// patterns: the opt-in envelope. docs/API.md, "Which channel", is the
// user's guide.

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// maxStreamLast bounds ?last= on a stream: more than any history holds per
// channel by default, few enough to replay in one go.
const maxStreamLast = 10000

// streamOptions reads what a stream asks besides its channels: ?envelope=
// (json wraps every event's data in {"id","channel","type","data"}; none,
// the default, sends data as published), and where a stream that does not
// resume starts: ?last=N (the last N retained events) or ?since= (the
// events published since a duration ago or a time: parseSince).
func streamOptions(r *http.Request, now time.Time) (envelope bool, last int, since broker.Position, err error) {
	q := r.URL.Query()
	if envelope, err = parseEnvelope(q); err != nil {
		return false, 0, broker.Position{}, err
	}
	if last, err = parseCount(q, "last", 0, maxStreamLast); err != nil {
		return false, 0, broker.Position{}, err
	}
	if vs, ok := q["since"]; ok {
		switch {
		case last > 0:
			return false, 0, broker.Position{}, errors.New("last and since: give one")
		case len(vs) > 1:
			return false, 0, broker.Position{}, errors.New("since: give it once")
		}
		if since, err = parseSince(vs[0], now); err != nil {
			return false, 0, broker.Position{}, err
		}
	}
	return envelope, last, since, nil
}

// parseEnvelope reads ?envelope=: json or none (also absent).
func parseEnvelope(q url.Values) (bool, error) {
	vs, ok := q["envelope"]
	if !ok {
		return false, nil
	}
	if len(vs) > 1 {
		return false, errors.New("envelope: give it once")
	}
	switch vs[0] {
	case "json":
		return true, nil
	case "none", "":
		return false, nil
	}
	return false, fmt.Errorf("envelope %q: want json or none", clip(vs[0]))
}

// parseCount reads the query parameter name as a count from 1 to most;
// absent, it is def.
func parseCount(q url.Values, name string, def, most int) (int, error) {
	vs, ok := q[name]
	if !ok {
		return def, nil
	}
	if len(vs) > 1 {
		return 0, fmt.Errorf("%s: give it once", name)
	}
	v := vs[0]
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most || len(v) > 1 && v[0] == '0' || v[0] == '+' {
		return 0, fmt.Errorf("%s %q: want a whole number from 1 to %d", name, clip(v), most)
	}
	return n, nil
}
