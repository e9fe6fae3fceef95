#!/usr/bin/env bash
# nuage-fast as an agent (issue 18): `nuage serve` with the bundled model,
# the official openai SDK's runTools loop (tests/integration/openai/
# agent_demo.mjs) with three local tools, on held-out questions from
# `nuage synth-data --split heldout`: 6-digit multiplications, unit
# conversions and date_add questions; every final answer must be the
# expected one. Also the README's demo question (48213 x 9377 in
# thousands = 452093.301).
# Exit 77 (skipped) when node / the SDK are missing, or when the bundled
# nuage-fast was not trained for tools (its chat template has no
# <tool_call>): the test is about the shipped model, not the code.
set -u
src=${NUAGE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${NUAGE_BIN:-$src/build/nuage}
model="$src/models/nuage-fast.gguf"
tests="$src/tests/integration/openai"
[ -f "$model" ] || { echo "model missing: skipped"; exit 77; }
"$bin" inspect "$model" --all 2>/dev/null | grep -q 'tool_call' || { echo "the bundled nuage-fast has no tool template: skipped"; exit 77; }
command -v node >/dev/null || { echo "node missing: skipped"; exit 77; }
[ -d "$tests/node_modules/openai" ] || { echo "openai SDK missing (npm ci in $tests): skipped"; exit 77; }
. "$(dirname "$0")/server_lib.sh"
tmp=$(mktemp -d)
pid=""
trap 'stop_server "$pid"; rm -rf "$tmp"' EXIT
"$bin" serve -m "$model" --host 127.0.0.1 --port 0 --no-db -t 2 >"$tmp/log" 2>&1 &
pid=$!
url=""
for _ in $(seq 1 300); do
  url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$tmp/log" | head -n1)
  [ -n "$url" ] && health_ok "${url##*:}" && break
  kill -0 $pid 2>/dev/null || { cat "$tmp/log"; exit 1; }
  sleep 0.1
done
# held-out questions: the last line of each chat holds the question and the answer
last_lines() { node -e '
  const seen = new Set();
  for (const l of require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean)) {
    const o = JSON.parse(l), q = o.messages[0].content;
    if (o.messages.length < 4 || seen.has(q)) continue;
    const a = JSON.parse(l).messages[1].tool_calls[0].function.arguments;
    if (process.argv[1] === "date_add" && !("days" in a)) continue;
    seen.add(q); console.log(l);
  }' "$1"; }
"$bin" synth-data --task tool_mul --digits 6 --split heldout --n 4 --seed 5 --out - | last_lines mul > "$tmp/q.jsonl"
"$bin" synth-data --task tool_convert --split heldout --n 3 --seed 5 --out - | last_lines convert >> "$tmp/q.jsonl"
"$bin" synth-data --task tool_date --split heldout --n 8 --seed 5 --out - | last_lines date_add | head -n 3 >> "$tmp/q.jsonl"
fail=0
echo '{"messages":[{"role":"user","content":"What is 48213 × 9377, in thousands?"},{},{},{}],"answer":"452093.301"}' >> "$tmp/q.jsonl"
NUAGE_URL="$url" node "$tests/agent_demo.mjs" --check "$tmp/q.jsonl" || fail=1
exit $fail
