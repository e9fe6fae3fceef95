#!/usr/bin/env bash
# The data plane's cost and the affinity effect, on clusters started by
# scripts/cluster.sh (HAProxy in front of N `nuage serve` replicas sharing
# one store). Three measurements:
#
#  1. throughput with 1, 2 and 3 replicas: bench/loadgen through the
#     balancer (C clients, streaming, fixed output length). The compute
#     threads are split between the replicas (nproc / N each), so on a
#     small machine this shows the overhead of more processes and of the
#     balancer, not scaling.
#  2. the balancer's added latency: one client, tiny requests (8 prompt
#     tokens, 2 output tokens), time to first token straight to the one
#     replica and through HAProxy, same cluster, alternating rounds; and
#     the round trip of GET /health (no model, no store: the bare HTTP hop).
#  3. prefix-cache affinity: CONVS conversations, each with its own long
#     system prompt, TURNS turns each (every turn resends the whole
#     conversation, as chat clients do), the turns of all conversations
#     interleaved; once without an affinity key (leastconn spreads them)
#     and once with x-nuage-affinity: conversation id (each conversation
#     stays on one replica). Each run starts from a fresh cluster (cold
#     caches) with a KV pool of KV_BLOCKS blocks per replica, smaller than
#     all the conversations together: without affinity every replica has
#     to hold every conversation. Reported: cached_tokens / prompt_tokens
#     and the time of each request (max_tokens 1, not streamed: the time
#     to the first token, curl's time_total), mean and p50.
#
#   bench/bench_cluster.sh [build-dir] [model.gguf]
# Env: CLIENTS (8), REQUESTS (160), CONVS (10), TURNS (5), KV_BLOCKS (96).
# Needs curl and haproxy; prints a small report on stdout.
set -u
cd "$(dirname "$0")/.."
build=${1:-build}
model=${2:-models/nuage-fast.gguf}
clients=${CLIENTS:-8} requests=${REQUESTS:-160} convs=${CONVS:-10} turns=${TURNS:-5} kv_blocks=${KV_BLOCKS:-96}
export NUAGE_BIN=$PWD/$build/nuage
loadgen=$PWD/$build/bench/loadgen
[ -x "$loadgen" ] || loadgen=$PWD/$build/loadgen
for t in curl haproxy; do command -v $t >/dev/null || [ -x /usr/sbin/$t ] || { echo "$t not found"; exit 1; }; done
[ -x "$NUAGE_BIN" ] && [ -x "$loadgen" ] || { echo "build nuage and loadgen first ($build)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nuage-bench-cluster-XXXXXX")
export NUAGE_CLUSTER_DIR=$tmp/state
cluster() { bash scripts/cluster.sh "$@"; }
trap 'cluster down 2>/dev/null; rm -rf "$tmp"' EXIT

