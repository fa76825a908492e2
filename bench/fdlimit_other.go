//go:build !unix

package bench

import "errors"

// OpenFileLimit is the process's limit on open files; unknown here.
func OpenFileLimit() (uint64, error) { return 0, errors.New("unknown on this system") }
