package main

import (
	"cmp"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rumorhq/rumor/broker"
)

// Config is everything `rumor serve` is told: one field per flag. Sizes are
// bytes. parseServe fills it from flags, RUMOR_* variables and defaults.
type Config struct {
	HTTPAddr       string
	AdminAddr      string // empty: the views, metrics and UI are on HTTPAddr
	NodeName       string
	GossipAddr     string // empty: a single node
	AdvertiseAddr  string
	Join           []string
	RejoinInterval time.Duration
	JoinTimeout    time.Duration
	ClusterLabel   string
	GossipKey      string // base64
	GossipKeyFile  string // a file holding the base64 key
	MaxStrangers   int    // gossip-port connections not yet proved to be peers
	StrangerBytes  int64  // bytes each may send before it proves to be a peer
	HistorySize    int    // 0 keeps no history
	HistoryTTL     time.Duration
	HistoryBytes   int64
	Heartbeat      time.Duration
	Presence       bool          // count subscribers cluster-wide and announce transitions (package presence)
	PresenceGrace  time.Duration // how long a channel stays empty before it is vacated
	Coalesce       time.Duration // 0: every event written at once
	MaxEventBytes  int64
	MaxStreams     int
	MaxPatterns    int
	MaxBatch       int
	MaxPublishes   int
	QueueSize      int
	QueueBytes     int64
	Ack            string // peer, local or all
	DrainTimeout   time.Duration
	LogFormat      string // text or json
	LogLevel       string // debug, info, warn or error
	Pprof          bool
	SecurityConfig // auth, CORS, TLS and limits: security.go
	MercureConfig  // the Mercure face: mercure.go
}

// option is one `rumor serve` flag and its environment variable.
type option struct {
	name  string // the flag; the variable is RUMOR_ + NAME with dashes as underscores
	kind  string // shown in the help: duration, size, int, string, addr, bool…
	def   string // the default, as text
	usage string
	set   func(c *Config, v string) error
}

