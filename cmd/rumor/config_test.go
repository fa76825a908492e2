package main

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseServeDefaults(t *testing.T) {
	c, err := parseServe(nil, env(nil))
	if err != nil {
		t.Fatalf("parseServe(nil) error: %v", err)
	}
	host, _ := os.Hostname()
	want := Config{
		HTTPAddr:       ":8080",
		NodeName:       host,
		RejoinInterval: 30 * time.Second,
		JoinTimeout:    10 * time.Second,
		HistorySize:    1000,
		HistoryTTL:     5 * time.Minute,
		HistoryBytes:   256 << 20,
		Heartbeat:      15 * time.Second,
		Presence:       true,
		PresenceGrace:  5 * time.Second,
		Coalesce:       time.Millisecond,
		MaxEventBytes:  1 << 20,
		MaxStreams:     20000,
		MaxPatterns:    64,
		MaxBatch:       1000,
		MaxPublishes:   4096,
		QueueSize:      8192,
		QueueBytes:     8 << 20,
		MaxStrangers:   32,
		StrangerBytes:  1 << 20,
		Ack:            "peer",
		DrainTimeout:   10 * time.Second,
		LogFormat:      "text",
		LogLevel:       "info",
	}
	if host == "" {
		want.NodeName = "rumor"
	}
	want.SecurityConfig = c.SecurityConfig // security_test.go checks those
	want.MercureConfig = c.MercureConfig   // mercure_test.go checks those
	if !reflect.DeepEqual(c, want) {
		t.Errorf("parseServe(nil) =\n%+v\nwant\n%+v", c, want)
	}
}

// Every flag, present and future: a flag beats its variable, a variable
// beats the default, and an empty variable counts as unset.
func TestResolvePrecedence(t *testing.T) {
	opts := serveOptions(env(nil))
	for _, o := range opts {
		flagArg := "--" + o.name + "=from-flag"
		vars := map[string]string{envName(o.name): "from-env"}
		for _, tt := range []struct {
			args []string
			vars map[string]string
			want setting
		}{
			{[]string{flagArg}, vars, setting{"from-flag", "--" + o.name}},
			{nil, vars, setting{"from-env", envName(o.name)}},
			{nil, map[string]string{envName(o.name): ""}, setting{o.def, ""}},
			{nil, nil, setting{o.def, ""}},
		} {
			got, err := resolve(flag.NewFlagSet("test", flag.ContinueOnError), opts, tt.args, env(tt.vars))
			if err != nil {
				t.Fatalf("resolve(%q, %v): %v", tt.args, tt.vars, err)
			}
			if got[o.name] != tt.want {
				t.Errorf("resolve(%q, %v)[%s] = %+v, want %+v", tt.args, tt.vars, o.name, got[o.name], tt.want)
			}
		}
	}
	if _, err := resolve(flag.NewFlagSet("test", flag.ContinueOnError), opts, []string{"--no-such-flag"}, env(nil)); err == nil {
		t.Error("resolve(--no-such-flag) = nil error")
	}
}

