#!/usr/bin/env bash
# Four concurrent 512 MiB uploads to POST /v1/files (issue 12, item 12)
# and two concurrent downloads of one: the server's resident memory must
# stay within a few MiB of where it started; and store reads must stay
# under 200 ms while a 512 MiB upload is copied into the store. Runs tests/unit/test_files_upload.c's large-upload test at full
# size (the ctest run uses 16 MiB). Needs about 4 GiB free in $TMPDIR
# (spool) and /tmp (the store).
#   bench/bench_uploads.sh [build-dir] [MiB]     (default build, 512)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
mb="${2:-512}"
cmake --build "$build" --target test_files_upload >/dev/null
NUAGE_UPLOAD_MB="$mb" NUAGE_LOCK_MB="$mb" "$build/tests/test_files_upload" 2>&1 |
  grep -E "uploads of|downloads of|during a|OK|FAILED|ERROR"