# up N: a fresh cluster; sets url, port, db, key (a tenant's key).
up() {
  cluster down 2>/dev/null
  cluster up "$1" --model "$model" >"$tmp/up.out" 2>"$tmp/up.err" || { cat "$tmp/up.err"; exit 1; }
  url=$(sed -n 's/^url=//p' "$tmp/up.out"); port=${url##*:}; db=$(sed -n 's/^db=//p' "$tmp/up.out")
  "$NUAGE_BIN" admin --db "$db" tenant create bench >/dev/null 2>&1
  key=$("$NUAGE_BIN" admin --db "$db" key create --tenant bench 2>/dev/null)
}
# lg PORT ARGS...: loadgen with the key; prints its report.
lg() { local p=$1; shift; "$loadgen" --port "$p" --header "Authorization: Bearer $key" "$@"; }
field() { sed -n "$1" | head -n 1; }
# health_p50 PORT: p50 of 300 GET /health on one keep-alive connection (curl's own timing), in ms.
health_p50() {
  local u="http://127.0.0.1:$1/health" args=() i
  for i in $(seq 1 300); do args+=(-o /dev/null "$u"); done
  curl -s -w '%{time_total}\n' "${args[@]}" | sort -g | awk '{t[NR] = $1} END {printf "%.3f", t[int((NR + 1) / 2)] * 1000}'
}

echo "# nuage cluster bench: $(nproc) cores, model $(basename "$model"), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
store=$(NUAGE_CLUSTER_STORE=${NUAGE_CLUSTER_STORE:-} bash -c '[ "${NUAGE_CLUSTER_STORE:-}" != sqlite ] && bash scripts/pg_temp.sh check 2>/dev/null && echo PostgreSQL || echo SQLite')
echo "# store: $store (per request: the key check and the usage record)"
echo
echo "## 1. throughput through HAProxy ($clients clients, $requests streamed requests, 32 prompt + 64 output tokens)"
printf '%-9s %-8s %10s %14s %14s %7s\n' replicas threads "tok/s" "TTFT p50 ms" "TTFT p99 ms" errors
for n in 1 2 3; do
  up "$n"
  lg "$port" -c 4 -n 16 --prompt-tokens 32 --max-tokens 16 >/dev/null 2>&1 # warm-up
  out=$(lg "$port" -c "$clients" -n "$requests" --prompt-tokens 32 --max-tokens 64 2>&1)
  tps=$(echo "$out" | field 's/.*tokens in .* s: \([0-9]*\) tok\/s.*/\1/p')
  p50=$(echo "$out" | field 's/^time to first token: p50 \([0-9.]*\) ms.*/\1/p')
  p99=$(echo "$out" | field 's/^time to first token: .*p99 \([0-9.]*\) ms.*/\1/p')
  errs=$(echo "$out" | field 's/.* ok \/ \([0-9]*\) errors.*/\1/p')
  printf '%-9s %-8s %10s %14s %14s %7s\n' "$n" "$(cat "$NUAGE_CLUSTER_DIR/threads")" "$tps" "$p50" "$p99" "$errs"

  if [ "$n" = 1 ]; then
    rport=$(cat "$NUAGE_CLUSTER_DIR/r1.port")
    # Alternate direct and balanced rounds so that the machine's load
    # drifts over both alike.
    lat_direct="" lat_hap="" h_direct="" h_hap=""
    for _ in 1 2 3; do
      d=$(lg "$rport" -c 1 -n 200 --prompt-tokens 8 --max-tokens 2 2>&1)
      b=$(lg "$port" -c 1 -n 200 --prompt-tokens 8 --max-tokens 2 2>&1)
      lat_direct="$lat_direct $(echo "$d" | field 's/^time to first token: p50 \([0-9.]*\) ms.*/\1/p')"
      lat_hap="$lat_hap $(echo "$b" | field 's/^time to first token: p50 \([0-9.]*\) ms.*/\1/p')"
      h_direct="$h_direct $(health_p50 "$rport")"
      h_hap="$h_hap $(health_p50 "$port")"
    done
  fi
done
echo
echo "## 2. HAProxy's added latency (1 replica; 3 alternating rounds, p50 of each)"
echo "completion, 1 client, 200 requests of 8 prompt + 2 output tokens, time to first token (ms):"
echo "  direct to the replica:$lat_direct"
echo "  through HAProxy:      $lat_hap"
echo "GET /health, 300 requests on one keep-alive connection, round trip (ms):"
echo "  direct to the replica:$h_direct"
echo "  through HAProxy:      $h_hap"
echo

# ---- 3. affinity ----
words="the little robot walked along the quiet river and counted the stones it found there"
# body CONV TURN: the chat request of turn TURN of conversation CONV.
body() {
  local c=$1 t=$2 sys="" msgs k
  for k in 1 2; do sys="$sys Conversation $c, part $k: $words."; done
  msgs="{\"role\":\"system\",\"content\":\"$sys\"}"
  for k in $(seq 1 "$t"); do
    msgs="$msgs,{\"role\":\"user\",\"content\":\"What is $c + $k?\"}"
    [ "$k" -lt "$t" ] && msgs="$msgs,{\"role\":\"assistant\",\"content\":\"$c + $k = $((c + k))\"}"
  done
  echo "{\"messages\":[$msgs],\"max_tokens\":1,\"temperature\":0}"
}
# affinity_run MODE(off|on): one line "prompt cached time_ms" per request in $tmp/aff.MODE.
affinity_run() {
  local mode=$1 c t hdr out
  NUAGE_CLUSTER_SERVE_FLAGS="--kv-blocks $kv_blocks" up 3
  : >"$tmp/aff.$mode"
  for t in $(seq 1 "$turns"); do
    for c in $(seq 1 "$convs"); do
      hdr="x-nuage-none: 1"; [ "$mode" = on ] && hdr="x-nuage-affinity: conv-$c"
      out=$(curl -s -o "$tmp/aff.b" -w '%{http_code} %{time_total}' "$url/v1/chat/completions" \
        -H "authorization: Bearer $key" -H 'content-type: application/json' -H "$hdr" -d "$(body "$c" "$t")")
      [ "${out%% *}" = 200 ] || { echo "request failed: $out $(cat "$tmp/aff.b")" >&2; continue; }
      echo "$(grep -o '"prompt_tokens":[0-9]*' "$tmp/aff.b" | grep -o '[0-9]*$') $(grep -o '"cached_tokens":[0-9]*' "$tmp/aff.b" | grep -o '[0-9]*$') ${out#* }" >>"$tmp/aff.$mode"
    done
  done
}
affinity_run off
affinity_run on
echo "## 3. prefix-cache affinity ($convs conversations x $turns turns, interleaved, 3 replicas, --kv-blocks $kv_blocks each)"
printf '%-22s %9s %14s %14s %9s %13s %12s\n' "" requests "prompt tokens" "cached tokens" "cached %" "time mean ms" "time p50 ms"
for mode in off on; do
  sort -k3 -g "$tmp/aff.$mode" | awk -v m="$mode" '
    { p += $1; c += $2; t[NR] = $3 * 1000; s += $3 * 1000 }
    END { printf "%-22s %9d %14d %14d %8.1f%% %13.2f %12.2f\n", (m == "on" ? "x-nuage-affinity" : "no affinity key"),
          NR, p, c, p ? 100 * c / p : 0, NR ? s / NR : 0, NR ? t[int((NR + 1) / 2)] : 0 }'
done
echo
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
