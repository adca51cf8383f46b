#!/usr/bin/env bash
# Builds Jaeger (v2, memory storage + query API, no UI) from its Go module
# into <repo>/.cache/bin/jaeger. The version is pinned by the `tool`
# directive in deploy/jaeger/go.mod and the hashes in go.sum.
#
# Skips the build when the binary is newer than go.mod and go.sum. Uses Go's
# default module and build caches, so rebuilds after the first are quick.
# Set GRANULAR_JAEGER_BIN to use an existing Jaeger v2 binary instead.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out="$repo/.cache/bin/jaeger"
pkg=github.com/jaegertracing/jaeger/cmd/jaeger

die() {
	echo "deploy/jaeger/build.sh: error: $*" >&2
	exit 1
}

if [[ -n "${GRANULAR_JAEGER_BIN:-}" ]]; then
	[[ -x "$GRANULAR_JAEGER_BIN" ]] || die "GRANULAR_JAEGER_BIN=$GRANULAR_JAEGER_BIN is not an executable file"
	echo "jaeger: using GRANULAR_JAEGER_BIN=$GRANULAR_JAEGER_BIN"
	exit 0
fi

version=$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2 }' "$here/go.mod")
[[ -n "$version" ]] || die "no github.com/jaegertracing/jaeger requirement in $here/go.mod"

if [[ -x "$out" && "$out" -nt "$here/go.mod" && "$out" -nt "$here/go.sum" ]]; then
	echo "jaeger: $out is up to date (Jaeger $version)"
	exit 0
fi

command -v go >/dev/null 2>&1 ||
	die "go is not on PATH; Jaeger $version is built from source and needs Go (the version go.mod names, see https://go.dev/dl/)"

cd "$here"
start=$SECONDS
echo "building Jaeger $version from its Go module (first time takes minutes)..."
echo "  $(go version); module cache $(go env GOMODCACHE)"

# Resolving the package graph downloads every module the build needs. Only
# go.mod/go.sum decide versions: a missing go.sum entry is an error here
# rather than a silent upgrade (GOFLAGS=-mod=mod would allow that).
echo "  downloading modules (GOPROXY=$(go env GOPROXY))..."
if ! go list -deps "$pkg" >/dev/null; then
	die "resolving/downloading Jaeger's Go modules failed (see the go error above). Check that the Go module proxy ($(go env GOPROXY)) is reachable and that go.mod/go.sum are intact."
fi

echo "  compiling $pkg..."
mkdir -p "$(dirname "$out")"
ldflags="-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion=$version"
if ! go build -ldflags "$ldflags" -o "$out.tmp" "$pkg"; then
	rm -f "$out.tmp"
	die "go build $pkg failed (see the go error above)"
fi
mv -f "$out.tmp" "$out"
echo "jaeger: built $out ($(du -h "$out" | cut -f1)) in $((SECONDS - start))s"
