// Package charttest tests the Helm chart in helm/rumor with the Helm v3 SDK:
// helm's linter, rendering through helm's engine for several value sets,
// strict decoding of every object into its Kubernetes API type, and the
// wiring that a rumor cluster depends on (gossip Service and join address,
// ports and probes, shutdown timing, the gossip key across upgrades, schema
// errors). It needs neither a cluster nor network access.
//
// It is a separate module so that Helm and the Kubernetes libraries stay out
// of rumor's go.mod. Run it with `go test -count=1 ./...` from this directory
// (the chart lives outside the module, so go's test cache would not notice
// chart edits), or `bash helm/ci.sh` from the repository root.
package charttest
