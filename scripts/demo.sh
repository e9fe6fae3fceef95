#!/usr/bin/env bash
# The main job in one command: serve nuage's own models with `nuage serve`
# on loopback (deploy/nuage.json: a router deployment "nuage" in front of
# nuage-fast and nuage-think), wait until it is ready, send one OpenAI-style
# chat request and print the answer. Run from a terminal, the server then
# stays up for the web console (open the printed URL in a browser; Ctrl-C
# stops it); otherwise (scripts, CI) or with NUAGE_DEMO_KEEP=0 it stops.
#   usage: scripts/demo.sh ["question"] [MODEL.gguf]
# With MODEL.gguf (or when models/ is missing) that one model is served.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./build/nuage
question=${1:-What is 23 + 45?}
model=${2:-}
log=$(mktemp)
if [ -z "$model" ] && [ -f models/nuage-fast.gguf ] && [ -f models/nuage-think.gguf ]; then
  "$bin" serve --config deploy/nuage.json --host 127.0.0.1 --port 0 --no-db 2>"$log" &
  name=nuage
else
  [ -n "$model" ] || model=../shared/models/stories260K.gguf
  "$bin" serve -m "$model" --host 127.0.0.1 --port 0 -t 2 --no-db 2>"$log" &
  name=$(basename "$model" .gguf)
fi
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
echo "server: $url, model: $name"
echo "user: $question"
body=$(printf '{"model":"%s","messages":[{"role":"user","content":%s}],"max_tokens":200,"temperature":0}' "$name" \
       "$(printf '%s' "$question" | sed 's/\\/\\\\/g; s/"/\\"/g; s/^/"/; s/$/"/')")
curl -sf "$url/v1/chat/completions" -H 'Content-Type: application/json' -d "$body" \
  | sed -n 's/.*"model":"\([^"]*\)".*"content":"\(\([^"\\]\|\\.\)*\)".*/assistant (\1): \2/p' | sed 's/\\n/\n/g; s/\\"/"/g'
echo
if [ "${NUAGE_DEMO_KEEP:-auto}" = 1 ] || { [ "${NUAGE_DEMO_KEEP:-auto}" = auto ] && [ -t 0 ] && [ -t 1 ]; }; then
  echo "console: $url/ (chat with $name in a browser; Ctrl-C stops the server)"
  wait $pid
fi
