# syntax=docker/dockerfile:1
# check=error=true;experimental=all

# rumor's container image: a static binary on distroless, run as a non-root user.
#
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" -t rumor .
#   docker run --rm -p 8080:8080 rumor
#
# The image holds no shell: Kubernetes probes are HTTP (/healthz, /readyz) and the
# chart's preStop uses the kubelet's own sleep action. rumor writes nothing to disk,
# so it runs with a read-only root filesystem.
#
# Base images are pinned by tag and digest: the tag says what the image is, the
# digest decides which one is used. Bump both together, on purpose, for example
# with `docker buildx imagetools inspect golang:1.26.8-bookworm`.
#
# tools/dockerlint lints this file with BuildKit's own checks (`docker build
# --check`); the `check` directive above turns any warning into a build error.

# build cross-compiles a static binary on the builder's own platform (fast multi-platform builds).
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d AS build
WORKDIR /src

# Modules first, so an edit to the source does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .

ARG TARGETOS
ARG TARGETARCH
# VERSION overrides what debug.ReadBuildInfo reports ("(devel)": .git is not in the context).
ARG VERSION=""
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS="$TARGETOS" GOARCH="$TARGETARCH" \
    go build -trimpath -ldflags="-s -w -X=main.buildVersion=${VERSION}" \
        -o /out/rumor ./cmd/rumor

# distroless/static: CA certificates, tzdata and /etc/passwd with "nonroot"
# (uid 65532), and nothing else.
FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639

ARG VERSION=""
LABEL org.opencontainers.image.title="rumor" \
      org.opencontainers.image.description="Clustered Server-Sent Events broker" \
      org.opencontainers.image.source="https://github.com/rumorhq/rumor" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=build /out/rumor /usr/local/bin/rumor

# Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532

# 8080: HTTP API, SSE streams, web UI, /metrics, /healthz, /readyz.
# 7946: every node-to-node byte: memberlist gossip (UDP and TCP) and the event relay (TCP).
# With --admin-addr (the chart's admin.enabled), the UI, /metrics and the views move to that
# port; it is not exposed here because it is off by default.
EXPOSE 8080/tcp 7946/tcp 7946/udp

# rumor is PID 1: it handles SIGTERM itself and drains within --drain-timeout.
ENTRYPOINT ["rumor"]
CMD ["serve"]
