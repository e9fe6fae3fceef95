#!/usr/bin/env bash
# Four concurrent 512 MiB uploads to POST /v1/files (issue 12, item 12):
# the server's resident memory must stay within a few MiB of where it
# started. Runs tests/unit/test_files_upload.c's large-upload test at full
# size (the ctest run uses 16 MiB). Needs about 4 GiB free in $TMPDIR
# (spool) and /tmp (the store).
#   bench/bench_uploads.sh [build-dir] [MiB]     (default build, 512)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
mb="${2:-512}"
cmake --build "$build" --target test_files_upload >/dev/null
NUAGE_UPLOAD_MB="$mb" "$build/tests/test_files_upload" 2>&1 | grep -E "uploads of|OK|FAILED|ERROR"
