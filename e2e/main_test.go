package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the tests, or, when the test binary is re-executed inside a
// network namespace, the forwarder (see forward_test.go).
func TestMain(m *testing.M) {
	if sock := os.Getenv(forwardEnv); sock != "" {
		os.Exit(forwardMain(sock))
	}
	code := m.Run()
	binary.cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// rumorBuild is the rumor binary the tests run, built once per test binary.
type rumorBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

var binary rumorBuild

func (b *rumorBuild) cleanup() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// rumorBinary returns the path of a rumor binary: $RUMOR_E2E_BIN when set,
// else one built from ./cmd/rumor, with the race detector when these tests
// run with it, so that the nodes are checked for races too.
func rumorBinary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("RUMOR_E2E_BIN"); p != "" {
		return p
	}
	// go test caches a passing run by the test binary, the environment
	// variables and the files the test read; the build below is a
	// subprocess, so read the sources here to make a change to any of them
	// run these tests again.
	if err := readSources(".."); err != nil {
		tb.Fatalf("read rumor's sources: %v", err)
	}
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "rumor-e2e-bin-")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "rumor")
		args := []string{"build", "-o", binary.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "github.com/rumorhq/rumor/cmd/rumor")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), args...)
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("go %v: %v\n%s", args, err, out)
		}
	})
	if binary.err != nil {
		tb.Fatalf("build rumor: %v", binary.err)
	}
	return binary.path
}

// readSources reads every file the rumor binary is built from.
func readSources(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "e2e", "helm", "tools", "docs", "node_modules", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		_, err = os.ReadFile(path)
		return err
	})
}
