# syntax=docker/dockerfile:1
# The demo service (examples/, binary demo-service) as an image, built with
# --cfg tokio_unstable so Granular sees task polls and spawns.
# Build context: the repository root, e.g.
#   docker build -f deploy/compose/demo.Dockerfile -t granular-demo:dev .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
ENV RUSTFLAGS="--cfg tokio_unstable"
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p granular-examples --bin demo-service \
 && cp target/release/demo-service /demo-service

FROM debian:bookworm-slim
COPY --from=build /demo-service /usr/local/bin/demo-service
USER 65532:65532
ENV DEMO_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/demo-service"]
