#!/usr/bin/env bash
# agent-demo.sh - nuage's own model as an agent, out of the box: starts
# `nuage serve` with the bundled nuage-fast on a free loopback port and
# runs tests/integration/openai/agent_demo.mjs (the official openai SDK's
# runTools loop with three local tools: calculator, convert_units,
# date_add) on one question, printing the transcript.
#
# usage: scripts/agent-demo.sh [QUESTION] [BUILD_DIR]
#   default question: "What is 48213 × 9377, in thousands?"
#   needs node and the SDK (cd tests/integration/openai && npm ci)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
Q=${1:-"What is 48213 × 9377, in thousands?"}
NUAGE=${2:-$ROOT/build}/nuage
MODEL=${MODEL:-$ROOT/models/nuage-fast.gguf}
[ -x "$NUAGE" ] || { echo "build nuage first: cmake -S $ROOT -B build && make -C build nuage-cli" >&2; exit 1; }
[ -d "$ROOT/tests/integration/openai/node_modules/openai" ] ||
    { echo "install the SDK first: (cd $ROOT/tests/integration/openai && npm ci)" >&2; exit 1; }
log=$(mktemp)
"$NUAGE" serve -m "$MODEL" --host 127.0.0.1 --port 0 --no-db -t 2 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
url=""
for _ in $(seq 1 100); do
    url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$log" | head -n1)
    [ -n "$url" ] && grep -q ready "$log" && break
    kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
done
echo "\$ nuage serve -m ${MODEL#$ROOT/}   # $url"
NUAGE_URL="$url" node "$ROOT/tests/integration/openai/agent_demo.mjs" "$Q"
