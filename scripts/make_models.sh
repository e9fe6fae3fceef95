#!/usr/bin/env bash
# make_models.sh - regenerate nuage's own models from scratch:
#   models/nuage-fast.gguf   answers directly
#   models/nuage-think.gguf  writes its work in <think>...</think> first
# One command, no network, no inputs: synthetic data (fixed seeds), a
# shared byte-level BPE tokenizer, two training runs, held-out evaluation.
# TOOLS=1 adds a second stage for nuage-fast (issue 18; not shipped: 650
# steps teach the call format and the tool choice, not yet the copying of
# arguments and results): tool-use conversations mixed
# with the first stage's data (train --init, the trainer's ChatML-with-
# tools template), and the tool metrics through the server.
# The trainer's results do not depend on the thread count (fixed gradient
# shards, fixed reduction order), so a rerun on the same kind of CPU
# (AVX2+FMA) gives bit-identical files.
#
# usage: scripts/make_models.sh [BUILD_DIR]   (default: build)
#   env: THREADS (default 2), WORK (scratch dir, default a temp dir),
#        EVAL_N (questions per task, default 200), NICE (default 10),
#        PARALLEL=1 trains the two models at the same time (same results),
#        OUT (where the models go, default models/),
#        TOOLS=1 trains the tool stage; BASE_FAST=FILE skips nuage-fast's
#        first stage and starts from FILE (the first stage is
#        deterministic: the shipped models/nuage-fast.gguf is its output)
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
STAGE2A="--steps 1000 --stop-after 400 --batch 32 --lr 1e-3 --lr-min 1e-4 --warmup 30 --wd 0.1 --clip 1 --seed 1 -t $THREADS --ckpt-every 100"
STAGE2B="--steps 250 --batch 32 --lr 4e-4 --lr-min 2e-5 --warmup 10 --wd 0.1 --clip 1 --seed 2 -t $THREADS --ckpt-every 50"
train_fast() {
    if [ -n "${BASE_FAST:-}" ]; then
        cp "$BASE_FAST" "$WORK/nuage-fast-base.gguf"
        echo "fast: first stage taken from $BASE_FAST" | tee "$WORK/fast.log" >&2
    else
        timed fast nice -n "$NICE" "$NUAGE" train --data "$WORK/fast.jsonl" --tokenizer "$WORK/tok.gguf" $SHAPE $OPTS --steps 6000 \
            --ckpt "$WORK/fast.ckpt" --name nuage-fast --out "$WORK/nuage-fast-base.gguf" 2> >(tee "$WORK/fast.log" >&2)
    fi
    if [ "${TOOLS:-0}" != 1 ]; then
        cp "$WORK/nuage-fast-base.gguf" "$OUT/nuage-fast.gguf"
        return
    fi
    # second stage: tool use (30,000 tool chats = ~55,000 lines, one per
    # assistant turn) mixed with the first stage's data, from its weights
    run synth-data --task tools --n 30000 --seed 11 --out "$WORK/tools.jsonl"
    cat "$WORK/fast.jsonl" "$WORK/tools.jsonl" > "$WORK/fast2.jsonl"
    # (a) lr 1e-3 on a 1,000-step cosine schedule, cut at step 400; (b) a
    # short anneal from there, lr 4e-4 -> 2e-5, other batches (seed 2)
    timed fast-tools-a nice -n "$NICE" "$NUAGE" train --data "$WORK/fast2.jsonl" --init "$WORK/nuage-fast-base.gguf" \
        --tools-template $STAGE2A --ckpt "$WORK/fast2a.ckpt" --out "$WORK/nuage-fast-tools-a.gguf" 2> >(tee -a "$WORK/fast.log" >&2)
    timed fast-tools-b nice -n "$NICE" "$NUAGE" train --data "$WORK/fast2.jsonl" --init "$WORK/nuage-fast-tools-a.gguf" \
        --tools-template $STAGE2B --ckpt "$WORK/fast2b.ckpt" --out "$OUT/nuage-fast.gguf" 2> >(tee -a "$WORK/fast.log" >&2)
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
