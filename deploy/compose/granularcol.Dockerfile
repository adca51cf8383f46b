# syntax=docker/dockerfile:1
# The granularcol Collector distribution (collector-plugin/) as an image.
# Build context: collector-plugin/, e.g.
#   docker build -f deploy/compose/granularcol.Dockerfile -t granularcol:dev collector-plugin
# The config is mounted (deploy/compose/*.yaml mount deploy/collector/*.yaml;
# deploy/k8s uses ConfigMaps generated from the same files).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
COPY third_party/ third_party/
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/granularcol ./cmd/granularcol \
 && mkdir -p /out/var/lib/granular/artifacts

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/granularcol /granularcol
# The artifact store's directory, owned by the nonroot user (65532) so that
# a fresh named volume mounted here inherits the ownership.
COPY --from=build --chown=65532:65532 /out/var/lib/granular /var/lib/granular
USER 65532:65532
ENV GRANULAR_LISTEN_HOST=0.0.0.0 \
    GRANULAR_ARTIFACT_DIR=/var/lib/granular/artifacts
EXPOSE 4317 4318 16700 8888
ENTRYPOINT ["/granularcol"]
CMD ["--config", "/etc/granularcol/config.yaml"]
