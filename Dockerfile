# Manager (operator) image: a static binary on distroless, running as nonroot.
# Build with `make docker-build` (passes VERSION), or
#   docker build --build-arg VERSION=v0.1.0 -t ghcr.io/deltapipeline/deltapipeline-operator:v0.1.0 .
# VERSION is stamped into the binary; it is also the tag of the worker image
# the manager gives pipelines that do not name one, so build both images with
# the same VERSION.

# The builder runs on the build machine's platform and cross-compiles, which
# is fast and needs no emulation for multi-platform builds.
FROM --platform=$BUILDPLATFORM golang:1.26.8 AS builder
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev

WORKDIR /workspace
# Dependencies first, so source edits reuse the module download layer.
COPY go.mod go.sum ./
RUN go mod download

COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/

RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/deltapipeline/deltapipeline/internal/version.Version=${VERSION}" \
      -o /out/manager ./cmd/manager

FROM gcr.io/distroless/static:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="deltapipeline-operator" \
      org.opencontainers.image.description="Operator for DeltaPipeline: delta to cumulative OpenTelemetry metrics" \
      org.opencontainers.image.source="https://github.com/deltapipeline/deltapipeline" \
      org.opencontainers.image.version="${VERSION}"
WORKDIR /
COPY --from=builder /out/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