// serveOptions lists the flags of `rumor serve`, in the order of the help
// and of the README's config table. Defaults are parsed like any other
// value, so what the help shows is what runs.
func serveOptions(getenv func(string) string) []option {
	host, _ := os.Hostname()
	return append([]option{
		{"http-addr", "addr", ":8080", "HTTP listen address (API, streams, UI, metrics)", setString(func(c *Config) *string { return &c.HTTPAddr })},
		{"admin-addr", "addr", "", "admin listen address: when set, the UI, /metrics, /debug/pprof and the views that list channels and members (/channels, /cluster, /node, /cluster/*) move here from --http-addr, which keeps streams, publishing, health probes and /rumor.js", setString(func(c *Config) *string { return &c.AdminAddr })},
		{"node-name", "string", cmp.Or(host, "rumor"), "node name; a random suffix is added per process start", setString(func(c *Config) *string { return &c.NodeName })},
		{"gossip-addr", "addr", "", `gossip and relay listen address; empty runs a single node (":7946" when --join is set)`, setString(func(c *Config) *string { return &c.GossipAddr })},
		{"advertise-addr", "addr", getenv("POD_IP"), "host or host:port peers reach this node at; defaults to $POD_IP when set", setString(func(c *Config) *string { return &c.AdvertiseAddr })},
		{"join", "list", "", "comma-separated seeds to join: host:port or DNS names, re-resolved on every re-join", setList(func(c *Config) *[]string { return &c.Join })},
		{"rejoin-interval", "duration", "30s", "how often seeds are re-resolved and re-joined (heals partitions)", setDuration(func(c *Config) *time.Duration { return &c.RejoinInterval })},
		{"join-timeout", "duration", "10s", "how long a node whose --join names peers looks for one before it reports itself isolated (an error log, rumor_cluster_isolated 1, and not ready if it never joined)", setDuration(func(c *Config) *time.Duration { return &c.JoinTimeout })},
		{"cluster-label", "string", "", "cluster label: nodes with another label never talk to this one", setString(func(c *Config) *string { return &c.ClusterLabel })},
		{"gossip-key", "base64", "", "AES key for gossip and relay, base64 of 16, 24 or 32 bytes", setString(func(c *Config) *string { return &c.GossipKey })},
		{"gossip-key-file", "path", "", "file holding the base64 gossip key (instead of --gossip-key)", setString(func(c *Config) *string { return &c.GossipKeyFile })},
		{"gossip-max-strangers", "int", "32", "TCP connections on the gossip port not yet proved to be peers (8 per address at most); more are closed at once", setInt(func(c *Config) *int { return &c.MaxStrangers })},
		{"gossip-stranger-bytes", "size", "1MiB", "bytes a gossip-port connection may send before it proves to be a peer; over it, closed", setSize(func(c *Config) *int64 { return &c.StrangerBytes })},
		{"history-size", "int", "1000", "events retained per channel; 0 keeps none", setInt(func(c *Config) *int { return &c.HistorySize })},
		{"history-ttl", "duration", "5m", "how long events are retained", setDuration(func(c *Config) *time.Duration { return &c.HistoryTTL })},
		{"history-bytes", "size", "256MiB", "retained bytes across all channels (bytes, KiB, MiB or GiB)", setSize(func(c *Config) *int64 { return &c.HistoryBytes })},
		{"heartbeat", "duration", "15s", "comment line on idle streams", setDuration(func(c *Config) *time.Duration { return &c.Heartbeat })},
		{"presence", "bool", "true", "who is here, cluster-wide: GET /presence and the transitions on rumor.presence.<channel>; false: neither, and no rumor.census events between the nodes", setBool(func(c *Config) *bool { return &c.Presence })},
		{"presence-grace", "duration", "5s", "how long a channel stays empty, cluster-wide, before it is vacated (and a subject gone before it has left): a subscriber who reconnects within it is neither", setDuration(func(c *Config) *time.Duration { return &c.PresenceGrace })},
		{"coalesce", "duration", "1ms", "a busy stream writes at most once per this; events arriving meanwhile share the write (0 writes each at once)", setDuration(func(c *Config) *time.Duration { return &c.Coalesce })},
		{"max-event-bytes", "size", "1MiB", "largest event data accepted; larger publishes get 413", setSize(func(c *Config) *int64 { return &c.MaxEventBytes })},
		{"max-streams", "int", "20000", "concurrent SSE streams on this node", setInt(func(c *Config) *int { return &c.MaxStreams })},
		{"max-patterns", "int", "64", "channels and patterns per stream", setInt(func(c *Config) *int { return &c.MaxPatterns })},
		{"max-batch", "int", "1000", "messages per POST /publish", setInt(func(c *Config) *int { return &c.MaxBatch })},
		{"max-publishes", "int", "4096", "publish requests in flight on this node (each holds its body: see docs/HARDENING.md); over it 503 + Retry-After", setInt(func(c *Config) *int { return &c.MaxPublishes })},
		{"queue-size", "int", "8192", "events queued per subscriber before it is cut off as slow", setInt(func(c *Config) *int { return &c.QueueSize })},
		{"queue-bytes", "size", "8MiB", "bytes of events a stream holds (queued or being written) before it is cut off as slow; one event always fits", setSize(func(c *Config) *int64 { return &c.QueueBytes })},
		{"ack", "peer|local|all", "peer", "when a publish is answered without ?ack=: peer (stored here and acknowledged by a live peer), local, or all (every live member holds it)", setString(func(c *Config) *string { return &c.Ack })},
		{"drain-timeout", "duration", "10s", "how long a graceful shutdown may take", setDuration(func(c *Config) *time.Duration { return &c.DrainTimeout })},
		{"log-format", "text|json", "text", "log format, to stdout", setString(func(c *Config) *string { return &c.LogFormat })},
		{"log-level", "level", "info", "log level: debug, info, warn or error", setString(func(c *Config) *string { return &c.LogLevel })},
		{"pprof", "bool", "false", "serve net/http/pprof at /debug/pprof/", setBool(func(c *Config) *bool { return &c.Pprof })},
	}, append(securityOptions(), mercureOptions()...)...)
}

// envName is the environment variable of a flag: --gossip-addr ↔ RUMOR_GOSSIP_ADDR.
func envName(flagName string) string {
	return "RUMOR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseServe reads `rumor serve`'s configuration: each value from its flag,
// else its RUMOR_* variable, else the default. The error lists every
// problem at once: values that do not parse, then those Validate rejects.
func parseServe(args []string, getenv func(string) string) (Config, error) {
	return parseConfig(flag.NewFlagSet("rumor serve", flag.ContinueOnError), serveOptions(getenv), args, getenv, nil)
}

// parseConfig is parseServe for opts, a subset of serveOptions, parsed
// with fs, which may hold flags of its own (`rumor dev`'s). An option left
// out keeps its zero value unless fill, called before Validate, sets it.
func parseConfig(fs *flag.FlagSet, opts []option, args []string, getenv func(string) string, fill func(*Config)) (Config, error) {
	given, err := resolve(fs, opts, args, getenv)
	if err != nil {
		return Config{}, err
	}
	var c Config
	var errs []error
	for _, o := range opts {
		// The default first: a value that does not parse is reported once,
		// here, and not again by Validate.
		if err := o.set(&c, o.def); err != nil {
			errs = append(errs, fmt.Errorf("default of --%s %q: %w", o.name, o.def, err))
		}
		v := given[o.name]
		if v.from == "" {
			continue
		}
		if err := o.set(&c, v.text); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", v.from, v.text, err))
		}
	}
	if c.GossipAddr == "" && len(c.Join) > 0 {
		c.GossipAddr = ":7946"
	}
	if fill != nil {
		fill(&c)
	}
	errs = append(errs, c.Validate())
	return c, errors.Join(errs...)
}

