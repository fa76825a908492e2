// Package watch follows files that are replaced while rumor runs: token
// keys, and TLS certificates with their keys, rotated by a Kubernetes
// Secret update or a renewal.
//
// It starts no goroutine and sets no timer: its owner calls Check when it
// wants to know (auth on the path of a token's verification, cmd/rumor on
// a TLS handshake), and Check stats the files, reading them only when a
// stat moved. It does not parse what it reads, nor decide what a bad file
// means: its owner does. It imports only the standard library, so that
// auth and cmd/rumor can both use it without importing web.
package watch

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
)

// Files follows the content of files that are replaced while rumor runs:
// a key file or a certificate and its key, rotated by a Kubernetes Secret
// update or a renewal. A check stats each file; only when a stat moved
// are they read and hashed, and only content other than what was last
// taken is handed back, so a touched or rewritten file with the same
// bytes costs nothing more. It is not safe for concurrent use: its owner
// serializes checks.
type Files struct {
	paths  []string
	max    int64
	stamps []fileStamp
	sum    [32]byte // of the content last taken
	failed string   // what the last failed check or load saw
}

// NewFiles follows paths, each of at most max bytes.
func NewFiles(max int64, paths ...string) *Files {
	return &Files{paths: paths, max: max, stamps: make([]fileStamp, len(paths))}
}

// Read reads every file now and returns their contents, in the order of
// the paths, and a hash of them all.
func (f *Files) Read() (contents [][]byte, sum [32]byte, err error) {
	h := sha256.New()
	stamps := make([]fileStamp, len(f.paths))
	for i, p := range f.paths {
		var b []byte
		if stamps[i], b, err = readFile(p, f.max); err != nil {
			return nil, sum, err
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
		contents = append(contents, b)
	}
	copy(f.stamps, stamps)
	copy(sum[:], h.Sum(nil))
	return contents, sum, nil
}

// Check returns the files' contents and hash if they changed since the
// content last taken, nil if they did not. Without force, files whose
// stats have not moved are not read.
func (f *Files) Check(force bool) (contents [][]byte, sum [32]byte, err error) {
	if !force {
		moved := false
		for i, p := range f.paths {
			s, err := statFile(p)
			if err != nil {
				return nil, sum, err
			}
			moved = moved || !s.same(f.stamps[i])
		}
		if !moved {
			return nil, sum, nil
		}
	}
	contents, sum, err = f.Read()
	if err != nil {
		return nil, sum, err
	}
	if sum == f.sum {
		f.failed = "" // touched, or back to the content in use
		return nil, sum, nil
	}
	return contents, sum, nil
}

// Take records that the content hashed to sum is in use now.
func (f *Files) Take(sum [32]byte) {
	f.sum = sum
	f.failed = ""
}

// Failed records what a failed check or load saw (an error, or the hash of
// content that does not parse) and reports whether it is new, so that the
// owner logs and counts each problem once.
func (f *Files) Failed(saw string) bool {
	if saw == f.failed {
		return false
	}
	f.failed = saw
	return true
}

// fileStamp is what a cheap stat says about a file's content: which file
// it is (a Kubernetes Secret update swaps in new files, which may have the
// old ones' size and, within one clock tick, their modification time),
// its modification time and its size.
type fileStamp struct{ fi os.FileInfo }

// statFile stamps the file at path, following symlinks: Kubernetes swaps
// one on an update, so the path is stat'ed, never an open file.
func statFile(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	return fileStamp{fi}, err
}

// same reports whether s and o stamp the same content.
func (s fileStamp) same(o fileStamp) bool {
	return s.fi != nil && o.fi != nil && os.SameFile(s.fi, o.fi) &&
		s.fi.ModTime().Equal(o.fi.ModTime()) && s.fi.Size() == o.fi.Size()
}

// readFile reads the file at path, of at most max bytes, with the stamp of
// what it read.
func readFile(path string, max int64) (fileStamp, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileStamp{}, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileStamp{}, nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return fileStamp{}, nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return fileStamp{}, nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return fileStamp{fi}, b, nil
}
