#!/usr/bin/env bash
# Side-by-side prefill/decode benchmark of nuage and llama.cpp on the same
# files in the same run (the machines are shared: only figures taken
# together are comparable). llama.cpp is not part of nuage: build it
# elsewhere and point LLAMA_BENCH at its llama-bench binary.
#   usage: LLAMA_BENCH=/path/llama-bench bench/compare_llamacpp.sh THREADS REPS MODEL.gguf...
#   PP="512 2048" (prompt sizes, each one batch on an empty cache) and
#   TG=128 (tokens decoded one at a time from an empty cache) by default.
# The real-shape files (gpt-oss-20b MXFP4, Gemma 3 1B / 4B) come from
# bench/make_model --arch; see its header. Prints the load before and
# after, and one markdown row per model and test: nuage t/s, llama.cpp
# t/s, ratio; decode rows also give each side's bytes per token x tokens/s
# as % of the read bandwidth bench/bench_bandwidth measures at the start
# of the same run (bench/roofline.sh; BW_PASSES=5, BW_MIB=2048).
set -u
cd "$(dirname "$0")/.."
. bench/roofline.sh
bin=${NUAGE_BIN:-./build/nuage}
lb=${LLAMA_BENCH:?set LLAMA_BENCH to a llama-bench binary}
t=${1:-2}; r=${2:-3}; shift 2
pps=${PP:-512 2048}; tg=${TG:-128}
nw=(); [ -n "${NO_WARMUP:-}" ] && nw=(--no-warmup)
echo "threads $t, $r repetitions${nw:+, no warm-up}, pp ${pps// /,} / tg$tg, load average $(cut -d' ' -f1-3 /proc/loadavg), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
roofline_measure "$t"
echo "| model | test | nuage t/s | llama.cpp t/s | ratio | nuage % roofline | llama.cpp % roofline |"
echo "|---|---|---:|---:|---:|---:|---:|"
for f in "$@"; do
  # nuage: one run per prompt size (its bench takes one -p), then decode
  declare -A nv=()
  for p in $pps; do
    out=$("$bin" bench -m "$f" -t "$t" -r "$r" -p "$p" -n 0 "${nw[@]}" 2>&1)
    nv[pp$p]=$(sed -n "s/^| pp$p *| *\([0-9.]*\).*/\1/p" <<<"$out")
    [ -n "${nv[pp$p]}" ] || echo "nuage pp$p failed: $(tail -2 <<<"$out")" >&2
  done
  out=$("$bin" bench -m "$f" -t "$t" -r "$r" -p 0 -n "$tg" "${nw[@]}" 2>&1)
  nv[tg$tg]=$(sed -n "s/^| tg$tg *| *\([0-9.]*\).*/\1/p" <<<"$out")
  [ -n "${nv[tg$tg]}" ] || echo "nuage tg$tg failed: $(tail -2 <<<"$out")" >&2
  # llama.cpp: every test in one llama-bench call
  lout=$("$lb" -m "$f" -t "$t" -r "$r" -p "${pps// /,}" -n "$tg" "${nw[@]}" -o csv 2>/dev/null)
  pick() { # $1 = n_prompt, $2 = n_gen: avg_ts of that llama-bench row
    awk -F'","' -v p="$1" -v g="$2" 'NR==1 {gsub(/"/,""); n=split($0,h,","); for (i=1;i<=n;i++) c[h[i]]=i; next}
      {gsub(/^"|"$/,""); if ($c["n_prompt"]==p && $c["n_gen"]==g) {printf "%.2f", $c["avg_ts"]; exit}}' <<<"$lout"; }
  db=$(decode_bytes "$f")
  echo "$(basename "$f" .gguf): $(awk -v b="$db" 'BEGIN{printf "%.1f", b/1e6}') MB read per decoded token" >&2
  for test in $(for p in $pps; do echo "pp$p"; done) "tg$tg"; do
    case $test in pp*) l=$(pick "${test#pp}" 0) ;; *) l=$(pick 0 "$tg") ;; esac
    n=${nv[$test]:-}
    ratio=$(awk -v a="$n" -v b="$l" 'BEGIN{if (a>0 && b>0) printf "%.2f", a/b; else print "-"}')
    rn=; rl=
    case $test in tg*) rn=$(roofline_pct "$n" "$db"); rl=$(roofline_pct "$l" "$db") ;; esac
    echo "| $(basename "$f" .gguf) | $test | ${n:--} | ${l:--} | $ratio | $rn | $rl |"
  done
  unset nv
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
