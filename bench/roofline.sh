# roofline.sh - sourced by bench/compare_llamacpp.sh and bench/bench_models.sh:
# the machine's measured read bandwidth and the bytes a decoded token reads,
# so every decode figure is also stated as a fraction of the roofline
# measured in the same run (bench/bench_bandwidth.c explains the method).
#
#   roofline_measure THREADS  -> sets RL_GBS (GB/s with THREADS threads,
#                                empty if bench_bandwidth is missing) and
#                                prints one line about it
#   decode_bytes MODEL.gguf   -> prints the weight bytes one decoded token
#                                reads: every tensor, but the token
#                                embedding only when it is also the output
#                                head (tied), and experts scaled by
#                                used/total; the KV cache is left out (small
#                                at tg128: ~1.4 MB of TinyLlama's 620 MB)
#   roofline_pct TOK_S BYTES  -> prints TOK_S x BYTES as % of RL_GBS
RL_GBS=
roofline_measure() {
  local bw=${NUAGE_BW_BIN:-./build/bench/bench_bandwidth} out
  [ -x "$bw" ] || bw=./build/bench_bandwidth
  if [ ! -x "$bw" ]; then echo "roofline: bench_bandwidth not built; no % of roofline"; return; fi
  out=$("$bw" -t "$1" -r "${BW_PASSES:-5}" --mib "${BW_MIB:-2048}")
  RL_GBS=$(sed -n "s/^threads $1: \([0-9.]*\) GB\/s.*/\1/p" <<<"$out")
  local oncpu=$(sed -n "s/^threads $1: .*per CPU second: \([0-9.]*\) GB\/s.*/\1/p" <<<"$out")
  echo "roofline: read bandwidth $RL_GBS GB/s with $1 threads, $oncpu GB/s per CPU second (bench_bandwidth, ${BW_MIB:-2048} MiB, best of ${BW_PASSES:-5}, load $(cut -d' ' -f1 /proc/loadavg); the two differ when the machine is busy: then no % of roofline means much)"
}
decode_bytes() {
  "${NUAGE_BIN:-./build/nuage}" inspect "$1" 2>/dev/null | awk '
    /expert_count = / && !/used/ { ne = $NF } /expert_used_count = / { nu = $NF }
    /^tensors / { t = 1; next } /^engine:/ { t = 0 }
    t && NF >= 5 && $1 != "name" { b[$1] = $(NF-1) }
    END { for (n in b) { x = b[n]
            if (n == "token_embd.weight" && ("output.weight" in b)) continue
            if (n ~ /_exps/ && ne > 0 && nu > 0) x = x * nu / ne
            s += x }
          printf "%.0f", s }'
}
roofline_pct() {
  awk -v t="$1" -v b="$2" -v r="$RL_GBS" 'BEGIN { if (t > 0 && b > 0 && r > 0) printf "%.0f %%", 100 * t * b / (r * 1e9); else print "-" }'
}
