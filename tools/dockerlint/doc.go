// Package dockerlint checks the repository's Dockerfile with BuildKit's own
// Dockerfile linter, the rules that `docker build --check` applies, offline:
// no Docker engine, no BuildKit daemon and no registry.
//
// It is a separate module so that BuildKit stays out of rumor's go.mod. It has
// no code of its own; run it with `go test ./...` from this directory, or
// `bash helm/ci.sh` from the repository root.
package dockerlint
