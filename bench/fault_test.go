package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFaultScript runs bench/fault.sh end to end at its smallest (QUICK=1,
// one round, a 3-node cluster for the scale part): the bare loop, three
// rumor processes without a fault, with the third frozen and throttled,
// and rumor dev; then the summary. It checks every run ended cleanly, the
// faults happened, the relay counters moved, and the summary has both
// tables.
func TestFaultScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds rumor and starts servers: not with -short")
	}
	for _, tool := range []string{"bash", "curl", "jq", "ss"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("RUMOR_REQUIRE_SITTING") != "" {
				t.Fatalf("%s is needed for bench/fault.sh: %v", tool, err)
			}
			t.Skipf("%s not found: %v", tool, err)
		}
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "rumor")
	if out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/rumorhq/rumor/cmd/rumor").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "out")
	cmd := exec.CommandContext(ctx, "bash", "fault.sh")
	cmd.Env = append(os.Environ(), "QUICK=1", "REPS=1", "NODES=3", "IDLE=0.5", "RUMOR="+bin, "OUT="+out)
	cmd.WaitDelay = 10 * time.Second
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bench/fault.sh: %v\n%s", err, b)
	}

	f, err := os.Open(filepath.Join(out, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var runs []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Row, Point, Target string
			Exit               int
			Load               string
			Fault              struct{ Seconds float64 }
			Relay              struct{ Segments int }
			Result             *Result
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("results.jsonl line %q: %v", sc.Text(), err)
		}
		run := r.Row + "/" + r.Point + "/" + r.Target
		runs = append(runs, run)
		if r.Exit != 0 || r.Result == nil || r.Result.Delivered == 0 {
			t.Errorf("run %s: exit %d, result %+v; want exit 0 and deliveries", run, r.Exit, r.Result)
		}
		if r.Load == "" {
			t.Errorf("run %s: no load average recorded", run)
		}
		if fault := r.Point == "frozen" || r.Point == "throttled"; fault != (r.Fault.Seconds > 0) {
			t.Errorf("run %s: fault lasted %vs", run, r.Fault.Seconds)
		}
		if relayed := r.Target != "bare"; relayed != (r.Relay.Segments > 0) {
			t.Errorf("run %s: %d relay segments counted", run, r.Relay.Segments)
		}
	}
	slices.Sort(runs)
	want := []string{"fault//bare", "fault//bare-3", "fault/frozen/rumor-3", "fault/none/rumor-3", "fault/throttled/rumor-3", "scale/3/dev-3"}
	if !slices.Equal(runs, want) {
		t.Errorf("runs %v, want %v", runs, want)
	}
	summary, err := os.ReadFile(filepath.Join(out, "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The frozen row names the measured freeze (2.5 s asked; a loaded
	// machine may report 2.6 s), so it is matched by pattern.
	if !regexp.MustCompile(`\| s3 frozen [0-9]+\.[0-9] s \| 1 \|`).Match(summary) {
		t.Errorf("summary.md lacks the frozen row:\n%s", summary)
	}
	for _, want := range []string{"| s3 throttled (100 ms in 500 ms) | 1 |", "Cross-node p99 (no fault, three processes) / bare loop p99", "Bare cluster p99 / bare loop p99", "| bare cluster, three processes relaying (same load) | 1 |", "| 3 | 1 |", "events lost + duplicated + out of order + misrouted: 0"} {
		if !strings.Contains(string(summary), want) {
			t.Errorf("summary.md lacks %q:\n%s", want, summary)
		}
	}
}
