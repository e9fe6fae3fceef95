#!/usr/bin/env bash
# nuage's own models served the way the README's main command serves them:
# a router deployment ("nuage") in front of nuage-fast and nuage-think
# (deploy/nuage.json), on loopback. Checks, over HTTP:
#  - the router sends reasoning_effort minimal to nuage-fast and high to
#    nuage-think, and the response's `model` names the deployment that served;
#  - nuage-think's reasoning comes back as reasoning_content, counted in
#    usage.completion_tokens_details.reasoning_tokens;
#  - a thinking budget (reasoning_effort low = 4 tokens here) makes the
#    model close its reasoning early and still answer;
#  - both models answer a held-out-style addition correctly at temperature 0;
#  - /metrics counts the router's decisions;
#  - router hints in the model name (nuage:fast, nuage:thinking) are routed.
# Exit 77 (skipped) when the models or node are missing.
set -u
src=${NUAGE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${NUAGE_BIN:-$src/build/nuage}
[ -f "$src/models/nuage-fast.gguf" ] && [ -f "$src/models/nuage-think.gguf" ] || { echo "models missing: skipped"; exit 77; }
command -v node >/dev/null || { echo "node missing: skipped"; exit 77; }
command -v curl >/dev/null || { echo "curl missing: skipped"; exit 77; }
tmp=$(mktemp -d)
cat > "$tmp/nuage.json" <<JSON
{"deployments": [
  {"name": "nuage-fast", "model": "$src/models/nuage-fast.gguf", "version": "t1", "context": 256, "threads": 2},
  {"name": "nuage-think", "model": "$src/models/nuage-think.gguf", "version": "t1", "context": 512, "threads": 2,
   "thinking": {"low": 4, "medium": 256, "high": 1024}},
  {"name": "nuage", "kind": "router", "router": {"targets": {"fast": "nuage-fast", "reasoning": "nuage-think"}}}
]}
JSON
"$bin" serve --config "$tmp/nuage.json" --host 127.0.0.1 --port 0 --no-db 2>"$tmp/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
url=
for _ in $(seq 1 300); do
  url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$tmp/log" | head -n1)
  [ -n "$url" ] && curl -sf "$url/health" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { cat "$tmp/log"; exit 1; }
  sleep 0.1
done
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }
ask() { # model effort question -> response JSON
  local effort=""
  [ -n "$2" ] && effort=",\"reasoning_effort\":\"$2\""
  curl -s "$url/v1/chat/completions" -H 'Content-Type: application/json' \
    -d "{\"model\":\"$1\",\"temperature\":0,\"max_tokens\":200,\"messages\":[{\"role\":\"user\",\"content\":\"$3\"}]$effort}"
}
field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const o=JSON.parse(s);const v=eval("o."+process.argv[1]);console.log(v===undefined?"":typeof v==="object"?JSON.stringify(v):v)})' "$1"; }

r=$(ask nuage minimal "What is 23 + 45?")
check "minimal effort -> nuage-fast" '[ "$(field model <<<"$r")" = nuage-fast ]'
check "nuage-fast: 23 + 45 = 68" '[[ "$(field "choices[0].message.content" <<<"$r")" == *68* ]]'
# Router hints in the model name (issue 12, item 7: they were 404).
r=$(ask nuage:fast "" "What is 23 + 45?")
check "model nuage:fast -> nuage-fast" '[ "$(field model <<<"$r")" = nuage-fast ]'
r=$(ask nuage:thinking "" "What is 23 + 45?")
check "model nuage:thinking -> nuage-think" '[ "$(field model <<<"$r")" = nuage-think ]'
r=$(ask nuage high "What is 23 + 45?")
check "high effort -> nuage-think" '[ "$(field model <<<"$r")" = nuage-think ]'
check "nuage-think: reasoning_content present" '[ -n "$(field "choices[0].message.reasoning_content" <<<"$r")" ]'
rt_high=$(field "usage.completion_tokens_details.reasoning_tokens" <<<"$r")
check "nuage-think: reasoning tokens counted ($rt_high)" '[ "${rt_high:-0}" -gt 4 ]'
check "nuage-think: 23 + 45 = 68" '[[ "$(field "choices[0].message.content" <<<"$r")" == *68* ]]'
r=$(ask nuage-think low "What is 4821 + 3307?")
rt_low=$(field "usage.completion_tokens_details.reasoning_tokens" <<<"$r")
echo "    budget 4: reasoning_tokens=$rt_low content=$(field "choices[0].message.content" <<<"$r")"
check "thinking budget closes reasoning (<= 4 + the forced close)" '[ "${rt_low:-99}" -le 6 ]'
check "an answer follows the forced close" '[ -n "$(field "choices[0].message.content" <<<"$r")" ]'
m=$(curl -s "$url/metrics")
check "metrics: router decisions counted" 'grep -q "nuage_router_decisions_total{router=\"nuage\",target=\"reasoning\"" <<<"$m" && grep -q "nuage_router_decisions_total{router=\"nuage\",target=\"fast\"" <<<"$m"'
[ $fail = 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
