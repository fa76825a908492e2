//go:build unix

package bench

import "syscall"

// OpenFileLimit is the process's limit on open files (sockets included).
func OpenFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	return uint64(l.Cur), nil
}