// The typed values of rumor's own flags, from a flag and from a variable.
func TestParseServePrecedence(t *testing.T) {
	keyA := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 16))
	keyB := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	tests := []struct {
		flag              string
		flagVal, envVal   string
		get               func(Config) any
		wantFlag, wantEnv any
	}{
		{"http-addr", "127.0.0.1:1", "127.0.0.1:2", func(c Config) any { return c.HTTPAddr }, "127.0.0.1:1", "127.0.0.1:2"},
		{"node-name", "a", "b", func(c Config) any { return c.NodeName }, "a", "b"},
		{"gossip-addr", "127.0.0.1:7001", "127.0.0.1:7002", func(c Config) any { return c.GossipAddr }, "127.0.0.1:7001", "127.0.0.1:7002"},
		{"advertise-addr", "10.0.0.1", "10.0.0.2", func(c Config) any { return c.AdvertiseAddr }, "10.0.0.1", "10.0.0.2"},
		{"join", "a:1,b:2", "c:3", func(c Config) any { return strings.Join(c.Join, "|") }, "a:1|b:2", "c:3"},
		{"rejoin-interval", "7s", "9s", func(c Config) any { return c.RejoinInterval }, 7 * time.Second, 9 * time.Second},
		{"join-timeout", "3s", "4s", func(c Config) any { return c.JoinTimeout }, 3 * time.Second, 4 * time.Second},
		{"cluster-label", "x", "y", func(c Config) any { return c.ClusterLabel }, "x", "y"},
		{"gossip-key", keyA, keyB, func(c Config) any { return c.GossipKey }, keyA, keyB},
		{"history-size", "5", "6", func(c Config) any { return c.HistorySize }, 5, 6},
		{"history-ttl", "1m", "2m", func(c Config) any { return c.HistoryTTL }, time.Minute, 2 * time.Minute},
		{"history-bytes", "1KiB", "2048", func(c Config) any { return c.HistoryBytes }, int64(1024), int64(2048)},
		{"heartbeat", "1s", "2s", func(c Config) any { return c.Heartbeat }, time.Second, 2 * time.Second},
		{"max-event-bytes", "2MiB", "3MiB", func(c Config) any { return c.MaxEventBytes }, int64(2 << 20), int64(3 << 20)},
		{"max-streams", "7", "8", func(c Config) any { return c.MaxStreams }, 7, 8},
		{"max-patterns", "3", "4", func(c Config) any { return c.MaxPatterns }, 3, 4},
		{"max-batch", "10", "20", func(c Config) any { return c.MaxBatch }, 10, 20},
		{"max-publishes", "10", "20", func(c Config) any { return c.MaxPublishes }, 10, 20},
		{"queue-size", "16", "32", func(c Config) any { return c.QueueSize }, 16, 32},
		{"queue-bytes", "64KiB", "1MiB", func(c Config) any { return c.QueueBytes }, int64(64 << 10), int64(1 << 20)},
		{"ack", "local", "peer", func(c Config) any { return c.Ack }, "local", "peer"},
		{"drain-timeout", "3s", "4s", func(c Config) any { return c.DrainTimeout }, 3 * time.Second, 4 * time.Second},
		{"log-format", "json", "text", func(c Config) any { return c.LogFormat }, "json", "text"},
		{"log-level", "debug", "error", func(c Config) any { return c.LogLevel }, "debug", "error"},
		{"pprof", "true", "false", func(c Config) any { return c.Pprof }, true, false},
	}
	for _, tt := range tests {
		vars := map[string]string{envName(tt.flag): tt.envVal}
		c, err := parseServe([]string{"--" + tt.flag + "=" + tt.flagVal}, env(vars))
		if err != nil {
			t.Errorf("parseServe(--%s=%s) error: %v", tt.flag, tt.flagVal, err)
		} else if got := tt.get(c); got != tt.wantFlag {
			t.Errorf("--%s=%s with %s=%s: got %v, want the flag's %v", tt.flag, tt.flagVal, envName(tt.flag), tt.envVal, got, tt.wantFlag)
		}
		c, err = parseServe(nil, env(vars))
		if err != nil {
			t.Errorf("parseServe with %s=%s error: %v", envName(tt.flag), tt.envVal, err)
		} else if got := tt.get(c); got != tt.wantEnv {
			t.Errorf("%s=%s: got %v, want %v", envName(tt.flag), tt.envVal, got, tt.wantEnv)
		}
	}
}

func TestEnvName(t *testing.T) {
	for flag, want := range map[string]string{
		"gossip-addr":     "RUMOR_GOSSIP_ADDR",
		"http-addr":       "RUMOR_HTTP_ADDR",
		"max-event-bytes": "RUMOR_MAX_EVENT_BYTES",
		"pprof":           "RUMOR_PPROF",
	} {
		if got := envName(flag); got != want {
			t.Errorf("envName(%q) = %q, want %q", flag, got, want)
		}
	}
}

