#!/usr/bin/env bash
# Billing fails closed on a full disk (issue 12, item 4). The store lives on
# a small tmpfs (mounted here: needs root; without it the same failure is
# made with the file size limit of the running server, `prlimit --fsize`).
#  - a request running when the disk fills is answered, and its usage
#    record waits in memory;
#  - new metered requests get 503 metering_unavailable with Retry-After;
#    /health is 503 "metering_unavailable", /metrics shows it;
#  - once the disk has room again, the next request is served and every
#    record (the waiting one included) is in the database exactly once.
# NUAGE_FULL_DISK_MODE=rlimit forces the second way. Exit 77 (skipped) when
# neither a tmpfs nor prlimit is available.
set -u
src=${NUAGE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${NUAGE_BIN:-$src/build/nuage}
shared="${NUAGE_SHARED:-${NUAGE_SHARED_DEFAULT:-$src/../shared}}"
model="$shared/models/stories260K.gguf"
[ -f "$model" ] || model="$src/models/nuage-fast.gguf"
command -v curl >/dev/null || { echo "curl missing: skipped"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nuage-fulldisk-XXXXXX")
mnt="$tmp/disk"
mkdir -p "$mnt"
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ "$mode" = tmpfs ] && umount "$mnt" 2>/dev/null
  rm -rf "$tmp"
}
mode=
trap cleanup EXIT
if [ "${NUAGE_FULL_DISK_MODE:-}" != rlimit ] && mount -t tmpfs -o size=2m nuage-test "$mnt" 2>/dev/null; then
  mode=tmpfs
elif command -v prlimit >/dev/null; then
  mode=rlimit
else
  echo "cannot mount a tmpfs (not root) and no prlimit: skipped"; exit 77
fi
echo "full disk made with: $mode"
export XDG_DATA_HOME="$tmp" NUAGE_DB=""
db="$mnt/nuage.db"
"$bin" admin --db "$db" tenant create acme >/dev/null || exit 1
key=$("$bin" admin --db "$db" key create --tenant acme 2>/dev/null) || exit 1

"$bin" serve -m "$model" --alias story --db "$db" --port 0 --ctx 128 --parallel 2 --quiet 2>"$tmp/log" &
pid=$!
url=
for _ in $(seq 1 600); do
  url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$tmp/log" | head -n1)
  [ -n "$url" ] && curl -sf "$url/health" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { cat "$tmp/log"; exit 1; }
  sleep 0.1
done
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }
ask() { # -> "STATUS" on the first line, headers and body in $tmp/h, $tmp/b
  curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "$url/v1/completions" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' -d '{"model": "story", "prompt": "Once upon a time", "max_tokens": 4}'
}
requests() { "$bin" admin --db "$db" usage --json | sed -n 's/.*"requests": *\([0-9]*\).*/\1/p' | head -n1; }

check "disk has room: 200" '[ "$(ask)" = 200 ]'
check "one usage record" '[ "$(requests)" = 1 ]'

# Fill the disk.
if [ "$mode" = tmpfs ]; then
  dd if=/dev/zero of="$mnt/fill" bs=16k >/dev/null 2>&1
  df -k "$mnt" | tail -n1
else
  prlimit --pid "$pid" --fsize=1024: || exit 1
fi
check "a request admitted before the write fails is answered: 200" '[ "$(ask)" = 200 ]'
check "the log says its record waits in memory" 'grep -q "kept in memory" "$tmp/log"'
st=$(ask)
check "new metered requests: 503 ($st)" '[ "$st" = 503 ]'
check "code metering_unavailable" 'grep -q "\"metering_unavailable\"" "$tmp/b"'
check "Retry-After" 'grep -qi "^retry-after: [0-9]" "$tmp/h"'
hs=$(curl -s -o "$tmp/health" -w '%{http_code}' "$url/health")
check "/health 503 ($hs)" '[ "$hs" = 503 ]'
check "/health says metering_unavailable, 1 record pending" \
  'grep -q "metering_unavailable" "$tmp/health" && grep -q "\"pending_records\": *1" "$tmp/health"'
curl -s "$url/metrics" >"$tmp/metrics"
check "/metrics: nuage_metering_available 0" 'grep -q "^nuage_metering_available 0$" "$tmp/metrics"'
check "/metrics: 1 pending record" 'grep -q "^nuage_metering_pending_records 1$" "$tmp/metrics"'
check "/metrics: refusals counted" 'grep -q "^nuage_metering_refused_total [1-9]" "$tmp/metrics"'
check "nothing unbilled was written meanwhile" '[ "$(requests)" = 1 ]'
check "/v1/models (not metered) still answers" '[ "$(curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $key" "$url/v1/models")" = 200 ]'

# Room again: within the retry delay (1 s) the server reopens.
if [ "$mode" = tmpfs ]; then rm -f "$mnt/fill"; else prlimit --pid "$pid" --fsize=unlimited:; fi
sleep 1.2
st=$(ask)
check "room again: 200 ($st)" '[ "$st" = 200 ]'
check "/health 200" '[ "$(curl -s -o /dev/null -w "%{http_code}" "$url/health")" = 200 ]'
check "every served request billed exactly once (3)" '[ "$(requests)" = 3 ]'
kill -TERM $pid
wait $pid
rc=$?
pid=
check "clean stop ($rc)" '[ $rc = 0 ]'
check "no sanitizer report" '! grep -q "ERROR: AddressSanitizer\|runtime error:" "$tmp/log"'
[ $fail = 0 ] || { echo "--- server log"; cat "$tmp/log"; }
exit $fail
