#!/usr/bin/env bash
# Runs `nuage bench` (pp128 / tg128) over the shared models and prints one
# markdown row per model, for comparison with llama-bench's figures in
# ../shared/README.md ("Speed reference").
# The decode column also gives bytes read per token x tokens/s as % of the
# read bandwidth measured at the start of the run (bench/roofline.sh).
#   usage: bench/bench_models.sh [THREADS] [REPS] [MODEL...]
set -u
cd "$(dirname "$0")/.."
. bench/roofline.sh
bin=${NUAGE_BIN:-./build/nuage}
shared=${NUAGE_SHARED:-../shared}
t=${1:-2}; r=${2:-3}; shift 2 2>/dev/null || shift $#
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(stories260K rand-llama-f32 rand-llama-f16 rand-llama-q8_0 rand-llama-q4_0
  rand-llama-q4_k rand-llama-q6_k rand-llama-iq4_xs rand-qwen3-q8_0 rand-qwen3moe-q4_k rand-deepseek2-q4_k)
echo "threads $t, $r repetitions, load average $(cut -d' ' -f1-3 /proc/loadavg)"
roofline_measure "$t"
echo "| model | pp128 tok/s | tg128 tok/s | MB/token | tg % roofline |"
echo "|---|---:|---:|---:|---:|"
for m in "${models[@]}"; do
  f=$m; [ -f "$f" ] || f=$shared/models/$m.gguf
  out=$("$bin" bench -m "$f" -t "$t" -r "$r" 2>&1)
  pp=$(sed -n 's/^| pp128 *| *\([^|]*\)|.*/\1/p' <<<"$out" | xargs)
  tg=$(sed -n 's/^| tg128 *| *\([^|]*\)|.*/\1/p' <<<"$out" | xargs)
  db=$(decode_bytes "$f")
  tgm=$(sed 's/ *±.*//' <<<"$tg")
  echo "| $(basename "$m" .gguf) | $pp | $tg | $(awk -v b="$db" 'BEGIN{printf "%.1f", b/1e6}') | $(roofline_pct "$tgm" "$db") |"
done
