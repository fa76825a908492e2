package charttest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
)

// TestReadmeDocumentsEveryValue: every value in values.yaml has a row in the
// chart's README (itself or an enclosing object, such as `resources`), and
// every row names a value that exists.
func TestReadmeDocumentsEveryValue(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ReadValuesFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([A-Za-z0-9_.]+)` \\|")
	documented := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = true
	}
	if len(documented) == 0 {
		t.Fatal("README has no value table")
	}

	// paths holds every key; leaves the ones whose value is not a non-empty
	// object. A leaf must be documented, itself or through an enclosing key.
	var paths, leaves []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			p := prefix + k
			paths = append(paths, p)
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
				walk(p+".", sub)
			} else {
				leaves = append(leaves, p)
			}
		}
	}
	walk("", vals)
	slices.Sort(leaves)

	for _, p := range leaves {
		if !isDocumented(p, documented) {
			t.Errorf("values.yaml key %s has no row in README.md", p)
		}
	}
	for k := range documented {
		if !slices.Contains(paths, k) {
			t.Errorf("README.md documents %s, which values.yaml does not have", k)
		}
	}
}

func isDocumented(path string, documented map[string]bool) bool {
	for {
		if documented[path] {
			return true
		}
		i := strings.LastIndex(path, ".")
		if i < 0 {
			return false
		}
		path = path[:i]
	}
}
