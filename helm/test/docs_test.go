package charttest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// TestDocumentedValues: every values snippet in the Kubernetes guide and
// the chart's README renders, each object decoding strictly into its
// Kubernetes type, into an environment rumor starts with; and every
// NetworkPolicy the guide shows decodes strictly too. A snippet that has
// gone stale (a renamed value, a field Kubernetes does not know) fails here.
func TestDocumentedValues(t *testing.T) {
	vals, err := chartutil.ReadValuesFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```")
	rendered := 0
	for _, doc := range []string{"../../docs/KUBERNETES.md", filepath.Join(chartDir, "README.md")} {
		text, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range block.FindAllStringSubmatch(string(text), -1) {
			snippet := m[1]
			var top map[string]any
			if err := yaml.Unmarshal([]byte(snippet), &top); err != nil {
				continue // an indented fragment of a larger values file
			}
			name := filepath.Base(doc) + " block " + string(rune('a'+i))
			if _, ok := top["apiVersion"]; ok {
				checkDocManifest(t, name, snippet)
				continue
			}
			var known, unknown []string
			for k := range top {
				if _, ok := vals[k]; ok {
					known = append(known, k)
				} else {
					unknown = append(unknown, k)
				}
			}
			if len(known) == 0 {
				continue // not values
			}
			if len(unknown) > 0 {
				t.Errorf("%s sets %v next to values %v: no such values", name, unknown, known)
				continue
			}
			t.Run(name, func(t *testing.T) {
				r := mustRender(t, release{Values: snippet})
				checkStartable(t, env(t, container(t, r.deployment(t))))
			})
			rendered++
		}
	}
	if rendered < 8 {
		t.Errorf("rendered %d documented value snippets, want the guide's", rendered)
	}
}

// checkDocManifest decodes a documented NetworkPolicy strictly.
func checkDocManifest(t *testing.T, name, snippet string) {
	t.Helper()
	js, err := yaml.YAMLToJSONStrict([]byte(snippet))
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	var tm metav1.TypeMeta
	_ = json.Unmarshal(js, &tm)
	if tm.APIVersion+"/"+tm.Kind != "networking.k8s.io/v1/NetworkPolicy" {
		return // another project's type (cert-manager)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(new(networkingv1.NetworkPolicy)); err != nil {
		t.Errorf("%s: NetworkPolicy: %v\n%s", name, err, strings.TrimSpace(snippet))
	}
}
