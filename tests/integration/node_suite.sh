# node_suite.sh - sourced by the integration scripts that run a group of
# tests/integration/openai/*.test.mjs files with `node --test` against
# servers the tests start themselves (test_batch.sh, test_platform.sh,
# test_server_responses.sh).
#
# nuage_node_suite GLOB ENABLE_VAR
#   Runs the files matching GLOB (in tests/integration/openai) with
#   ENABLE_VAR=1 (the files skip themselves without it), NUAGE_BIN,
#   NUAGE_SHARED (empty without ../shared's stories260K: the tests then use
#   the bundled models/nuage-fast.gguf, so a bare clone runs them too) and
#   NUAGE_TEST_SLOW (4 under the sanitizers, which are several times
#   slower). The store lives in a temporary folder removed at exit, so the
#   user's own database is never touched. Returns node's status, or 77
#   (skipped) when node or the SDK are missing.
# Env (set by ctest): NUAGE_BIN, NUAGE_SHARED_DEFAULT, NUAGE_SOURCE_DIR;
# NUAGE_SHARED overrides the data folder.
nuage_node_suite() {
  local glob="$1" enable="$2"
  local here src bin shared tests tmp slow files
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  src="${NUAGE_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
  bin="${NUAGE_BIN:-$src/build/nuage}"
  shared="${NUAGE_SHARED:-${NUAGE_SHARED_DEFAULT:-$src/../shared}}"
  tests="$src/tests/integration/openai"
  if [ ! -f "$shared/models/stories260K.gguf" ]; then shared=""; fi
  export NUAGE_SOURCE_DIR="$src"
  if ! command -v node >/dev/null 2>&1; then
    echo "node not found: skipped"; return 77
  fi
  if [ ! -d "$tests/node_modules/openai" ]; then
    if ! command -v npm >/dev/null 2>&1 || ! (cd "$tests" && npm ci --no-audit --no-fund >/dev/null 2>&1); then
      echo "cannot install the openai SDK (npm ci failed): skipped"; return 77
    fi
  fi
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/nuage-node-XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  export XDG_DATA_HOME="$tmp" NUAGE_DB="" NUAGE_URL="" NUAGE_API_KEY=""
  slow=1
  if nm -C "$bin" 2>/dev/null | grep -q __asan_init; then slow=4; fi
  cd "$tests" || return 1
  # shellcheck disable=SC2086
  files=$(ls $glob)
  # shellcheck disable=SC2086
  env "$enable=1" NUAGE_BIN="$bin" NUAGE_SHARED="$shared" NUAGE_TEST_SLOW="$slow" \
    node --test --test-concurrency=1 --test-timeout=900000 $files
}
