#!/usr/bin/env bash
# The main job in one command: serve a model with `nuage serve` on
# loopback, wait until it is ready, send one OpenAI-style chat request and
# print the answer, then stop the server.
#   usage: scripts/demo.sh [MODEL.gguf] ["question"]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./build/nuage
model=${1:-models/nuage-fast.gguf}
[ -f "$model" ] || model=../shared/models/stories260K.gguf
question=${2:-What is 23 + 45?}
log=$(mktemp)
"$bin" serve -m "$model" --host 127.0.0.1 --port 0 -t 2 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
url=
for _ in $(seq 1 200); do
  url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$log" | head -n1)
  [ -n "$url" ] && curl -sf "$url/health" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "server did not start" >&2; cat "$log" >&2; exit 1; }
echo "model: $model ($url)"
echo "user: $question"
body=$(printf '{"messages":[{"role":"user","content":%s}],"max_tokens":64,"temperature":0}' \
       "$(printf '%s' "$question" | sed 's/\\/\\\\/g; s/"/\\"/g; s/^/"/; s/$/"/')")
curl -sf "$url/v1/chat/completions" -H 'Content-Type: application/json' -d "$body" \
  | sed -n 's/.*"content":"\(\([^"\\]\|\\.\)*\)".*/assistant: \1/p' | sed 's/\\n/\n/g; s/\\"/"/g'
