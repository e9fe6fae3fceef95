#!/usr/bin/env bash
# Integration test of structured outputs and tool calling through the real
# server, driven by the openai SDK, LangChain, the Vercel AI SDK, LlamaIndex
# and the @openai/agents SDK on chat completions.
#
# Serves two random-weight models of ../shared/models with the real chat
# templates of ../shared/templates (--config, "chat_template"): "qwen3"
# (Qwen3 template: Hermes <tool_call> syntax) and "llama" (Llama 3.1
# template: bare JSON calls), "gptoss" (gpt-oss's harmony template on
# random llama weights: harmony channels and calls) behind the router
# "auto", and "gptoss-arch" (rand-gptoss-f32: the gpt-oss architecture
# with the same template). Random weights write junk, so the tests
# check structure and validity (what the grammar guarantees), never
# content. Runs tests/integration/openai/cg/*.mjs (not picked up by
# test_server_openai.sh, whose server has neither model) and
# responses_clients.test.mjs (skipped elsewhere: it needs these models).
# Exit 77 when the shared data, node or the npm packages are missing.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
src="${NUAGE_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
bin="${NUAGE_BIN:-$src/build/nuage}"
shared="${NUAGE_SHARED:-${NUAGE_SHARED_DEFAULT:-$src/../shared}}"
tests="$src/tests/integration/openai"

for f in models/rand-qwen3-f32.gguf models/rand-llama-f32.gguf templates/Qwen-Qwen3-0.6B.jinja \
         templates/meta-llama-Llama-3.1-8B-Instruct.jinja templates/openai-gpt-oss-120b.jinja; do
  if [ ! -f "$shared/$f" ]; then echo "shared data not found ($f): skipped"; exit 77; fi
done
if ! command -v node >/dev/null 2>&1; then echo "node not found: skipped"; exit 77; fi
if [ ! -d "$tests/node_modules/zod" ] || [ ! -d "$tests/node_modules/ai" ] || \
   [ ! -d "$tests/node_modules/llamaindex" ] || [ ! -d "$tests/node_modules/@openai/agents" ]; then
  if ! command -v npm >/dev/null 2>&1 || ! (cd "$tests" && npm ci --no-audit --no-fund >/dev/null 2>&1); then
    echo "cannot install the npm packages (npm ci failed): skipped"; exit 77
  fi
fi

. "$here/server_lib.sh"

tmp="$(mktemp -d)"
log="$tmp/log"
pid=""
cleanup() {
  stop_server "$pid"
  rm -rf "$tmp"
}
trap cleanup EXIT

# the gpt-oss architecture itself, with its harmony template (when shared has it)
arch=""
if [ -f "$shared/models/rand-gptoss-f32.gguf" ]; then
  arch="{\"name\": \"gptoss-arch\", \"model\": \"$shared/models/rand-gptoss-f32.gguf\", \"context\": 2048,
   \"parallel\": 8, \"kv_blocks\": 512, \"chat_template\": \"$shared/templates/openai-gpt-oss-120b.jinja\"},"
fi

cat >"$tmp/nuage.json" <<JSON
{"deployments": [
  {"name": "qwen3", "model": "$shared/models/rand-qwen3-f32.gguf", "context": 4096, "parallel": 8,
   "kv_blocks": 2048, "chat_template": "$shared/templates/Qwen-Qwen3-0.6B.jinja"},
  {"name": "llama", "model": "$shared/models/rand-llama-f32.gguf", "context": 4096, "parallel": 8,
   "kv_blocks": 2048, "chat_template": "$shared/templates/meta-llama-Llama-3.1-8B-Instruct.jinja"},
  {"name": "plain", "model": "$shared/models/rand-qwen3-f32.gguf", "context": 4096, "parallel": 4,
   "kv_blocks": 512},
  {"name": "gptoss", "model": "$shared/models/rand-llama-f32.gguf", "context": 4096, "parallel": 8,
   "kv_blocks": 1024, "chat_template": "$shared/templates/openai-gpt-oss-120b.jinja"},
  {"name": "gptoss-low", "model": "$shared/models/rand-llama-f32.gguf", "context": 1024, "parallel": 1,
   "kv_blocks": 64, "chat_template": "$shared/templates/openai-gpt-oss-120b.jinja", "thinking": {"default": "low"}},
  $arch
  {"name": "auto", "kind": "router", "router": {"targets": {"fast": "llama", "reasoning": "gptoss"}}}
]}
JSON

"$bin" serve --config "$tmp/nuage.json" --no-db --host 127.0.0.1 --port 0 --quiet >"$log" 2>&1 &
pid=$!
port=""
for _ in $(seq 1 600); do
  port="$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$log" | head -n1)"
  if [ -n "$port" ] && health_ok "$port"; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "server exited:"; cat "$log"; exit 1; fi
  sleep 0.1
done
if [ -z "$port" ] || ! health_ok "$port"; then echo "server did not become ready:"; cat "$log"; exit 1; fi

cd "$tests"
NUAGE_URL="http://127.0.0.1:$port" NUAGE_SHARED="$shared" NUAGE_SERVER_LOG="$log" \
  node --test --test-concurrency=1 --test-timeout=600000 cg/*.mjs
rc=$?
# The same clients on the Responses API (each test reports skipped when
# the server has no /v1/responses).
NUAGE_RESPONSES_CLIENTS_URL="http://127.0.0.1:$port" \
  node --test --test-concurrency=1 --test-timeout=600000 responses_clients.test.mjs || rc=1

kill -TERM "$pid"
wait "$pid"
st=$?
pid=""
if [ $st -ne 0 ]; then echo "server exit status $st on SIGTERM"; cat "$log"; rc=1; fi
if grep -q "ERROR: \(AddressSanitizer\|LeakSanitizer\)\|runtime error:" "$log"; then cat "$log"; rc=1; fi
exit $rc