// setting is an option's text and where it came from: "--flag", the
// variable's name, or "" for the default.
type setting struct{ text, from string }

// resolve picks each option's text by precedence: its flag, else its
// variable (when not empty), else its default. It parses args with fs,
// after adding opts to it, and only fails on flags that do not exist or
// arguments that are not flags.
func resolve(fs *flag.FlagSet, opts []option, args []string, getenv func(string) string) (map[string]setting, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	raw := make(map[string]*rawValue, len(opts))
	for _, o := range opts {
		raw[o.name] = &rawValue{isBool: o.kind == "bool"}
		fs.Var(raw[o.name], o.name, o.usage)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	out := make(map[string]setting, len(opts))
	for _, o := range opts {
		switch env := getenv(envName(o.name)); {
		case raw[o.name].set:
			out[o.name] = setting{raw[o.name].text, "--" + o.name}
		case env != "":
			out[o.name] = setting{env, envName(o.name)}
		default:
			out[o.name] = setting{o.def, ""}
		}
	}
	return out, nil
}

// Validate checks the configuration and returns every problem at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if err := checkHostPort(c.HTTPAddr); err != nil {
		bad("--http-addr %q: %v", c.HTTPAddr, err)
	}
	if c.AdminAddr != "" {
		if err := checkHostPort(c.AdminAddr); err != nil {
			bad("--admin-addr %q: %v", c.AdminAddr, err)
		}
	}
	// Two listeners on one port: the second would fail to bind.
	addrs := []struct{ flag, addr string }{{"--http-addr", c.HTTPAddr}, {"--admin-addr", c.AdminAddr}, {"--gossip-addr", c.GossipAddr}}
	for i, a := range addrs {
		for _, b := range addrs[i+1:] {
			if _, port, err := net.SplitHostPort(a.addr); err == nil && port != "0" && a.addr == b.addr {
				bad("%s and %s are both %q: give each its own port", a.flag, b.flag, a.addr)
			}
		}
	}
	if strings.TrimSpace(c.NodeName) == "" {
		bad("--node-name is empty")
	}
	if c.GossipAddr != "" {
		if err := checkHostPort(c.GossipAddr); err != nil {
			bad("--gossip-addr %q: %v", c.GossipAddr, err)
		}
	}
	if c.AdvertiseAddr != "" {
		if err := checkHostOrHostPort(c.AdvertiseAddr); err != nil {
			bad("--advertise-addr %q: %v", c.AdvertiseAddr, err)
		}
	}
	for _, s := range c.Join {
		if err := checkHostOrHostPort(s); err != nil {
			bad("--join %q: %v", s, err)
		}
	}
	if c.GossipKey != "" && c.GossipKeyFile != "" {
		bad("--gossip-key and --gossip-key-file are both set: use one")
	} else if _, err := c.gossipKey(); err != nil {
		errs = append(errs, err)
	}
	if c.HistorySize < 0 {
		bad("--history-size %d: must not be negative (0 keeps none)", c.HistorySize)
	}
	if c.Coalesce < 0 || c.Coalesce > time.Second {
		bad("--coalesce %v: must be between 0 (off) and 1s", c.Coalesce)
	}
	positive := []struct {
		name string
		v    int64
	}{
		{"--rejoin-interval", int64(c.RejoinInterval)},
		{"--join-timeout", int64(c.JoinTimeout)},
		{"--gossip-max-strangers", int64(c.MaxStrangers)},
		{"--gossip-stranger-bytes", c.StrangerBytes},
		{"--history-ttl", int64(c.HistoryTTL)},
		{"--history-bytes", c.HistoryBytes},
		{"--heartbeat", int64(c.Heartbeat)},
		{"--presence-grace", int64(c.PresenceGrace)},
		{"--max-event-bytes", c.MaxEventBytes},
		{"--max-streams", int64(c.MaxStreams)},
		{"--max-patterns", int64(c.MaxPatterns)},
		{"--max-batch", int64(c.MaxBatch)},
		{"--max-publishes", int64(c.MaxPublishes)},
		{"--queue-size", int64(c.QueueSize)},
		{"--queue-bytes", c.QueueBytes},
		{"--drain-timeout", int64(c.DrainTimeout)},
	}
	for _, p := range positive {
		if p.v <= 0 {
			bad("%s must be positive", p.name)
		}
	}
	if _, err := parseAck(c.Ack); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("--log-format %q: want text or json", c.LogFormat)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateSecurity())
	errs = append(errs, c.validateMercure())
	return errors.Join(errs...)
}

