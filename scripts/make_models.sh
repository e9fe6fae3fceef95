#!/usr/bin/env bash
# make_models.sh - regenerate nuage's own models from scratch:
#   models/nuage-fast.gguf   answers directly
#   models/nuage-think.gguf  writes its work in <think>...</think> first
# One command, no network, no inputs: synthetic data (fixed seeds), a
# shared byte-level BPE tokenizer, two training runs, held-out evaluation.
# TOOLS=1 trains nuage-fast for tool use instead (issue 18; not shipped
# yet: the default TOOL_STEPS=1400 is the measured trial, too short to
# keep the first-stage scores): its own tokenizer, learned from the chats
# rendered with the ChatML-with-tools template (so the tool markup and the
# arguments' spellings, "kilometers" without the leading space, are single
# tokens and copying a word from the question is a one-token mapping),
# and one training from scratch on the first-stage data mixed with tool-use
# conversations; then the tool metrics through the server. (Fine-tuning
# the shipped model instead, with the old tokenizer, taught the call
# format and the tool choice but not the copying of arguments.)
# The trainer's results do not depend on the thread count (fixed gradient
# shards, fixed reduction order), so a rerun on the same kind of CPU
# (AVX2+FMA) gives bit-identical files.
#
# usage: scripts/make_models.sh [BUILD_DIR]   (default: build)
#   env: THREADS (default 2), WORK (scratch dir, default a temp dir),
#        EVAL_N (questions per task, default 200), NICE (default 10),
#        PARALLEL=1 trains the two models at the same time (same results),
#        OUT (where the models go, default models/),
#        TOOLS=1 trains nuage-fast with tools (TOOL_STEPS, default 1400;
#        SPACE_APART=1: its tokenizer never merges a leading space into a
#        word, so words copied into arguments keep their token; untried)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
NUAGE=$BUILD/nuage
THREADS=${THREADS:-2}
EVAL_N=${EVAL_N:-200}
NICE=${NICE:-10}
WORK=${WORK:-$(mktemp -d /tmp/nuage-models.XXXXXX)}
OUT=${OUT:-$ROOT/models}
mkdir -p "$WORK" "$OUT"
[ -x "$NUAGE" ] || { echo "build nuage first: cmake -S $ROOT -B $BUILD && make -C $BUILD nuage-cli" >&2; exit 1; }
run() { nice -n "$NICE" "$NUAGE" "$@"; }
# CPU time of a training run, when GNU time is there
timed() { if [ -x /usr/bin/time ]; then /usr/bin/time -f "$1: %U s user CPU, %e s wall" "${@:2}"; else "${@:2}"; fi; }
t_start=$(date +%s)

# 1. data: a weighted mixture of all tasks, up to 4-digit operands
run synth-data --task mix --digits 4 --n 100000 --seed 1 --out "$WORK/fast.jsonl"
run synth-data --task mix --digits 4 --n 60000 --seed 2 --reasoning --out "$WORK/think.jsonl"

# 2. one tokenizer for both (1024 tokens, qwen2 pre-tokenizer: digits stay single tokens),
#    trained on the first-stage data only (the tool stage reuses it unchanged)
cat "$WORK/fast.jsonl" "$WORK/think.jsonl" > "$WORK/all.jsonl"
run train-tokenizer --data "$WORK/all.jsonl" --vocab 1024 --out "$WORK/tok.gguf"

# 3. the models: llama, dim 192, 4 layers, 6 heads (2 KV heads), FF 512, ctx 256
SHAPE="--dim 192 --layers 4 --heads 6 --kv-heads 2 --ff 512 --ctx 256"
OPTS="--batch 32 --lr 2e-3 --lr-min 2e-4 --warmup 100 --wd 0.1 --clip 1 --seed 1 -t $THREADS"
train_fast() {
    if [ "${TOOLS:-0}" = 1 ]; then
        # tool-use chats (30,000 = ~55,000 lines, one per assistant turn)
        # mixed with the first-stage data, a tokenizer learned from all of
        # it through the tools template (1536 tokens: every frequent word
        # in both spellings), one training from scratch
        run synth-data --task tools --n 30000 --seed 11 --out "$WORK/tools.jsonl"
        cat "$WORK/fast.jsonl" "$WORK/think.jsonl" "$WORK/tools.jsonl" > "$WORK/all-tools.jsonl"
        run train-tokenizer --data "$WORK/all-tools.jsonl" --vocab 1536 --tools-template \
            $([ "${SPACE_APART:-0}" = 1 ] && echo --space-apart) --out "$WORK/tok-tools.gguf"
        cat "$WORK/fast.jsonl" "$WORK/tools.jsonl" > "$WORK/fast-tools.jsonl"
        timed fast nice -n "$NICE" "$NUAGE" train --data "$WORK/fast-tools.jsonl" --tokenizer "$WORK/tok-tools.gguf" \
            --tools-template $SHAPE $OPTS --steps "${TOOL_STEPS:-1400}" --ckpt "$WORK/fast.ckpt" --name nuage-fast \
            --out "$OUT/nuage-fast.gguf" 2> >(tee "$WORK/fast.log" >&2)
        return
    fi
    timed fast nice -n "$NICE" "$NUAGE" train --data "$WORK/fast.jsonl" --tokenizer "$WORK/tok.gguf" $SHAPE $OPTS --steps 6000 \
        --ckpt "$WORK/fast.ckpt" --out "$OUT/nuage-fast.gguf" 2> >(tee "$WORK/fast.log" >&2)
}
train_think() {
    timed think nice -n "$NICE" "$NUAGE" train --data "$WORK/think.jsonl" --tokenizer "$WORK/tok.gguf" $SHAPE $OPTS --steps 1800 \
        --ckpt "$WORK/think.ckpt" --out "$OUT/nuage-think.gguf" 2> >(tee "$WORK/think.log" >&2)
}
t0=$(date +%s)
if [ "${PARALLEL:-0}" = 1 ]; then
    train_fast & pf=$!
    train_think & pt=$!
    wait $pf
    wait $pt
else
    train_fast
    train_think
fi
echo "training wall time: $(( $(date +%s) - t0 ))s"
grep -h 'train: final\|user CPU' "$WORK/fast.log" "$WORK/think.log"

# 4. held-out scores (in-process path), every task, plus 2- and 4-digit addition
for m in fast think; do
    R=""; [ $m = think ] && R="--reasoning"
    echo "== nuage-$m"
    run eval -m "$OUT/nuage-$m.gguf" --task all --n "$EVAL_N" $R -t 1
    for d in 4; do
        echo "-- add, $d digits"
        run eval -m "$OUT/nuage-$m.gguf" --task add --digits $d --n "$EVAL_N" $R -t 1 | grep '^add'
    done
done
# tool use, through the server's tool-call API (the eval runs the tools)
[ "${TOOLS:-0}" = 1 ] && {
"$NUAGE" serve -m "$OUT/nuage-fast.gguf" --no-db --port 0 -t 1 > "$WORK/serve.log" 2>&1 & SERVE=$!
trap 'kill $SERVE 2>/dev/null' EXIT
for _ in $(seq 50); do grep -q ready "$WORK/serve.log" && break; sleep 0.2; done
URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$WORK/serve.log" | head -1)
echo "== nuage-fast, tools"
run eval --url "$URL" --task tools --n "$EVAL_N"
kill $SERVE
}
sha256sum "$OUT/nuage-fast.gguf" "$OUT/nuage-think.gguf"
echo "total wall time: $(( $(date +%s) - t_start ))s (scratch files in $WORK)"
