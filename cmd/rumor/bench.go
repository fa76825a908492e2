package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rumorhq/rumor/bench"
)

// runBench is `rumor bench`: a load test against rumor nodes (or anything
// that speaks the same HTTP surface), and `rumor bench bare`, the
// reference fan-out loop it is compared with. The engine is package bench;
// this wires flags, the in-process servers of --cluster and --bare, and
// the SSE reader `rumor subscribe` uses.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "bare" {
		return runBare(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "summarize" {
		return runSummarize(args[1:], stdout, stderr)
	}
	b, err := parseBench(args, getenv, stdout, stderr)
	if err != nil {
		return ignoreHelp(err)
	}
	return b.run(ctx, stdout, stderr)
}

const benchUsage = `Usage: rumor bench [flags]
       rumor bench bare [--http-addr ADDR]
       rumor bench summarize [--held RATE] FILE

Opens --subscribers streams spread over the servers, publishes --count
events of --size bytes from --publishers publishers (at --rate, or flat
out), and reports deliveries and publishes per second, publish→receive
latency percentiles, and per subscriber the events lost, duplicated and
out of order; with --pid or /metrics also the server's memory and its CPU
time per delivery (steadier than rates on a shared machine). Every
event's data carries its publisher, sequence number and send time, and is
counted once. It exits 1 when events were lost, duplicated, out of order
or misrouted, after printing the result.

Subscribers and server share the open-file limit when the server runs in
this process (--cluster, --bare): for many thousands of streams run the
server as its own process and point --server at it.

'rumor bench bare' serves the reference bare fan-out loop (the same HTTP
surface, no features) until interrupted, for runs against it from another
process. 'rumor bench summarize' prints the medians and ratios of a
sitting's results file (bench/sitting.sh) as markdown tables.

Flags:
`

// benchRun is a `rumor bench` run as its flags describe it, checked.
type benchRun struct {
	cfg        bench.Config // SubURLs and PubURLs are placeholders with --cluster or --bare
	cluster    int          // --cluster: nodes to start in this process
	bare       bool         // --bare: start the bare loop in this process
	cross      bool         // --cross-node
	pids       []int        // --pid
	adminURLs  []string     // --admin-url
	metrics    bool         // --metrics
	serverGC   bool         // --server-gc
	asJSON     bool         // --json
	quiet      bool         // --quiet
	cpuProfile string       // --cpuprofile
}

// inProcess reports whether the servers under test run in this process.
func (b *benchRun) inProcess() bool { return b.cluster > 0 || b.bare }

