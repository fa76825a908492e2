#!/usr/bin/env bash
# Tests the Helm chart (helm/test) and lints the Dockerfile (tools/dockerlint).
# Both are separate Go modules, so Helm, Kubernetes and BuildKit stay out of
# rumor's go.mod and out of the root `go test ./...`.
#
# Run from anywhere: bash helm/ci.sh
# Needs Go and the Go module proxy (for a cold module cache); no cluster, no
# Docker engine, no other network.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# -count=1: the chart and the Dockerfile live outside these modules, and go's
# test cache does not notice changes to files outside a module.
#
# Cost: a cold module cache and build cache mean downloading and compiling the
# Helm SDK, client-go and BuildKit (several minutes on 2 cores);
# tools/dockerlint's TestBuildStage also compiles rumor the way the
# Dockerfile does (CGO_ENABLED=0, -trimpath), a minute or two when cold. Warm,
# the whole script takes about a minute.
for mod in helm/test tools/dockerlint; do
	echo "== go vet, go test: $mod"
	(
		cd "$root/$mod"
		unformatted="$(gofmt -l .)"
		if [[ -n "$unformatted" ]]; then
			echo "gofmt needed in $mod: $unformatted" >&2
			exit 1
		fi
		go vet ./...
		go test -count=1 -timeout 20m ./...
	)
done