// The help names every variable next to its flag, with the default.
func TestServeHelpNamesVariables(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"serve", "-h"}, env(nil), &out, &out); err != nil {
		t.Fatalf("serve -h: %v", err)
	}
	for _, o := range serveOptions(env(nil)) {
		line := "\n  --" + o.name + " "
		i := strings.Index(out.String(), line)
		if i < 0 {
			t.Errorf("serve -h does not show %s", line)
			continue
		}
		entry, _, _ := strings.Cut(out.String()[i+1:], "\n  --")
		if !strings.Contains(entry, "env "+envName(o.name)) {
			t.Errorf("serve -h entry for --%s does not name %s:\n%s", o.name, envName(o.name), entry)
		}
		if o.def != "" && !strings.Contains(entry, "default "+o.def) {
			t.Errorf("serve -h entry for --%s does not show its default %q:\n%s", o.name, o.def, entry)
		}
	}
}

func TestAdvertiseAddrFallsBackToPodIP(t *testing.T) {
	tests := []struct {
		args []string
		vars map[string]string
		want string
	}{
		{nil, nil, ""},
		{nil, map[string]string{"POD_IP": "10.1.2.3"}, "10.1.2.3"},
		{nil, map[string]string{"POD_IP": "10.1.2.3", "RUMOR_ADVERTISE_ADDR": "10.9.9.9"}, "10.9.9.9"},
		{[]string{"--advertise-addr", "10.7.7.7"}, map[string]string{"POD_IP": "10.1.2.3", "RUMOR_ADVERTISE_ADDR": "10.9.9.9"}, "10.7.7.7"},
	}
	for _, tt := range tests {
		c, err := parseServe(tt.args, env(tt.vars))
		if err != nil {
			t.Errorf("parseServe(%q, %v) error: %v", tt.args, tt.vars, err)
			continue
		}
		if c.AdvertiseAddr != tt.want {
			t.Errorf("parseServe(%q, %v).AdvertiseAddr = %q, want %q", tt.args, tt.vars, c.AdvertiseAddr, tt.want)
		}
	}
}

func TestGossipAddrDefaultsWhenJoining(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"--join", "a:7946"}, ":7946"},
		{[]string{"--join", "a:7946", "--gossip-addr", "127.0.0.1:9000"}, "127.0.0.1:9000"},
	} {
		c, err := parseServe(tt.args, env(nil))
		if err != nil {
			t.Fatalf("parseServe(%q) error: %v", tt.args, err)
		}
		if c.GossipAddr != tt.want {
			t.Errorf("parseServe(%q).GossipAddr = %q, want %q", tt.args, c.GossipAddr, tt.want)
		}
	}
}

