package charttest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestMonitoring: the dashboard ConfigMap carries the chart's dashboard
// JSON for the sidecar, and every alert of the PrometheusRule selects the
// scraped Service and links to a runbook that KUBERNETES.md has.
// cmd/rumor's TestChartMetricsExist checks that the metrics they name exist.
func TestMonitoring(t *testing.T) {
	r := mustRender(t, release{Values: "grafanaDashboard: {enabled: true, namespace: monitoring}\nprometheusRule: {enabled: true}\nadmin: {enabled: true}\n"})
	cm := one[*corev1.ConfigMap](t, r, "ConfigMap")
	file, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "rumor.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cm.Namespace != "monitoring" || cm.Labels["grafana_dashboard"] != "1" || cm.Data["rumor.json"] != strings.TrimSpace(string(file)) {
		t.Errorf("ConfigMap %s/%s labels %v: want namespace monitoring, grafana_dashboard=1 and the dashboard file", cm.Namespace, cm.Name, cm.Labels)
	}
	var dash struct {
		Title  string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(file, &dash); err != nil || len(dash.Panels) == 0 {
		t.Fatalf("dashboard JSON: %v, %d panels", err, len(dash.Panels))
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, `namespace="$namespace", job=~"$job"`) {
				t.Errorf("panel %q: %s does not select the dashboard's namespace and release", p.Title, tg.Expr)
			}
		}
	}

	rule := one[*monitoringv1.PrometheusRule](t, r, "PrometheusRule")
	guide, err := os.ReadFile("../../docs/KUBERNETES.md")
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(guide), -1) {
		headings[anchor(m[1])] = true
	}
	alerts := 0
	for _, g := range rule.Spec.Groups {
		for _, rl := range g.Rules {
			alerts++
			expr := rl.Expr.String()
			if strings.Contains(expr, "rumor_") && !strings.Contains(expr, `namespace="streams", job="rumor-admin"`) {
				t.Errorf("%s: %s does not select the admin Service's series", rl.Alert, expr)
			}
			u := rl.Annotations["runbook_url"]
			_, frag, _ := strings.Cut(u, "#")
			if frag != strings.ToLower(rl.Alert) || !headings[frag] {
				t.Errorf("%s: runbook_url %q, want a link to the heading %q of KUBERNETES.md", rl.Alert, u, rl.Alert)
			}
			if rl.Labels["severity"] == "" || rl.Annotations["summary"] == "" {
				t.Errorf("%s: no severity or summary", rl.Alert)
			}
		}
	}
	if alerts < 9 {
		t.Errorf("%d alerts, want the 9 KUBERNETES.md documents", alerts)
	}
}

// anchor is GitHub's anchor of a heading.
func anchor(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = regexp.MustCompile("[^a-z0-9 _-]").ReplaceAllString(h, "")
	return strings.ReplaceAll(h, " ", "-")
}
