#!/usr/bin/env bash
# Side-by-side pp/tg benchmark of nuage and llama.cpp on the same files in
# the same run (the machines are shared: only figures taken together are
# comparable). llama.cpp is not part of nuage: build it elsewhere and point
# LLAMA_BENCH at its llama-bench binary.
#   usage: LLAMA_BENCH=/path/llama-bench bench/compare_llamacpp.sh THREADS REPS MODEL.gguf...
# Prints one markdown row per model: nuage pp/tg, llama.cpp pp/tg, ratios.
set -u
cd "$(dirname "$0")/.."
bin=${NUAGE_BIN:-./build/nuage}
lb=${LLAMA_BENCH:?set LLAMA_BENCH to a llama-bench binary}
t=${1:-2}; r=${2:-3}; shift 2
pp=${PP:-128}; tg=${TG:-128}
echo "threads $t, $r repetitions, pp$pp/tg$tg, load average $(cut -d' ' -f1-3 /proc/loadavg), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "| model | nuage pp | llama.cpp pp | ratio | nuage tg | llama.cpp tg | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for f in "$@"; do
  out=$("$bin" bench -m "$f" -t "$t" -r "$r" -p "$pp" -n "$tg" 2>&1)
  npp=$(sed -n "s/^| pp$pp *| *\([0-9.]*\).*/\1/p" <<<"$out")
  ntg=$(sed -n "s/^| tg$tg *| *\([0-9.]*\).*/\1/p" <<<"$out")
  lout=$("$lb" -m "$f" -t "$t" -r "$r" -p "$pp" -n "$tg" -o csv 2>/dev/null)
  pick() { # $1 = n_prompt, $2 = n_gen: avg_ts of that llama-bench row
    awk -F'","' -v p="$1" -v g="$2" 'NR==1 {gsub(/"/,""); n=split($0,h,","); for (i=1;i<=n;i++) c[h[i]]=i; next}
      {gsub(/^"|"$/,""); if ($c["n_prompt"]==p && $c["n_gen"]==g) {printf "%.1f", $c["avg_ts"]; exit}}' <<<"$lout"; }
  lpp=$(pick "$pp" 0); ltg=$(pick 0 "$tg")
  rp=$(awk -v a="$npp" -v b="$lpp" 'BEGIN{if (b>0) printf "%.2f", a/b; else print "-"}')
  rt=$(awk -v a="$ntg" -v b="$ltg" 'BEGIN{if (b>0) printf "%.2f", a/b; else print "-"}')
  echo "| $(basename "$f" .gguf) | $npp | $lpp | $rp | $ntg | $ltg | $rt |"
done
