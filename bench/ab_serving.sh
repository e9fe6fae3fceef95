#!/usr/bin/env bash
# A/B of two `nuage serve` binaries under bench/loadgen, alternated on the
# same machine in the same run (a shared machine's load drifts: alternate
# A/B per client count and repeat, never run all of A then all of B).
# Each run starts a fresh server (no prefix cache carried over; loadgen's
# prompts are unique per run anyway), waits for /health, runs loadgen with
# 2 requests per client (a closed loop: each client's second request
# arrives when its first ends), prints loadgen's summary and stops it.
#   usage: bench/ab_serving.sh OLD_NUAGE NEW_NUAGE MODEL.gguf
#   environment: CLIENTS="16 32", REPS="1 2", P=200 (prompt tokens),
#   O=32 (output tokens), THREADS=2, PARALLEL=32, VOCAB=32000,
#   EXTRA_A / EXTRA_B (extra serve flags, e.g. "--step-tokens 256"),
#   OUTDIR (raw loadgen outputs, default a temporary directory)
set -u
cd "$(dirname "$0")/.."
a=${1:?usage: ab_serving.sh OLD_NUAGE NEW_NUAGE MODEL.gguf}; b=${2:?}; m=${3:?}
lg=${LOADGEN:-./build/bench/loadgen}
P=${P:-200}; O=${O:-32}; np=${PARALLEL:-32}; t=${THREADS:-2}; port=${PORT:-18731}
ctx=$((P + O + 16))
out=${OUTDIR:-$(mktemp -d)}
srv=; trap 'kill $srv 2>/dev/null' EXIT
for rep in ${REPS:-1 2}; do
  for c in ${CLIENTS:-16 32}; do
    for side in A B; do
      if [ $side = A ]; then bin=$a; extra=${EXTRA_A:-}; else bin=$b; extra=${EXTRA_B:-}; fi
      # shellcheck disable=SC2086
      "$bin" serve -m "$m" --no-db --quiet --port "$port" -t "$t" --parallel "$np" --ctx "$ctx" \
        --kv-blocks $(((ctx + 15) / 16 * np)) $extra >"$out/srv.$side.log" 2>&1 & srv=$!
      for _ in $(seq 240); do curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.5; done
      echo "== rep $rep $side clients $c, load $(cut -d' ' -f1 /proc/loadavg)"
      "$lg" --port "$port" -c "$c" -n $((2 * c)) --prompt-tokens "$P" --max-tokens "$O" \
        --vocab "${VOCAB:-32000}" >"$out/$rep.$side.$c" 2>&1
      tail -3 "$out/$rep.$side.$c"
      kill "$srv"; wait "$srv" 2>/dev/null; srv=
    done
  done
done