// parseBench reads `rumor bench`'s flags and reports every problem with
// them at once. With --help it prints the usage and returns errHelp.
func parseBench(args []string, getenv func(string) string, stdout, stderr io.Writer) (*benchRun, error) {
	fs := flag.NewFlagSet("rumor bench", flag.ContinueOnError)
	server := newServerFlag(getenv)
	fs.Var(server, "server", "base `URL` of a server to test; repeat it or give a comma-separated list, and subscribers and publishers take them in turn (env RUMOR_SERVER)")
	var deprecatedURL bool
	fs.Func("url", "deprecated: the old name of --server, which it adds to", func(v string) error {
		deprecatedURL = true
		return server.Set(v)
	})
	subURLs := fs.String("sub-url", "", "comma-separated URLs for subscribers only, instead of --server")
	pubURLs := fs.String("pub-url", "", "comma-separated URLs for publishers only, instead of --server")
	maxRetry := fs.Duration("max-retry", time.Second, "the longest a subscriber waits to reopen a stream the server ended with a longer retry: (a browser waits all of it); 0 reopens at once")
	cluster := fs.Int("cluster", 0, "start this many rumor nodes in this process (like rumor dev; 1 is a single node) and test them instead of --server")
	bare := fs.Bool("bare", false, "start the reference bare fan-out loop in this process and test it instead of --url")
	envelope := fs.Bool("envelope", false, "streams ask for ?envelope=json and every event must name the subscriber's channel (counted as misrouted otherwise); not with --bare")
	cross := fs.Bool("cross-node", false, "publish to the first server only and subscribe on the others, so every event crosses nodes")
	subs := fs.Int("subscribers", 100, fmt.Sprintf("streams to open (at most %d)", bench.MaxSubscribers))
	channels := fs.Int("channels", 1, "channels; subscriber i streams channel i mod channels, event g goes to channel g mod channels")
	pubs := fs.Int("publishers", 1, fmt.Sprintf("concurrent publishers, each one request at a time (at most %d)", bench.MaxPublishers))
	count := fs.Int("count", 10_000, fmt.Sprintf("events to publish in all (at most %d); 0 opens the streams only, holds them for --hold and reads the server's memory", bench.MaxCount))
	size := fs.String("size", "200", fmt.Sprintf("bytes of data per event, a `size` (at least %d)", bench.MinSize))
	rate := fs.Float64("rate", 0, fmt.Sprintf("events per second over all publishers; 0 publishes flat out (at most %d)", bench.MaxRate))
	duration := fs.Duration("duration", 30*time.Second, "publishing stops after this even if --count is not reached (at most 1h)")
	connectTimeout := fs.Duration("connect-timeout", time.Minute, "every subscriber must be connected within this")
	drain := fs.Duration("drain", 5*time.Second, "after publishing, how long events in flight are waited for; ends early when every subscriber has every event or nothing arrives for 2s")
	hold := fs.Duration("hold", 3*time.Second, "with --count 0: how long the streams stay open before the memory is read")
	mercure := fs.Bool("mercure", false, "run the load through the Mercure face (GET and POST /.well-known/mercure, channels as topics) instead of /channels; the servers need --mercure and --mercure-anonymous, and with --cluster this sets them up")
	mercureToken := fs.String("mercure-token", getenv("RUMOR_MERCURE_TOKEN"), "with --mercure and --server: the publishers' JWT, one that may publish every topic (env RUMOR_MERCURE_TOKEN)")
	ack := fs.String("ack", "", "?ack= on every publish: peer or local; empty means the server's default")
	pids := fs.String("pid", "", "comma-separated PIDs of the server processes, in the order of --server: read their memory and CPU time from /proc/PID/status and /proc/PID/stat (this wins over /metrics); readings of several are summed")
	metrics := fs.Bool("metrics", true, "read the servers' memory and CPU time from /metrics on every --server, when it answers; readings of several are summed")
	adminURLs := fs.String("admin-url", "", "comma-separated admin URLs of the servers (rumor serve --admin-addr), in the order of --server: /metrics and --server-gc go there instead")
	serverGC := fs.Bool("server-gc", false, "fetch /debug/pprof/heap?gc=1 before each memory reading, so the Go heap counts live memory only (rumor serve --pprof)")
	maxEvent := fs.String("max-event-bytes", "1MiB", "largest event a subscriber accepts, a `size`")
	asJSON := fs.Bool("json", false, "print the result as one JSON object instead of the summary line")
	quiet := fs.Bool("quiet", false, "no progress on stderr (a bar redrawn in place on a terminal, else a line a second)")
	cpuProfile := fs.String("cpuprofile", "", "write the bench's own CPU profile to this file (the server's: /debug/pprof/profile)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		printFlags(fs)
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return nil, err
	}

	if deprecatedURL {
		fmt.Fprintln(stderr, "rumor bench: --url is deprecated and will go: use --server, the name publish and subscribe use too")
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	if *maxRetry < 0 {
		errs = append(errs, fmt.Errorf("--max-retry %v: must not be negative", *maxRetry))
	}
	sizeN, err := parseSize(*size)
	if err != nil {
		errs = append(errs, fmt.Errorf("--size: %w", err))
	}
	maxEventN, err := parseSize(*maxEvent)
	if err != nil || maxEventN < 1 || maxEventN > 1<<30 {
		errs = append(errs, fmt.Errorf("--max-event-bytes %q: want a size from 1 byte to 1GiB", *maxEvent))
	}
	if *cluster < 0 || *cluster > 16 {
		errs = append(errs, fmt.Errorf("--cluster %d: want 0 to 16 nodes", *cluster))
	}
	pidList, err := parsePIDs(*pids)
	if err != nil {
		errs = append(errs, err)
	}
	if *cluster > 0 && *bare {
		errs = append(errs, errors.New("--cluster and --bare: pick one"))
	}
	if *envelope && *bare {
		errs = append(errs, errors.New("--envelope and --bare: the bare loop sends data as published"))
	}
	if *mercure && *bare {
		errs = append(errs, errors.New("--mercure and --bare: the bare loop has no Mercure face"))
	}
	b := &benchRun{
		cfg: bench.Config{
			Subscribers:    *subs,
			Channels:       *channels,
			Publishers:     *pubs,
			Count:          *count,
			Size:           int(min(sizeN, bench.MaxSize+1)),
			Rate:           *rate,
			Duration:       *duration,
			ConnectTimeout: *connectTimeout,
			Drain:          *drain,
			Hold:           *hold,
			Ack:            *ack,
			Prefix:         "bench",
			Envelope:       *envelope,
			MaxEventBytes:  int(max(min(maxEventN, 1<<30), sizeN)),
			MaxRetry:       *maxRetry,
			NewReader:      newBenchReader,
			Mercure:        *mercure,
			MercureToken:   *mercureToken,
		},
		cluster:    *cluster,
		bare:       *bare,
		cross:      *cross,
		pids:       pidList,
		adminURLs:  splitList(*adminURLs),
		metrics:    *metrics,
		serverGC:   *serverGC,
		asJSON:     *asJSON,
		quiet:      *quiet,
		cpuProfile: *cpuProfile,
	}
	if !b.inProcess() {
		all := server.list
		b.cfg.SubURLs, b.cfg.PubURLs = all, all
		if l := splitList(*subURLs); l != nil {
			b.cfg.SubURLs = l
		}
		if l := splitList(*pubURLs); l != nil {
			b.cfg.PubURLs = l
		}
	} else {
		b.cfg.SubURLs, b.cfg.PubURLs = []string{"http://placeholder"}, []string{"http://placeholder"} // set once started
		if *subURLs != "" || *pubURLs != "" {
			errs = append(errs, errors.New("--sub-url and --pub-url go with --server, not with --cluster or --bare"))
		}
	}
	errs = append(errs, b.cfg.Validate())
	if err := checkOpenFiles(b.cfg, b.inProcess(), b.cluster); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return b, nil
}

// run starts the servers under test when they run in this process, runs
// the load and prints the result. It fails when events were lost,
// duplicated, out of order or misrouted, after printing the result.
func (b *benchRun) run(ctx context.Context, stdout, stderr io.Writer) error {
	cfg := b.cfg
	if !b.quiet {
		cfg.Progress, cfg.ProgressBar = stderr, isTerminal(stderr)
	}
	var target string
	switch {
	case b.bare:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		bctx, stop := context.WithCancel(ctx)
		served := make(chan error, 1)
		go func() { served <- bench.ServeBare(bctx, ln) }()
		defer func() { stop(); <-served }()
		u := "http://" + ln.Addr().String()
		cfg.SubURLs, cfg.PubURLs = []string{u}, []string{u}
		target = "bare loop in this process"
	case b.cluster > 0:
		// As `rumor dev` runs them (one node without gossip), on free
		// loopback ports, with no per-client stream limit: every
		// subscriber comes from 127.0.0.1.
		lc := localCluster{nodes: b.cluster, host: "127.0.0.1", label: "rumor-bench", name: "bench", alone: true}
		if cfg.Mercure {
			base, token, err := benchMercureNodes()
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			lc.base, cfg.MercureToken = base, token
		}
		nodes, stop, err := startLocal(ctx, lc, newLogger(stderr, "text", "warn"))
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer func() { _ = stop() }()
		var us []string
		for _, n := range nodes {
			us = append(us, n.URL())
		}
		cfg.SubURLs, cfg.PubURLs = us, us
		target = fmt.Sprintf("%d rumor nodes in this process", len(nodes))
	default:
		target = strings.Join(cfg.SubURLs, ",")
	}
	servers := distinct(append(slices.Clone(cfg.SubURLs), cfg.PubURLs...))
	if b.cross {
		all := cfg.SubURLs
		if len(all) < 2 {
			return errors.New("bench: --cross-node needs at least two servers")
		}
		cfg.PubURLs, cfg.SubURLs = all[:1], all[1:]
	}
	cfg.Servers = probes(servers, b.adminURLs, b.pids, b.metrics && !b.inProcess(), b.serverGC)
	if b.inProcess() && cfg.Count == 0 && len(b.pids) == 0 {
		fmt.Fprintln(stderr, "rumor bench: the server runs in this process, so its memory is not measured; run it as its own process for that")
	}
	if !b.quiet {
		fmt.Fprintf(stderr, "rumor bench: %s → %s\n", benchShape(cfg), target)
	}

	if b.cpuProfile != "" {
		f, err := os.Create(b.cpuProfile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if b.asJSON {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout, res.Summary())
	}
	var errs []error
	if res.Lost+res.Duplicated+res.OutOfOrder+res.Misrouted > 0 {
		errs = append(errs, fmt.Errorf("%d events lost, %d duplicated, %d out of order, %d misrouted", res.Lost, res.Duplicated, res.OutOfOrder, res.Misrouted))
	}
	if res.SubscribersRefused > 0 {
		errs = append(errs, fmt.Errorf("%d of %d subscribers were refused every time (%d streams refused: %q), so %d events were not delivered to them; "+
			"rumor limits streams per client address (--max-streams-per-client, 100 by default) and every subscriber of a bench comes from one: "+
			"run the server with --max-streams-per-client 0 (rumor serve or rumor dev, or RUMOR_MAX_STREAMS_PER_CLIENT=0)",
			res.SubscribersRefused, res.Subscribers, res.Refused, res.FirstRefusal, res.Unserved))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// benchShape says what a run is about to do.
func benchShape(c bench.Config) string {
	load := "no events (idle streams)"
	if c.Count > 0 {
		rate := "flat out"
		if c.Rate > 0 {
			rate = strconv.FormatFloat(c.Rate, 'f', -1, 64) + "/s"
		}
		load = fmt.Sprintf("%d events of %d B from %d publishers, %s", c.Count, c.Size, c.Publishers, rate)
	}
	return fmt.Sprintf("%d subscribers on %d channel(s), %s", c.Subscribers, c.Channels, load)
}

// checkOpenFiles refuses a run that would hit the open-file limit: one
// socket per stream and publisher, twice over when the server is in this
// process too.
func checkOpenFiles(c bench.Config, inProcess bool, nodes int) error {
	limit, err := bench.OpenFileLimit()
	if err != nil {
		return nil // unknown: let the run find out
	}
	need := uint64(c.Subscribers+c.Publishers) + 64
	if inProcess {
		need = 2*uint64(c.Subscribers+c.Publishers) + 64 + 32*uint64(max(nodes, 1))*uint64(max(nodes, 1))
	}
	if need <= limit {
		return nil
	}
	if inProcess {
		return fmt.Errorf("%d subscribers need about %d open files with the server in this process, and the limit is %d: run the server as its own process (rumor serve, rumor bench bare) and point --server at it", c.Subscribers, need, limit)
	}
	return fmt.Errorf("%d subscribers need about %d open files, and the limit is %d", c.Subscribers, need, limit)
}

// isTerminal reports whether w is a terminal, where progress is a bar
// redrawn in place rather than a line a second.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func parsePIDs(s string) ([]int, error) {
	var pids []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--pid %q: want comma-separated process IDs", s)
		}
		pids = append(pids, n)
	}
	return pids, nil
}

// probes pairs each server with its PID, in order, and with its /metrics
// and forced-GC URLs when asked, on its admin URL if it has one; a PID
// beyond the servers gets a probe of its own. The bench sums what they
// read.
func probes(servers, admins []string, pids []int, metrics, gc bool) []bench.Probe {
	var ps []bench.Probe
	for i := range max(len(servers), len(pids)) {
		var p bench.Probe
		if i < len(pids) {
			p.PID = pids[i]
		}
		if i < len(servers) {
			base := servers[i]
			if i < len(admins) {
				base = admins[i]
			}
			base = strings.TrimSuffix(base, "/")
			if metrics {
				p.MetricsURL = base + "/metrics"
			}
			if gc {
				p.GCURL = base + "/debug/pprof/heap?gc=1"
			}
		}
		if p.PID != 0 || p.MetricsURL != "" {
			ps = append(ps, p)
		}
	}
	return ps
}

func distinct(l []string) []string {
	var out []string
	for _, s := range l {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// benchReader adapts the SSE reader of `rumor subscribe` to the bench.
type benchReader struct {
	er      *eventReader
	retry   time.Duration
	comment string
}

func newBenchReader(body io.Reader, maxData int) bench.EventReader {
	b := &benchReader{er: newEventReader(body, maxData)}
	b.er.OnRetry = func(d time.Duration) { b.retry = d }
	b.er.OnComment = func(c string) { b.comment = c }
	return b
}

func (b *benchReader) Next() (bench.Event, error) {
	ev, err := b.er.Next()
	return bench.Event{ID: ev.ID, Data: ev.Data}, err
}

func (b *benchReader) LastID() string       { return b.er.LastID }
func (b *benchReader) Retry() time.Duration { return b.retry }
func (b *benchReader) Comment() string      { return b.comment }

// runBare is `rumor bench bare`: the reference fan-out loop as a process.
func runBare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rumor bench bare", flag.ContinueOnError)
	addr := fs.String("http-addr", "127.0.0.1:8090", "HTTP listen address")
	relayAddr := fs.String("relay-addr", "", "also take events relayed by other bare loops on this TCP address (a bare cluster: the floor of a cross-node run)")
	relayTo := fs.String("relay-to", "", "comma-separated relay addresses of other bare loops: every publish is written to each")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: rumor bench bare [flags]\n\nServes the reference bare fan-out loop (POST /channels/{channel}, GET\n/channels/{channel}, /metrics, /debug/pprof/) until interrupted. With\n--relay-addr and --relay-to, three of them form a bare cluster: the floor\nof a cross-node run.\n\nFlags:\n")
		printFlags(fs)
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return ignoreHelp(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench bare: unexpected arguments: %q", fs.Args())
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("bench bare: %w", err)
	}
	var rln net.Listener
	if *relayAddr != "" {
		if rln, err = net.Listen("tcp", *relayAddr); err != nil {
			ln.Close()
			return fmt.Errorf("bench bare: %w", err)
		}
	}
	var to []string
	if *relayTo != "" {
		to = strings.Split(*relayTo, ",")
	}
	fmt.Fprintf(stdout, "bare fan-out loop on http://%s (pid %d)\n", dialable(ln.Addr()), os.Getpid())
	return bench.ServeBareRelay(ctx, ln, rln, to)
}

// runSummarize is `rumor bench summarize`: the medians and ratios of a
// sitting's results file, as markdown.
func runSummarize(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rumor bench summarize", flag.ContinueOnError)
	held := fs.String("held", "", "instead of the tables, print the targets that held this rung (events/s) of row 4, and fail if none did")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: rumor bench summarize [--held RATE] FILE\n\nPrints the results file of a sitting (bench/sitting.sh, one JSON record a\nline) as markdown tables: medians over the repetitions, ratios to the bare\nloop, row 4's highest rung held, the scaling series, and every run that\nfailed or lost, duplicated or reordered events.\n\nFlags:\n")
		printFlags(fs)
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return ignoreHelp(err)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("bench summarize: want one results file, got %q", fs.Args())
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("bench summarize: %w", err)
	}
	defer f.Close()
	s, err := bench.ReadSitting(f)
	if err != nil {
		return fmt.Errorf("bench summarize %s: %w", fs.Arg(0), err)
	}
	if *held != "" {
		ts := s.Held(*held)
		if len(ts) == 0 {
			return fmt.Errorf("bench summarize: no target held %s/s", *held)
		}
		fmt.Fprintln(stdout, strings.Join(ts, " "))
		return nil
	}
	return s.Markdown(stdout)
}
