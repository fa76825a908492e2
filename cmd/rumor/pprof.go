package main

import (
	"net/http"
	"strings"
)

// redactArgs returns args with the values of secret flags replaced, in both
// --flag value and --flag=value forms, with one or two dashes.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i := 0; i < len(out); i++ {
		name, _, hasValue := strings.Cut(strings.TrimLeft(out[i], "-"), "=")
		if !strings.HasPrefix(out[i], "-") || !isSecretFlag(name) {
			continue
		}
		if hasValue {
			out[i] = out[i][:strings.Index(out[i], "=")+1] + "REDACTED"
		} else if i+1 < len(out) {
			i++
			out[i] = "REDACTED"
		}
	}
	return out
}

// isSecretFlag reports whether a flag's value is a secret: never shown by
// /debug/pprof/cmdline (ps shows it still: prefer the -file flags or the
// RUMOR_* variables).
func isSecretFlag(name string) bool {
	switch name {
	case "auth-hmac-secret", "gossip-key":
		return true
	}
	return false
}

// cmdline serves /debug/pprof/cmdline like net/http/pprof.Cmdline, with
// secret flag values redacted.
func cmdline(args []string) http.HandlerFunc {
	body := strings.Join(redactArgs(args), "\x00")
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(body))
	}
}
