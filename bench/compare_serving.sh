#!/usr/bin/env bash
# Serving under load, nuage against llama-server, same file, same run:
# each server is started alone on the machine (the other one stopped), fed
# by bench/loadgen at each client count (unique prompts: loadgen's run
# seed differs per run, so no prefix cache hides prefill), then stopped.
# llama-server is not part of nuage: build it beside the project and point
# LLAMA_SERVER at it.
#   usage: LLAMA_SERVER=/path/llama-server bench/compare_serving.sh MODEL.gguf [CLIENTS...]
#   (clients 1 16 32 by default). Environment: THREADS=2, PARALLEL=32
#   (slots of both servers), PROMPT=64 and OUT=64 (tokens per request),
#   REQS=2 (requests per client; at least 4 at 1 client), VOCAB=32000,
#   SHARED_PREFIX=N (loadgen --shared-prefix: report those runs apart).
# Prints the load before and after and one markdown row per client count:
# tokens/s, time to first token p50/p99 and inter-token latency p50/p99 of
# both, and the tokens/s and TTFT p99 ratios.
set -u
cd "$(dirname "$0")/.."
bin=${NUAGE_BIN:-./build/nuage}
lg=${LOADGEN:-./build/bench/loadgen}
ls=${LLAMA_SERVER:?set LLAMA_SERVER to a llama-server binary}
f=${1:?usage: compare_serving.sh MODEL.gguf [CLIENTS...]}; shift
clients=("$@"); [ ${#clients[@]} -gt 0 ] || clients=(1 16 32)
t=${THREADS:-2}; np=${PARALLEL:-32}; p=${PROMPT:-64}; o=${OUT:-64}; rq=${REQS:-2}
port=${PORT:-18480}
ctx=$((p + o + 16))
sp=(); [ -n "${SHARED_PREFIX:-}" ] && sp=(--shared-prefix "$SHARED_PREFIX")
tmp=$(mktemp -d); trap 'kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT; trap 'exit 1' INT TERM
srv=

wait_ready() { # $1 = URL path that answers 200 once the model is loaded (/health on both)
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port$1" >/dev/null 2>&1 && return 0
    kill -0 "$srv" 2>/dev/null || return 1
    sleep 0.5
  done
  return 1
}
run_clients() { # $1 = name: loadgen output per client count into $tmp/$1.$c
  for c in "${clients[@]}"; do
    n=$((c * rq)); [ "$n" -ge 4 ] || n=4
    "$lg" --port "$port" -c "$c" -n "$n" --prompt-tokens "$p" --max-tokens "$o" \
      --vocab "${VOCAB:-32000}" "${sp[@]}" >"$tmp/$1.$c" 2>&1 || echo "$1 at $c clients: loadgen failed: $(tail -2 "$tmp/$1.$c")" >&2
  done
}
stop() { kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null; srv=; }

echo "model $(basename "$f"), threads $t, $np slots, prompt $p / output $o tokens, $rq requests per client, ${SHARED_PREFIX:+shared prefix $SHARED_PREFIX, }load average $(cut -d' ' -f1-3 /proc/loadavg)"
# nuage: one deployment, KV pool sized for every slot's whole sequence
"$bin" serve -m "$f" --no-db --quiet --port "$port" -t "$t" --parallel "$np" --ctx "$ctx" \
  --kv-blocks $(((ctx + 15) / 16 * np)) >"$tmp/nuage.log" 2>&1 & srv=$!
if wait_ready /health; then run_clients nuage; else echo "nuage serve did not start: $(tail -3 "$tmp/nuage.log")" >&2; fi
stop
# llama-server: the same slots, each with the same context
"$ls" -m "$f" --port "$port" -t "$t" -tb "$t" -np "$np" -c $((ctx * np)) --no-webui >"$tmp/llama.log" 2>&1 & srv=$!
if wait_ready /health; then run_clients llama; else echo "llama-server did not start: $(tail -3 "$tmp/llama.log")" >&2; fi
stop

get() { # $1 = file, $2 = field: tps, ttft50, ttft99, itl50, itl99
  [ -f "$1" ] || { echo -; return; }
  case $2 in
    tps) sed -n 's/.*: \([0-9.]*\) tok\/s/\1/p' "$1" ;;
    ttft50) sed -n 's/^time to first token: p50 \([0-9.]*\) ms.*/\1/p' "$1" ;;
    ttft99) sed -n 's/^time to first token: .*p99 \([0-9.]*\) ms/\1/p' "$1" ;;
    itl50) sed -n 's/^inter-token latency: p50 \([0-9.]*\) ms.*/\1/p' "$1" ;;
    itl99) sed -n 's/^inter-token latency: .*p99 \([0-9.]*\) ms/\1/p' "$1" ;;
  esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if (a>0 && b>0) printf "%.2f", a/b; else print "-"}'; }
echo "| clients | nuage tok/s | llama-server tok/s | ratio | nuage TTFT p50 / p99 ms | llama-server TTFT p50 / p99 ms | TTFT p99 ratio | nuage ITL p50 / p99 ms | llama-server ITL p50 / p99 ms |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for c in "${clients[@]}"; do
  a=$tmp/nuage.$c; b=$tmp/llama.$c
  echo "| $c | $(get "$a" tps) | $(get "$b" tps) | $(ratio "$(get "$a" tps)" "$(get "$b" tps)") |" \
       "$(get "$a" ttft50) / $(get "$a" ttft99) | $(get "$b" ttft50) / $(get "$b" ttft99) | $(ratio "$(get "$a" ttft99)" "$(get "$b" ttft99)") |" \
       "$(get "$a" itl50) / $(get "$a" itl99) | $(get "$b" itl50) / $(get "$b" itl99) |"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
