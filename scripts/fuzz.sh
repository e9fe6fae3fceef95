#!/usr/bin/env bash
# Build and run every libFuzzer harness (tests/fuzz/fuzz_*.c) under
# ASan+UBSan.
#
#   scripts/fuzz.sh                 each harness for its share of FUZZ_BUDGET
#                                   seconds (default 420, at most 60 each)
#   scripts/fuzz.sh --runs 10000000 each harness for that many executions
#   scripts/fuzz.sh fuzz_http ...   only the harnesses named
#
# Seeds come from tests/fuzz/corpus/<name>/ or corpus/<name without
# fuzz_>/ (committed; never modified:
# each run works on a copy in build-fuzz/corpus/<name>/, which keeps what
# it found between runs). A crash, leak, timeout or out-of-memory
# (2 GB) fails the script; the reproducer is left in build-fuzz/ and its
# name printed (timeout 20 s: a loaded CI machine runs a bounded render
# several times slower). Fix what a fuzzer finds with a regression test.
# Needs clang (Debian: apt-get install clang).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=""
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    *) names+=("$1"); shift ;;
  esac
done

cc="${CC:-clang}"
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "fuzz: $cc not found (apt-get install clang)"; exit 1
fi
build=build-fuzz
CC="$cc" cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNUAGE_FUZZ=ON >/dev/null
if [ ${#names[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do names+=("$(basename "$f" .c)"); done
fi
cmake --build "$build" -j"$(nproc)" --target "${names[@]}" >/dev/null

budget="${FUZZ_BUDGET:-420}"
per=$(( budget / ${#names[@]} ))
[ "$per" -gt 60 ] && per=60
[ "$per" -lt 10 ] && per=10

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=0
for name in "${names[@]}"; do
  corpus="$build/corpus/$name"
  mkdir -p "$corpus"
  # seeds: tests/fuzz/corpus/<name>/, or without the fuzz_ prefix (regex,
  # json_schema, gbnf, toolparse: those seeds were skipped before)
  seeds="tests/fuzz/corpus/$name"
  [ -d "$seeds" ] || seeds="tests/fuzz/corpus/${name#fuzz_}"
  [ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
  dict=()
  [ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
  if [ -n "$runs" ]; then limit=(-runs="$runs"); else limit=(-max_total_time="$per"); fi
  # Harnesses with threads of their own (a server, a batch runner) allocate
  # across inputs, so libFuzzer's per-input leak check (a whole-heap LSan
  # scan whenever mallocs and frees differ) ran on nearly every input and
  # made them 6x slower; leaks are still reported when the process exits.
  extra=()
  case "$name" in fuzz_http|fuzz_batch_jsonl) extra=(-detect_leaks=0) ;; esac
  log="$build/$name.log"
  start=$(date +%s)
  if (cd "$build" && "./tests/fuzz/$name" "${limit[@]}" "${dict[@]}" "${extra[@]}" -timeout=20 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 "corpus/$name") >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  echo "fuzz: $name: $status, $execs executions in $(( $(date +%s) - start )) s, coverage $cov edges"
  if [ "$status" = FAILED ]; then
    grep -E 'ERROR|SUMMARY|Test unit written|==[0-9]+==' "$log" | head -20
  fi
done
exit $failed
