#!/usr/bin/env bash
# Builds the granularcol Collector distribution into <repo>/.cache/bin/granularcol
# (or $GRANULARCOL_OUT). Skips the build when the binary is up to date with the
# sources. Syncs the embedded viewer page first (sync-viewer.sh).
#
#   collector-plugin/build.sh           build if needed
#   collector-plugin/build.sh --force   always rebuild
#   GRANULARCOL_OUT=/path/granularcol collector-plugin/build.sh   build elsewhere
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
bin="${GRANULARCOL_OUT:-$repo/.cache/bin/granularcol}"
bin_dir="$(dirname "$bin")"
stamp_file="$bin.stamp"
log="$bin.build.log"
force=0
[[ "${1:-}" == "--force" ]] && force=1

say() { printf '[granularcol] %s\n' "$*"; }
fail() { printf '[granularcol] ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || fail "'go' is not on PATH; install Go 1.26 or newer (https://go.dev/dl/) and retry."
go_version="$(go env GOVERSION 2>/dev/null || true)"
case "$go_version" in
  go1.2[6-9]* | go1.[3-9][0-9]* | go[2-9]*) ;;
  *) fail "Go 1.26 or newer is required, found '${go_version:-unknown}'." ;;
esac

"$here/sync-viewer.sh"
cd "$here"
# The stamp covers every input of the binary: module files, non-test Go
# sources, the embedded viewer page and the toolchain version.
stamp="$( { echo "$go_version"; find . -name '*.go' ! -name '*_test.go' -print | LC_ALL=C sort | xargs sha256sum; sha256sum go.mod go.sum granularartifactsextension/viewer/viewer.html; } | sha256sum | cut -c1-16)"
if [[ $force -eq 0 && -x "$bin" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
  say "up to date: $bin ($stamp)"
  exit 0
fi

mkdir -p "$bin_dir"
say "using $go_version; build log: $log"
say "step 1/2: downloading modules (first run on a fresh machine: a few hundred MB)"
if ! go mod download >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  fail "module download failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))."
fi

say "step 2/2: compiling (first build takes a few minutes on 2 cores; later builds are cached)"
start=$SECONDS
count=0
set +e
go build -v \
  -ldflags "-s -w -X main.version=0.1.0+$stamp" \
  -o "$bin.tmp" ./cmd/granularcol 2>&1 | tee -a "$log" | while IFS= read -r line; do
    count=$((count + 1))
    if (( count % 50 == 0 )); then
      say "  ... $count packages compiled ($(( SECONDS - start ))s)"
    fi
  done
status=${PIPESTATUS[0]}
set -e
if [[ $status -ne 0 ]]; then
  rm -f "$bin.tmp"
  echo "----- last lines of $log -----" >&2
  grep -v '^[a-zA-Z0-9._/-]*$' "$log" | tail -n 30 >&2 || true
  fail "go build failed (exit $status); see $log"
fi
mv -f "$bin.tmp" "$bin"
echo "$stamp" >"$stamp_file"
say "built $bin in $(( SECONDS - start ))s ($("$bin" --version 2>/dev/null || echo "version unknown"))"
