package watch

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFiles: content comes back only when it differs from what was last
// taken; a touch or a rewrite with the same bytes does not count, and each
// failure is new once.
func TestFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(a, "one")
	write(b, "two")
	f := NewFiles(16, a, b)
	got, sum, err := f.Read()
	if err != nil || len(got) != 2 || string(got[0]) != "one" || string(got[1]) != "two" {
		t.Fatalf("Read = %q, %v", got, err)
	}
	f.Take(sum)

	if got, _, err := f.Check(false); got != nil || err != nil {
		t.Errorf("Check with nothing changed = %q, %v; want nil", got, err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(a, later, later); err != nil {
		t.Fatal(err)
	}
	if got, _, err := f.Check(false); got != nil || err != nil {
		t.Errorf("Check after a touch = %q, %v; want nil (same bytes)", got, err)
	}
	if got, _, err := f.Check(true); got != nil || err != nil {
		t.Errorf("forced Check of the same bytes = %q, %v; want nil", got, err)
	}

	// A new file swapped in, as Kubernetes does, with the old one's size
	// (and maybe, within a clock tick, its modification time).
	write(b+".new", "TWO")
	if err := os.Rename(b+".new", b); err != nil {
		t.Fatal(err)
	}
	got, sum2, err := f.Check(false)
	if err != nil || len(got) != 2 || string(got[1]) != "TWO" || sum2 == sum {
		t.Fatalf("Check after a change = %q, %v, want the new content with a new hash", got, err)
	}
	// Not taken (say it did not parse): the same content is offered again
	// on a forced check, and reported once.
	if got, _, _ := f.Check(true); got == nil {
		t.Error("content not taken was not offered again")
	}
	if !f.Failed("bad") || f.Failed("bad") || !f.Failed("worse") {
		t.Error("Failed does not report each new problem exactly once")
	}
	f.Take(sum2)
	if f.Failed("worse") != true {
		t.Error("Take did not forget the last failure")
	}

	write(a, "far too long for sixteen bytes")
	if _, _, err := f.Check(false); err == nil {
		t.Error("Check of a file over the limit: no error")
	}
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Check(false); err == nil {
		t.Error("Check of a missing file: no error")
	}
}
