#!/usr/bin/env bash
# Turn N of a long conversation through the Responses API with
# previous_response_id costs prefill only for the new tokens (issue 14):
# the server rebuilds the prompt from the stored chain, the rebuilt prompt
# starts with the previous turn's prompt, and the prefix cache serves that
# part. For each turn this prints input_tokens, cached_tokens, the tokens
# actually prefilled (input - cached) and the wall time of the request,
# next to the same request on a server started with --no-prefix-cache
# (every turn prefills the whole conversation).
#   bench/bench_responses.sh [build-dir] [model.gguf] [turns] [words-per-turn]
# defaults: build, ../shared/models/rand-llama-f32.gguf, 12 turns, 150 words
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
model="${2:-../shared/models/rand-llama-f32.gguf}"
turns="${3:-12}"
words="${4:-150}"
bin="$build/nuage"
for t in curl jq; do command -v $t >/dev/null || { echo "$t not found"; exit 1; }; done
tmp="$(mktemp -d "${TMPDIR:-/tmp}/nuage-bench-resp-XXXXXX")"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

start() { # name extra-args... -> prints the port
  local log="$tmp/$1.log"; shift
  NUAGE_DB="" "$bin" serve -m "$model" --ctx 16384 --kv-blocks 4096 --db "$tmp/$RANDOM.db" --no-auth \
    --host 127.0.0.1 --port 0 --quiet "$@" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 300); do
    local port; port="$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$log" | head -n1)"
    if [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/health" >/dev/null; then echo "$port"; return; fi
    sleep 0.1
  done
  echo "server did not start:" >&2; cat "$log" >&2; exit 1
}
cached_port="$(start cached)"
cold_port="$(start cold --no-prefix-cache)"

sentence="the little robot walked along the quiet river and counted the stones it found"
text() { local n=0 out="Turn $1:"; while [ $n -lt "$words" ]; do out="$out $sentence"; n=$((n + 14)); done; echo "$out"; }

printf '%4s %8s %8s %9s %10s %12s\n' turn input cached prefilled time_ms cold_time_ms
prev=""
items="[]"
for i in $(seq 1 "$turns"); do
  msg="$(text "$i")"
  body="$(jq -nc --arg m "$msg" --arg p "$prev" \
    '{input: $m, max_output_tokens: 16, temperature: 0} + (if $p == "" then {} else {previous_response_id: $p} end)')"
  out="$(curl -s -w '\n%{time_total}' "http://127.0.0.1:$cached_port/v1/responses" -H 'content-type: application/json' -d "$body")"
  t="$(echo "$out" | tail -n1)"
  resp="$(echo "$out" | sed '$d')"
  err="$(echo "$resp" | jq -r '.error.message // empty')"
  [ -n "$err" ] && { echo "turn $i: $err"; exit 1; }
  prev="$(echo "$resp" | jq -r .id)"
  in="$(echo "$resp" | jq .usage.input_tokens)"
  ca="$(echo "$resp" | jq .usage.input_tokens_details.cached_tokens)"
  # the same conversation, stateless, on the server without a prefix cache
  items="$(jq -c --arg m "$msg" '. + [{role: "user", content: $m}]' <<<"$items")"
  cold_body="$(jq -nc --argjson it "$items" '{input: $it, max_output_tokens: 16, temperature: 0, store: false}')"
  # (a random model may write U+0000, which request bodies may not hold)
  items="$(jq -c --argjson o "$(echo "$resp" | jq -c .output)" '. + $o | walk(if type == "string" then gsub("\u0000"; "") else . end)' <<<"$items")"
  ct="$(curl -s -o "$tmp/cold.json" -w '%{time_total}' "http://127.0.0.1:$cold_port/v1/responses" -H 'content-type: application/json' -d "$cold_body")"
  cerr="$(jq -r '.error.message // empty' "$tmp/cold.json")"
  [ -n "$cerr" ] && { echo "turn $i (no prefix cache): $cerr"; exit 1; }
  printf '%4d %8d %8d %9d %10.1f %12.1f\n' "$i" "$in" "$ca" $((in - ca)) "$(echo "$t * 1000" | bc)" "$(echo "$ct * 1000" | bc)"
done
