#!/usr/bin/env bash
# vendor-console.sh - re-fetch the console's vendored chart library
# (uPlot, MIT) at its pinned version with `npm pack` and copy its minified
# script, stylesheet and licence into console/vendor/. The build never
# runs this (it needs the npm registry); run it by hand to check or to
# move the pin, then commit console/vendor/.
#   scripts/vendor-console.sh            # the pinned version
#   UPLOT_VERSION=1.6.32 scripts/vendor-console.sh
set -euo pipefail
ver="${UPLOT_VERSION:-1.6.31}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/console/vendor"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$ver" >/dev/null && tar xzf "uplot-$ver.tgz")
mkdir -p "$out"
cp "$tmp/package/dist/uPlot.iife.min.js" "$out/uPlot.iife.min.js"
cp "$tmp/package/dist/uPlot.min.css" "$out/uPlot.min.css"
cp "$tmp/package/LICENSE" "$out/uPlot.LICENSE"
grep -q "v$ver" "$out/uPlot.iife.min.js" || { echo "vendor-console: uPlot.iife.min.js does not say v$ver" >&2; exit 1; }
echo "console/vendor: uPlot $ver ($(wc -c <"$out/uPlot.iife.min.js") bytes)"