// gossipKey returns the decoded gossip key, nil when none is configured.
func (c *Config) gossipKey() ([]byte, error) {
	text, from := c.GossipKey, "--gossip-key"
	if c.GossipKeyFile != "" {
		b, err := os.ReadFile(c.GossipKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--gossip-key-file: %w", err)
		}
		text, from = strings.TrimSpace(string(b)), "--gossip-key-file "+c.GossipKeyFile
	}
	if text == "" {
		if c.GossipKeyFile != "" {
			return nil, fmt.Errorf("%s: empty", from)
		}
		return nil, nil
	}
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		// Never echo the key itself.
		return nil, fmt.Errorf("%s: not base64", from)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("%s: %d bytes, want 16, 24 or 32 (AES-128, -192 or -256)", from, len(key))
}

// historySize maps "0 keeps none" to the hub's "negative means none" (its
// zero means the default).
func (c *Config) historySize() int {
	if c.HistorySize == 0 {
		return -1
	}
	return c.HistorySize
}

func parseAck(s string) (broker.Ack, error) {
	switch s {
	case "peer":
		return broker.AckPeer, nil
	case "local":
		return broker.AckLocal, nil
	case "all":
		return broker.AckAll, nil
	}
	return 0, fmt.Errorf("--ack %q: want peer, local or all", s)
}

func parseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
}

// newLogger builds the process's one logger. format and level must have
// passed Validate.
func newLogger(w io.Writer, format, level string) *slog.Logger {
	lv, _ := parseLevel(level)
	o := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// checkHostPort accepts "host:port" and ":port" with a port from 0 to 65535.
func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	return checkPort(port)
}

// checkHostOrHostPort accepts a host name or IP, with or without a port.
func checkHostOrHostPort(s string) error {
	host := s
	if h, port, err := net.SplitHostPort(s); err == nil {
		if err := checkPort(port); err != nil {
			return err
		}
		host = h
	}
	if host == "" {
		return errors.New("no host")
	}
	if strings.ContainsAny(host, " /\t\r\n[]") {
		return errors.New("not a host name or IP address")
	}
	return nil
}

func checkPort(p string) error {
	if _, err := strconv.ParseUint(p, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	return nil
}

// parseSize reads a byte count: plain bytes or a KiB, MiB or GiB suffix
// ("1048576", "1MiB", "512KiB"), case-insensitive.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"b", 1}} {
		if strings.HasSuffix(strings.ToLower(t), u.suffix) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size: want bytes or a number with KiB, MiB or GiB")
	}
	if n > math.MaxInt64/mult {
		return 0, errors.New("too large")
	}
	return n * mult, nil
}

// rawValue records a flag's text as given; parsing happens afterwards, so
// that every bad value is reported, not only the first.
type rawValue struct {
	text   string
	set    bool
	isBool bool
}

func (v *rawValue) String() string     { return v.text }
func (v *rawValue) Set(s string) error { v.text, v.set = s, true; return nil }
func (v *rawValue) IsBoolFlag() bool   { return v.isBool }

func setString(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *field(c) = v; return nil }
}

func setList(field func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, v string) error {
		var out []string
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		*field(c) = out
		return nil
	}
}

func setDuration(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return errors.New("not a duration: want a number with a unit, like 500ms, 30s or 5m")
		}
		*field(c) = d
		return nil
	}
}

func setInt(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("not an integer")
		}
		*field(c) = n
		return nil
	}
}

func setSize(field func(*Config) *int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := parseSize(v)
		if err != nil {
			return err
		}
		*field(c) = n
		return nil
	}
}

func setBool(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("not a boolean: want true or false")
		}
		*field(c) = b
		return nil
	}
}
