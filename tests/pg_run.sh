#!/usr/bin/env bash
# pg_run.sh PROGRAM [ARGS...] - run a store test program against a
# throwaway PostgreSQL server (scripts/pg_temp.sh), with
# NUAGE_TEST_PG_URL set (tests/unit/test_store_util.h; NUAGE_TEST_PG_DIR
# and NUAGE_PG_TEMP let a test halt and resume the server), then stop the
# server. Exit 77 (ctest: skipped) when PostgreSQL is not installed.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if ! "$here/scripts/pg_temp.sh" check; then
  echo "skipped: PostgreSQL server binaries not installed (apt-get install postgresql)"
  exit 77
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/nuage-pgtest-XXXXXX")
trap '"$here/scripts/pg_temp.sh" stop "$dir"' EXIT
url=$(PG_TEMP_FAST=1 "$here/scripts/pg_temp.sh" start "$dir") || exit 1
NUAGE_TEST_PG_URL=$url NUAGE_TEST_PG_DIR=$dir NUAGE_PG_TEMP="$here/scripts/pg_temp.sh" "$@"
