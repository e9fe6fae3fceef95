#!/usr/bin/env bash
# Integration tests of the Responses API (POST /v1/responses and its
# stored state) through the official openai npm SDK: runs
# tests/integration/openai/responses*.test.mjs with `node --test`. Each
# test file starts its own `nuage serve` on loopback with a temporary
# database and configuration (two tenants with keys, a router deployment)
# and stops it. Exit 77 (skipped) when node or the SDK are missing.
# Env (set by ctest): NUAGE_BIN, NUAGE_SHARED_DEFAULT, NUAGE_SOURCE_DIR;
# NUAGE_SHARED overrides the data folder.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
src="${NUAGE_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
bin="${NUAGE_BIN:-$src/build/nuage}"
shared="${NUAGE_SHARED:-${NUAGE_SHARED_DEFAULT:-$src/../shared}}"
tests="$src/tests/integration/openai"

# The model: ../shared's stories260K when present, else the bundled
# models/nuage-fast.gguf (platform_helpers.mjs).
if [ ! -f "$shared/models/stories260K.gguf" ]; then shared=""; fi
export NUAGE_SOURCE_DIR="$src"
if ! command -v node >/dev/null 2>&1; then
  echo "node not found: skipped"; exit 77
fi
if [ ! -d "$tests/node_modules/openai" ]; then
  if ! command -v npm >/dev/null 2>&1 || ! (cd "$tests" && npm ci --no-audit --no-fund >/dev/null 2>&1); then
    echo "cannot install the openai SDK (npm ci failed): skipped"; exit 77
  fi
fi

# Never touch the user's own store.
tmp="$(mktemp -d "${TMPDIR:-/tmp}/nuage-responses-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export XDG_DATA_HOME="$tmp" NUAGE_DB="" NUAGE_URL="" NUAGE_API_KEY=""

# The sanitizer build is several times slower: scale the tests' timeouts.
slow=1
if nm -C "$bin" 2>/dev/null | grep -q __asan_init; then slow=4; fi

cd "$tests"
files=$(ls responses*.test.mjs)
NUAGE_RESPONSES_TESTS=1 NUAGE_BIN="$bin" NUAGE_SHARED="$shared" NUAGE_TEST_SLOW="$slow" \
  node --test --test-concurrency=1 --test-timeout=900000 $files
