package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"time"
)

// benchMercureNodes is the configuration of `rumor bench --mercure
// --cluster N`'s nodes: the Mercure face on, a fresh publisher key,
// anonymous subscribers (the bench's streams carry no token), and no
// per-client stream limit. token is a publisher JWT signed with the key
// that may publish every topic.
func benchMercureNodes() (base *Config, token string, err error) {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	key := base64.RawURLEncoding.EncodeToString(raw)
	cfg, err := parseServe([]string{"--mercure", "--mercure-publisher-key", key,
		"--mercure-subscriber-key", key, "--mercure-anonymous"}, func(string) string { return "" })
	if err != nil {
		return nil, "", err
	}
	cfg.DrainTimeout = 5 * time.Second
	cfg.MaxStreamsPerClient = 0
	enc := base64.RawURLEncoding.EncodeToString
	signing := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(`{"mercure":{"publish":["*"]}}`))
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(signing))
	return &cfg, signing + "." + enc(m.Sum(nil)), nil
}
