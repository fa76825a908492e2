// Package watchtest updates files the ways rumor's watch package must
// follow: a rename over the old file, as tools that update files
// atomically (cert-manager, most editors) do, and a Kubernetes Secret
// volume's symlink swap. Tests of code that follows files (auth's key
// files, cmd/rumor's certificates) use it instead of each writing their
// own.
package watchtest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Replace writes content next to path and renames it over path.
func Replace(tb testing.TB, path, content string) {
	tb.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

// Volume lays out files like a Kubernetes Secret volume: dir/NAME is a
// symlink to ..data/NAME, and ..data a symlink to a timestamped directory
// that holds the files. Update writes a new directory and swaps ..data.
type Volume struct {
	dir string
	gen int
}

// NewVolume makes a volume in a temporary directory with files, by name.
func NewVolume(tb testing.TB, files map[string]string) *Volume {
	tb.Helper()
	v := &Volume{dir: tb.TempDir()}
	v.Update(tb, files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(v.dir, name)); err != nil {
			tb.Fatal(err)
		}
	}
	return v
}

// Path is where the file name is read, as a pod mounting the volume does.
func (v *Volume) Path(name string) string { return filepath.Join(v.dir, name) }

// Update replaces the files at once, as the kubelet does on a Secret
// update: a new timestamped directory, then ..data renamed to it.
func (v *Volume) Update(tb testing.TB, files map[string]string) {
	tb.Helper()
	v.gen++
	gen := fmt.Sprintf("..2026_01_01_00_00_%02d.%d", v.gen, v.gen)
	if err := os.Mkdir(filepath.Join(v.dir, gen), 0o755); err != nil {
		tb.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(v.dir, gen, name), []byte(content), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(gen, tmp); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		tb.Fatal(err)
	}
}
