#!/usr/bin/env bash
# stories260K through `nuage run` at temperature 0 (the incremental
# KV-cache path, tokenizer included): both 128-token greedy continuations
# must equal llama.cpp's ids exactly (../shared/vectors/logits/
# stories260K.{once,dog}.greedy.txt). Exit 77 = skipped (no shared data).
set -u
shared=${NUAGE_SHARED:-$NUAGE_SHARED_DEFAULT}
model=$shared/models/stories260K.gguf
[ -f "$model" ] || { echo "shared data not found: skipped"; exit 77; }
fail=0
for p in "once:Once upon a time" "dog:The little dog"; do
  key=${p%%:*}; text=${p#*:}
  want=$(tr -s ' \n' ' ' < "$shared/vectors/logits/stories260K.$key.greedy.txt" | sed 's/^ //; s/ $//')
  got=$("$NUAGE_BIN" run -m "$model" -p "$text" -n 128 --temp 0 --ignore-eos --ids -t 2 2>/dev/null | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')
  n_want=$(wc -w <<<"$want"); n_got=$(wc -w <<<"$got")
  if [ "$want" = "$got" ]; then
    echo "ok: '$text' -> $n_got tokens identical to llama.cpp"
  else
    echo "FAIL: '$text': got $n_got tokens, want $n_want"; echo " want: $want"; echo " got:  $got"; fail=1
  fi
  # the text path: the same continuation as text starts with the expected words
  txt=$("$NUAGE_BIN" run -m "$model" -p "$text" -n 24 --temp 0 -t 2 2>/dev/null)
  [ -n "$txt" ] || { echo "FAIL: empty text output for '$text'"; fail=1; }
  echo "    text: $text$txt" | head -c 300; echo
done
[ $fail = 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
