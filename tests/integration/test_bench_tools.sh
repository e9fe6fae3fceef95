#!/usr/bin/env bash
# The benchmark tools that reports rely on (bench/), checked against
# figures they cannot produce themselves:
#   - bench_bandwidth prints "threads T: X GB/s" for each thread count
#     asked (the line bench/roofline.sh greps), with X > 0, and refuses bad
#     arguments with exit 2;
#   - decode_bytes (bench/roofline.sh) of a file whose output head is not
#     tied equals the file's tensor data extent (file size minus the data
#     offset, as `inspect` prints them) minus the token embedding's bytes;
#   - loadgen's prompts: two runs with unique prompts leave the server's
#     prefix cache (nuage_cached_tokens_total in /metrics) unused, and a
#     run with --shared-prefix 48 of 64 serves at least 32 tokens per
#     later request from it (blocks of 16: 48 -> 32 or 48 cached).
# Env (set by ctest): NUAGE_BIN, NUAGE_MAKE_MODEL, NUAGE_SOURCE_DIR.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
src="${NUAGE_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
bin="${NUAGE_BIN:-$src/build/nuage}"
make_model="${NUAGE_MAKE_MODEL:-$(dirname "$bin")/bench/make_model}"
bdir="$(dirname "$make_model")"
fail() { echo "FAIL: $*"; exit 1; }

# --- bench_bandwidth
out="$("$bdir/bench_bandwidth" --mib 64 -r 1 -t 1,2)" || fail "bench_bandwidth exited $?"
for t in 1 2; do
  gbs="$(sed -n "s/^threads $t: \([0-9.]*\) GB\/s.*/\1/p" <<<"$out")"
  awk -v g="$gbs" 'BEGIN { exit !(g > 0) }' || fail "no bandwidth for $t threads in: $out"
done
"$bdir/bench_bandwidth" -t 0 >/dev/null 2>&1; [ $? -eq 2 ] || fail "bench_bandwidth -t 0 not refused"
"$bdir/bench_bandwidth" --mib 1 >/dev/null 2>&1; [ $? -eq 2 ] || fail "bench_bandwidth --mib 1 not refused"

# --- decode_bytes on a generated Q8_0 llama (separate output head)
tmp="$(mktemp -d "${TMPDIR:-/tmp}/nuage-benchtools-XXXXXX")"
pid=""
. "$here/server_lib.sh"
trap 'stop_server "$pid"; rm -rf "$tmp"' EXIT
model="$tmp/m.gguf"
"$make_model" --out "$model" --type q8_0 --dim 64 --layers 2 --heads 4 --kv-heads 2 --ff 128 --ctx 512 \
  --vocab-from "$src/models/nuage-fast.gguf" >/dev/null 2>&1 || fail "make_model failed"
ins="$("$bin" inspect "$model")" || fail "inspect failed"
grep -q '^  output.weight ' <<<"$ins" || fail "generated model has no separate output head"
off="$(sed -n 's/^data: *at offset \([0-9]*\).*/\1/p' <<<"$ins")"
emb="$(awk '$1 == "token_embd.weight" { print $(NF-1) }' <<<"$ins")"
want=$(( $(stat -c %s "$model") - off - emb ))
got="$(cd "$src" && NUAGE_BIN="$bin" bash -c '. bench/roofline.sh; decode_bytes "$0"' "$model")"
[ "$got" = "$want" ] || fail "decode_bytes $got, want $want (size - data offset $off - token_embd $emb)"

# --- loadgen: unique prompts per run, --shared-prefix shares
log="$tmp/serve.log"
"$bin" serve -m "$model" --host 127.0.0.1 --port 0 --no-db --parallel 4 --ctx 128 --kv-blocks 256 \
  --quiet >"$log" 2>&1 &
pid=$!
port=""
for _ in $(seq 1 300); do
  port="$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$log" | head -n1)"
  [ -n "$port" ] && health_ok "$port" && break
  kill -0 "$pid" 2>/dev/null || fail "server died: $(cat "$log")"
  sleep 0.1
done
health_ok "$port" || fail "server not healthy: $(cat "$log")"
cached() { # nuage_cached_tokens_total, summed over its label sets
  ( exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    printf 'GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
    cat <&3 ) | awk '/^nuage_cached_tokens_total/ { s += $NF } END { print s + 0 }'
}
lg() { "$bdir/loadgen" --port "$port" -c 2 -n 4 --prompt-tokens 64 --max-tokens 2 --vocab 500 "$@" >"$tmp/lg.out" 2>&1 \
         || fail "loadgen $* failed: $(cat "$tmp/lg.out")"; }
c0="$(cached)"
lg; lg; lg --seed 7
c1="$(cached)"
[ "$c1" = "$c0" ] || fail "unique prompts hit the prefix cache: $c0 -> $c1 cached tokens"
grep -q '(unique)' "$tmp/lg.out" || fail "loadgen does not say its prompts are unique: $(cat "$tmp/lg.out")"
lg --seed 7 --shared-prefix 48
c2="$(cached)"
[ "$c2" -ge $((c1 + 3 * 32)) ] || fail "--shared-prefix 48: $c1 -> $c2 cached tokens, want >= +96 (3 later requests x 32)"
"$bdir/loadgen" --port "$port" --shared-prefix 65 --prompt-tokens 64 >/dev/null 2>&1; [ $? -eq 2 ] \
  || fail "loadgen accepted a shared prefix longer than the prompt"
echo "ok: bench_bandwidth $out" | head -3
echo "ok: decode_bytes $got; cached tokens $c0 -> $c1 (unique) -> $c2 (shared prefix)"
