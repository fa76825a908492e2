package dockerlint

import (
	"debug/elf"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// TestBuildStage runs the Dockerfile's own `go build` command on a copy of
// the build context as .dockerignore leaves it, then checks the binary the
// image would hold: static, and `rumor version` prints the stamped VERSION.
// This catches a .dockerignore that drops a file the build needs (the
// embedded web UI, say) and a version stamp that silently does nothing; it
// needs no Docker engine. It compiles rumor, so -short skips it.
func TestBuildStage(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles rumor; run without -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the image is linux; the binary is checked as ELF")
	}
	goBuild := buildCommand(t)

	ctxDir := t.TempDir()
	copyContext(t, repoRoot, ctxDir)
	out := t.TempDir()
	const version = "v9.9.9-dockerlint"
	cmd := exec.Command("sh", "-c", strings.ReplaceAll(goBuild, "/out/", out+"/"))
	cmd.Dir = ctxDir
	cmd.Env = append(os.Environ(), "TARGETOS="+runtime.GOOS, "TARGETARCH="+runtime.GOARCH, "VERSION="+version)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the Dockerfile's build command failed on the build context:\n%s\n%s", goBuild, b)
	}
	bin := filepath.Join(out, "rumor")

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	libs, _ := f.ImportedLibraries()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || len(libs) > 0 {
			t.Errorf("rumor is dynamically linked (%v); distroless/static has no libc", libs)
			break
		}
	}

	got, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("rumor version: %v\n%s", err, got)
	}
	if !strings.Contains(string(got), version) {
		t.Errorf("rumor version printed %q, want the stamped %s (is main.buildVersion declared?)", got, version)
	}
}

// buildCommand returns the shell command of the build stage's RUN go build.
func buildCommand(tb testing.TB) string {
	tb.Helper()
	for _, st := range parseStages(tb, readFile(tb, "Dockerfile")) {
		for _, c := range st.Commands {
			if r, ok := c.(*instructions.RunCommand); ok && r.PrependShell {
				if line := strings.Join(r.CmdLine, " "); strings.Contains(line, "go build") {
					return line
				}
			}
		}
	}
	tb.Fatal("no RUN ... go build in the Dockerfile")
	return ""
}

// copyContext copies src to dst minus what .dockerignore excludes, which is
// what `docker build` sends as the build context.
func copyContext(tb testing.TB, src, dst string) {
	tb.Helper()
	f, err := os.Open(filepath.Join(src, ".dockerignore"))
	if err != nil {
		tb.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		tb.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		tb.Fatal(err)
	}
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		// With no "!" exceptions in .dockerignore, an excluded directory
		// excludes everything below it.
		if ignored, err := pm.MatchesOrParentMatches(rel); err != nil || ignored {
			if d.IsDir() && err == nil && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			return copyFile(path, target)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("copy build context: %v", err)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
