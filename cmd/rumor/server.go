package main

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// defaultServer is where the client commands go without --server or
// RUMOR_SERVER: `rumor serve` with its defaults.
const defaultServer = "http://localhost:8080"

// serverFlag is --server, the one name the client commands (publish,
// subscribe, bench) give the nodes they talk to. It may be repeated and
// each value may be a comma-separated list; without it, $RUMOR_SERVER
// (also a list) applies, else defaultServer.
type serverFlag struct {
	list []string
	set  bool // given on the command line: the variable's list is replaced
}

// newServerFlag returns --server with its default from getenv.
func newServerFlag(getenv func(string) string) *serverFlag {
	s := &serverFlag{}
	s.add(cmp.Or(getenv("RUMOR_SERVER"), defaultServer))
	return s
}

func (s *serverFlag) String() string { return strings.Join(s.list, ",") }

// Set implements flag.Value: the first --server replaces the default, the
// next ones add to it.
func (s *serverFlag) Set(v string) error {
	if !s.set {
		s.list, s.set = nil, true
	}
	s.add(v)
	return nil
}

func (s *serverFlag) add(v string) {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			s.list = append(s.list, part)
		}
	}
}

// URLs checks every server and returns them in order.
func (s *serverFlag) URLs() ([]*url.URL, error) {
	if len(s.list) == 0 {
		return nil, fmt.Errorf("--server: want at least one URL like %s", defaultServer)
	}
	var urls []*url.URL
	var errs []error
	for _, v := range s.list {
		u, err := parseServer(v)
		errs = append(errs, err)
		urls = append(urls, u)
	}
	return urls, errors.Join(errs...)
}

// parseServer checks one --server URL.
func parseServer(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want a URL like %s", s, defaultServer)
	}
	return u, nil
}
