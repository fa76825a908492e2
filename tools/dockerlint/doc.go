// Package dockerlint checks the repository's Dockerfile with BuildKit's own
// Dockerfile linter, the rules that `docker build --check` applies, offline:
// no Docker engine, no BuildKit daemon and no registry.
//
// TestBuildStage also runs the Dockerfile's own `go build` command on the
// build context as .dockerignore leaves it, and checks the binary is static
// and stamped with VERSION; -short skips it.
//
// It is a separate module so that BuildKit stays out of rumor's go.mod. It has
// no code of its own; run it with `go test -count=1 ./...` from this directory, or
// `bash helm/ci.sh` from the repository root.
package dockerlint