// One run with everything wrong reports every problem, not the first.
func TestParseServeReportsEveryProblem(t *testing.T) {
	args := []string{
		"--http-addr", "nonsense",
		"--gossip-addr", "127.0.0.1:99999",
		"--advertise-addr", "bad host",
		"--join", "ok:1,a:b",
		"--gossip-key", base64.StdEncoding.EncodeToString([]byte("short")),
		"--history-size", "-1",
		"--history-ttl", "5 minutes",
		"--history-bytes", "12XB",
		"--heartbeat", "0s",
		"--max-event-bytes", "-5",
		"--max-streams", "many",
		"--max-patterns", "0",
		"--ack", "every",
		"--drain-timeout", "-1s",
		"--log-format", "xml",
		"--log-level", "verbose",
		"--pprof=maybe",
	}
	vars := map[string]string{"RUMOR_QUEUE_SIZE": "0", "RUMOR_REJOIN_INTERVAL": "soon"}
	_, err := parseServe(args, env(vars))
	if err == nil {
		t.Fatal("parseServe with every value wrong: no error")
	}
	for _, want := range []string{
		`--http-addr "nonsense"`,
		`--gossip-addr "127.0.0.1:99999"`,
		`--advertise-addr "bad host"`,
		`--join "a:b"`,
		"--gossip-key: 5 bytes, want 16, 24 or 32",
		"--history-size -1",
		`--history-ttl="5 minutes": not a duration`,
		`--history-bytes="12XB": not a size`,
		"--heartbeat must be positive",
		`--max-event-bytes="-5": not a size`,
		`--max-streams="many": not an integer`,
		"--max-patterns must be positive",
		`--ack "every"`,
		"--drain-timeout must be positive",
		`--log-format "xml"`,
		`--log-level "verbose"`,
		`--pprof="maybe": not a boolean`,
		"--queue-size must be positive",
		`RUMOR_REJOIN_INTERVAL="soon": not a duration`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("parseServe error does not mention %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), `"ok:1"`) {
		t.Errorf("parseServe error blames the valid seed ok:1:\n%v", err)
	}
}

func TestGossipKey(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{7}, 32)
	text := base64.StdEncoding.EncodeToString(key)
	good := filepath.Join(dir, "key")
	if err := os.WriteFile(good, []byte(text+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		want    []byte
		wantErr string
	}{
		{"none", nil, nil, ""},
		{"flag", []string{"--gossip-key", text}, key, ""},
		{"file", []string{"--gossip-key-file", good}, key, ""},
		{"both", []string{"--gossip-key", text, "--gossip-key-file", good}, nil, "both set"},
		{"missing file", []string{"--gossip-key-file", filepath.Join(dir, "nope")}, nil, "--gossip-key-file"},
		{"empty file", []string{"--gossip-key-file", empty}, nil, "empty"},
		{"not base64", []string{"--gossip-key", "secret!!"}, nil, "not base64"},
		{"wrong length", []string{"--gossip-key", base64.StdEncoding.EncodeToString(make([]byte, 20))}, nil, "20 bytes"},
	}
	for _, tt := range tests {
		c, err := parseServe(tt.args, env(nil))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: parseServe error = %v, want one mentioning %q", tt.name, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "secret!!") {
				t.Errorf("%s: the error echoes the key: %v", tt.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: parseServe error: %v", tt.name, err)
			continue
		}
		got, err := c.gossipKey()
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("%s: gossipKey() = %x, %v, want %x", tt.name, got, err, tt.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1048576", 1 << 20, true},
		{"1MiB", 1 << 20, true},
		{"256MiB", 256 << 20, true},
		{"64KiB", 64 << 10, true},
		{"2GiB", 2 << 30, true},
		{"1mib", 1 << 20, true},
		{"10B", 10, true},
		{" 3 KiB ", 3 << 10, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"1.5MiB", 0, false},
		{"-1", 0, false},
		{"1MB", 0, false},
		{"9999999999GiB", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestRunUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	err := run(t.Context(), []string{"frobnicate"}, env(nil), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Errorf("run(frobnicate) = %v, want an unknown command error", err)
	}
	if !strings.Contains(out.String(), "subscribe") {
		t.Errorf("run(frobnicate) printed no usage:\n%s", out.String())
	}
	if err := run(t.Context(), nil, env(nil), &out, &out); err == nil {
		t.Error("run() with no command = nil, want an error")
	}
}

func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"version"}, env(nil), &out, &out); err != nil {
		t.Fatalf("rumor version: %v", err)
	}
	if !strings.HasPrefix(out.String(), "rumor "+version()+" (go") {
		t.Errorf("rumor version printed %q, want it to start with %q", out.String(), "rumor "+version()+" (go")
	}
}

// The README's configuration table lists every flag of `rumor serve` with
// its variable and default, in the same order.
func TestReadmeConfigTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]string
	for line := range strings.Lines(string(readme)) {
		if strings.HasPrefix(line, "| `--") {
			cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
			for i := range cells {
				cells[i] = strings.Trim(strings.TrimSpace(cells[i]), "`")
			}
			rows = append(rows, cells)
		}
	}
	opts := serveOptions(env(nil))
	if len(rows) != len(opts) {
		t.Errorf("the README's table has %d flags, rumor serve %d", len(rows), len(opts))
	}
	// Defaults that depend on the machine are described in words.
	described := map[string]string{"node-name": "the hostname", "advertise-addr": "$POD_IP"}
	for i, o := range opts[:min(len(opts), len(rows))] {
		row := rows[i]
		want := []string{"--" + o.name, envName(o.name), cmp.Or(described[o.name], o.def, "none")}
		if len(row) != 4 || !slices.Equal(row[:3], want) {
			t.Errorf("README row %d = %q, want it to start with %q", i+1, row, want)
		}
	}
}
