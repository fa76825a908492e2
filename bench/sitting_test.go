package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSittingScript runs bench/sitting.sh end to end at its smallest
// (QUICK=1, row 1a, one run per target): a fresh bare loop, one rumor
// node, three rumor processes and a rumor dev cluster, each started on
// ports the script picks, measured, stopped; then the summary. It checks
// every target ran cleanly and the summary compares each to the loop.
func TestSittingScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds rumor and starts servers: not with -short")
	}
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("RUMOR_REQUIRE_SITTING") != "" {
				t.Fatalf("%s is needed for bench/sitting.sh: %v", tool, err)
			}
			t.Skipf("%s not found: %v", tool, err)
		}
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "rumor")
	if out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/rumorhq/rumor/cmd/rumor").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "out")
	cmd := exec.CommandContext(ctx, "bash", "sitting.sh")
	cmd.Env = append(os.Environ(), "QUICK=1", "ROWS=1a", "REPS=1", "TARGETS=bare rumor rumor-3 dev-3", "RUMOR="+bin, "OUT="+out)
	cmd.WaitDelay = 10 * time.Second
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bench/sitting.sh: %v\n%s", err, b)
	}

	f, err := os.Open(filepath.Join(out, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var targets []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Row    string          `json:"row"`
			Target string          `json:"target"`
			Exit   int             `json:"exit"`
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("results.jsonl line %q: %v", sc.Text(), err)
		}
		if r.Row != "1a" || r.Exit != 0 || string(r.Result) == "null" {
			t.Errorf("run %s on %s: exit %d, result %.80s; want row 1a, exit 0, a result", r.Row, r.Target, r.Exit, r.Result)
		}
		targets = append(targets, r.Target)
	}
	if want := []string{"bare", "rumor", "rumor-3", "dev-3"}; !slices.Equal(targets, want) {
		t.Errorf("targets run %v, want %v", targets, want)
	}
	summary, err := os.ReadFile(filepath.Join(out, "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rumor / bare", "rumor-3 / bare", "dev-3 / bare", "nothing lost, duplicated, out of order or misrouted"} {
		if !strings.Contains(string(summary), want) {
			t.Errorf("summary.md lacks %q:\n%s", want, summary)
		}
	}
}
