// Package e2e holds rumor's multi-process cluster tests: real `rumor serve`
// processes on 127.x.y.z addresses (and, for partitions, in network
// namespaces the tests create), publishers and subscribers that hop between
// nodes with Last-Event-ID, faults (kill -9, SIGTERM and restart, a frozen
// and a throttled node, partition), and a checker of the delivery promises.
// It holds only tests; docs/CHAOS.md says how to run them and what they
// measured.
package e2e
