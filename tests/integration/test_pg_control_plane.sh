#!/usr/bin/env bash
# The control plane on PostgreSQL (docs/cluster.md), end to end with the
# real CLI and two real servers on one throwaway database
# (scripts/pg_temp.sh):
#  - `nuage admin --db postgres://...` migrates, creates a tenant and a key;
#  - two `nuage serve --db postgres://...` replicas both accept the key, and
#    the usage of requests served by either is in the one database;
#  - both announce themselves: `nuage admin cluster status` lists them;
#  - a key revoked through the CLI is refused (401) by both within 1 s;
#  - a replica killed with SIGKILL is listed as gone once its heartbeats
#    stop; one stopped with SIGTERM marks itself gone.
# Exit 77 (skipped) without PostgreSQL or curl.
set -u
src=${NUAGE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${NUAGE_BIN:-$src/build/nuage}
shared="${NUAGE_SHARED:-${NUAGE_SHARED_DEFAULT:-$src/../shared}}"
model="$shared/models/stories260K.gguf"
[ -f "$model" ] || model="$src/models/nuage-fast.gguf"
. "$src/tests/integration/server_lib.sh"
command -v curl >/dev/null || { echo "curl missing: skipped"; exit 77; }
"$src/scripts/pg_temp.sh" check || { echo "PostgreSQL not installed: skipped"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nuage-pgcp-XXXXXX")
pgdir=$(mktemp -d "${TMPDIR:-/tmp}/nuage-pgcp-db-XXXXXX") # its own: $tmp is private
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  "$src/scripts/pg_temp.sh" stop "$pgdir"
  rm -rf "$tmp"
}
trap cleanup EXIT
db=$(PG_TEMP_FAST=1 "$src/scripts/pg_temp.sh" start "$pgdir") || exit 1
export NUAGE_DB="" XDG_DATA_HOME="$tmp"
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }

out=$("$bin" admin --db "$db" migrate) || exit 1
echo "$out"
check "migrate reports schema 7" '[[ "$out" == "schema version 7"* ]]'
"$bin" admin --db "$db" tenant create acme --rpm 1000 >/dev/null || exit 1
key=$("$bin" admin --db "$db" key create --tenant acme 2>/dev/null) || exit 1
check "key created" '[[ "$key" == nk-* ]]'
prefix=${key:0:11}

start() { # $1 = replica id -> url in $tmp/$1.url
  "$bin" serve -m "$model" --alias story --db "$db" --port 0 --ctx 128 --parallel 2 --quiet \
    --replica-id "$1" 2>"$tmp/$1.log" &
  pids+=($!)
  echo $! >"$tmp/$1.pid"
}
wait_url() {
  local u=
  for _ in $(seq 1 600); do
    u=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$tmp/$1.log" | head -n1)
    [ -n "$u" ] && curl -sf "$u/health" >/dev/null 2>&1 && { echo "$u"; return 0; }
    sleep 0.1
  done
  cat "$tmp/$1.log" >&2
  return 1
}
start r1
start r2
u1=$(wait_url r1) || exit 1
u2=$(wait_url r2) || exit 1
code() { curl -s -o /dev/null -w '%{http_code}' "$1/v1/models" -H "Authorization: Bearer $key"; }
complete() {
  curl -s -o /dev/null -w '%{http_code}' "$1/v1/completions" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' -d '{"model": "story", "prompt": "Once upon a time", "max_tokens": 4}'
}
check "replica 1 accepts the key" '[ "$(code "$u1")" = 200 ]'
check "replica 2 accepts the key" '[ "$(code "$u2")" = 200 ]'
check "replica 1 serves a completion" '[ "$(complete "$u1")" = 200 ]'
check "replica 2 serves a completion" '[ "$(complete "$u2")" = 200 ]'
sleep 0.3
reqs=$("$bin" admin --db "$db" usage --json | sed -n 's/.*"requests": *\([0-9]*\).*/\1/p' | head -n1)
check "usage of both replicas in the one database (2 requests, got $reqs)" '[ "$reqs" = 2 ]'

status=$("$bin" admin --db "$db" cluster status --json)
check "cluster status lists r1 up" 'echo "$status" | tr -d " \n" | grep -q "\"id\":\"r1\".*\"status\":\"up\""'
check "cluster status lists r2 up" 'echo "$status" | tr -d " \n" | grep -q "\"id\":\"r2\".*\"status\":\"up\""'
check "the table form lists both" '[ "$("$bin" admin --db "$db" cluster status | grep -c " up ")" = 2 ]'

# Revocation through the CLI: both replicas refuse the key within 1 s.
t0=$(date +%s%N)
"$bin" admin --db "$db" key revoke "$prefix" >/dev/null || exit 1
seen1=0 seen2=0
for _ in $(seq 1 100); do
  now=$(( ($(date +%s%N) - t0) / 1000000 ))
  [ $seen1 = 0 ] && [ "$(code "$u1")" = 401 ] && seen1=$now
  [ $seen2 = 0 ] && [ "$(code "$u2")" = 401 ] && seen2=$now
  [ $seen1 != 0 ] && [ $seen2 != 0 ] && break
  sleep 0.02
done
echo "revocation seen after: replica 1 ${seen1} ms, replica 2 ${seen2} ms"
check "replica 1 refuses the revoked key within 1 s" '[ $seen1 -gt 0 ] && [ $seen1 -lt 1000 ]'
check "replica 2 refuses the revoked key within 1 s" '[ $seen2 -gt 0 ] && [ $seen2 -lt 1000 ]'

# r2 dies (no clean stop); r1 stops cleanly.
kill -KILL "$(cat "$tmp/r2.pid")"
stop_server "$(cat "$tmp/r1.pid")"
sleep 2.5
status=$("$bin" admin --db "$db" cluster status --gone-after 2 --json)
check "r1 gone after SIGTERM" 'echo "$status" | tr -d " \n" | grep -q "\"id\":\"r1\".*\"status\":\"gone\".*\"id\":\"r2\""'
check "r2 gone after 2 s without heartbeat" 'echo "$status" | tr -d " \n" | grep -q "\"id\":\"r2\".*\"status\":\"gone\""'
exit $fail
