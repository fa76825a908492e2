package main

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestChartMetricsExist: every rumor_* metric that the Helm chart's
// dashboard and alerts query, and that the README names, is served by a
// real node's /metrics (rumor dev's one node runs gossip and the relay,
// so their series exist too). A renamed metric fails here, not in an operator's empty
// panel or an alert that never fires.
func TestChartMetricsExist(t *testing.T) {
	files := []string{
		"../../helm/rumor/dashboards/rumor.json",
		"../../helm/rumor/templates/prometheusrule.yaml",
		"../../README.md",
	}
	notMetrics := map[string]bool{"rumor_token": true} // the auth cookie's name
	named := map[string][]string{}                     // metric → files
	re := regexp.MustCompile(`\brumor_[a-z0-9_]*[a-z0-9]`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllString(string(b), -1) {
			if !notMetrics[m] && !slices.Contains(named[m], f) {
				named[m] = append(named[m], f)
			}
		}
	}
	if len(named) < 10 {
		t.Fatalf("found %d metric names in %v, want the dashboard's and the alerts'", len(named), files)
	}

	dev := start(t, env(nil), "dev", "--nodes", "1", "--http-port", "0", "--log-level", "warn")
	banner := dev.out.waitContains(t, "Ctrl-C stops the cluster")
	m := regexp.MustCompile(`(?m)^\s+n1\s+(http://\S+)`).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("no URL of n1 in:\n%s", banner)
	}
	code, body := get(t, m[1]+"/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics = %d", code)
	}
	served := map[string]string{} // family → type
	for line := range strings.Lines(body) {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			served[f[2]] = f[3]
		}
	}
	for _, name := range slices.Sorted(maps.Keys(named)) {
		family := name
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && served[base] == "histogram" {
				family = base
			}
		}
		if _, ok := served[family]; !ok {
			t.Errorf("%s, named in %v, is not in a node's /metrics", name, named[name])
		}
	}
}
