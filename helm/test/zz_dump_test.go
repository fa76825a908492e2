package charttest

import (
	"os"
	"testing"
)

func TestZZDump(t *testing.T) {
	vs := valueSets[len(valueSets)-1]
	if os.Getenv("DUMP_SET") != "" {
		for _, v := range valueSets {
			if v.name == os.Getenv("DUMP_SET") {
				vs = v
			}
		}
	}
	r := mustRender(t, vs.rel)
	for name, f := range r.Files {
		t.Logf("==== %s\n%s", name, f)
	}
}
