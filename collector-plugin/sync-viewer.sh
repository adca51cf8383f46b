#!/usr/bin/env bash
# Copies the viewer page, bridge/src/viewer/viewer.html, to where the
# granular_artifacts extension embeds it from (a Go module cannot embed a file
# outside itself): collector-plugin/granularartifactsextension/viewer/viewer.html.
# collector-plugin/build.sh runs it before building; a Go test
# (TestEmbeddedViewerMatchesSource) fails while the two differ.
#
#   collector-plugin/sync-viewer.sh           copy if the source exists
#   collector-plugin/sync-viewer.sh --check   exit 1 if the copy differs
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/../bridge/src/viewer/viewer.html"
dst="$here/granularartifactsextension/viewer/viewer.html"

if [[ ! -f "$src" ]]; then
  echo "[sync-viewer] no $src: keeping the embedded copy" >&2
  exit 0
fi
if cmp -s "$src" "$dst"; then
  exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
  echo "[sync-viewer] $dst differs from $src: run collector-plugin/sync-viewer.sh" >&2
  exit 1
fi
cp "$src" "$dst.tmp"
mv -f "$dst.tmp" "$dst"
echo "[sync-viewer] copied $src to $dst" >&2
