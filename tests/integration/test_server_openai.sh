#!/usr/bin/env bash
# Integration test of `nuage serve` with the official openai npm SDK.
#
# Starts the server on a free loopback port with stories260K (the bundled
# nuage-fast without ../shared), waits for /health, runs `node --test` in
# tests/integration/openai (after `npm ci` when node_modules is missing),
# and always stops the server. Exit 77 (skipped) when node or the SDK are
# not available.
# Env (set by ctest): NUAGE_BIN, NUAGE_SHARED_DEFAULT, NUAGE_SOURCE_DIR;
# NUAGE_SHARED overrides the data folder.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
src="${NUAGE_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
bin="${NUAGE_BIN:-$src/build/nuage}"
shared="${NUAGE_SHARED:-${NUAGE_SHARED_DEFAULT:-$src/../shared}}"
model="$shared/models/stories260K.gguf"
tests="$src/tests/integration/openai"

# Without ../shared: a random llama shaped like stories260K (n_embd 64,
# context 2048: the tests need long free-running outputs) with the bundled
# nuage-fast's vocabulary, written here by bench/make_model; the
# comparisons with llama.cpp's reference ids (helpers.mjs REF) are skipped.
model_id=stories260K
make_model="${NUAGE_MAKE_MODEL:-$(dirname "$bin")/bench/make_model}"
gen_dir=""
if [ ! -f "$shared/README.md" ] || [ ! -f "$model" ]; then
  gen_dir="$(mktemp -d "${TMPDIR:-/tmp}/nuage-openai-XXXXXX")"
  model="$gen_dir/rand-llama-64.gguf"
  model_id=rand-llama-64
  shared=""
  "$make_model" --out "$model" --type f32 --dim 64 --layers 5 --heads 8 --kv-heads 4 --ff 172 --ctx 2048 \
    --vocab-from "$src/models/nuage-fast.gguf" 2>/dev/null || { echo "cannot generate a model with $make_model"; exit 1; }
fi
if ! command -v node >/dev/null 2>&1; then
  echo "node not found: skipped"; exit 77
fi
if [ ! -d "$tests/node_modules/openai" ]; then
  if ! command -v npm >/dev/null 2>&1 || ! (cd "$tests" && npm ci --no-audit --no-fund >/dev/null 2>&1); then
    echo "cannot install the openai SDK (npm ci failed): skipped"; exit 77
  fi
fi

. "$here/server_lib.sh"

log="$(mktemp)"
pid=""
cleanup() {
  stop_server "$pid"
  rm -f "$log"
  [ -n "$gen_dir" ] && rm -rf "$gen_dir"
}
trap cleanup EXIT

"$bin" serve -m "$model" --host 127.0.0.1 --port 0 --parallel 16 --kv-blocks 2048 \
  --max-body 1M --quiet >"$log" 2>&1 &
pid=$!

port=""
for _ in $(seq 1 600); do
  port="$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$log" | head -n1)"
  if [ -n "$port" ] && health_ok "$port"; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "server exited:"; cat "$log"; exit 1; fi
  sleep 0.1
done
if [ -z "$port" ] || ! health_ok "$port"; then
  echo "server did not become ready:"; cat "$log"; exit 1
fi

cd "$tests"
NUAGE_URL="http://127.0.0.1:$port" NUAGE_SHARED="$shared" NUAGE_MODEL_ID="$model_id" node --test --test-concurrency=1 --test-timeout=600000
rc=$?

# Clean shutdown on SIGTERM, exit status 0.
kill -TERM "$pid"
wait "$pid"
src_rc=$?
pid=""
if [ $src_rc -ne 0 ]; then echo "server exit status $src_rc on SIGTERM"; cat "$log"; rc=1; fi
if grep -q "ERROR: \(AddressSanitizer\|LeakSanitizer\)\|runtime error:" "$log"; then cat "$log"; rc=1; fi
exit $rc
