#!/usr/bin/env bash
# The data plane end to end: 3 `nuage serve` replicas behind HAProxy,
# started by scripts/cluster.sh (deploy/cluster/haproxy.cfg), on loopback.
#   1. a key created with the CLI works on every replica (asked directly)
#      and through the balancer, whose answers name several replicas in
#      x-nuage-replica; a revocation is refused by every replica within 1 s;
#   1b. a tenant's rpm holds for the 3 replicas together (PostgreSQL store);
#   2. affinity: the same x-nuage-affinity header (or body prompt_cache_key
#      or user) always lands on the same replica, different keys spread;
#   3. kill -9 of one replica during streaming load: every request started
#      after the kill succeeds (the balancer retries the refused connection
#      on another replica and takes the dead one out), and the store's usage
#      totals equal the sum of the `usage` of every completed response
#      (nothing lost, nothing counted twice; per request id with sqlite3
#      or psql when present); the dead replica's affinity keys are served
#      by the others and return to it after `cluster.sh restart`;
#   4. rolling restart (SIGTERM, drain, restart each replica in turn) under
#      a bounded load loop: zero failed requests;
#   5. a 40-line batch job: kill -9 of the replica holding its lease
#      (--batch-lease 3); another replica takes the job over after the
#      lease and finishes it from the last recorded line: 40 output lines,
#      each custom_id exactly once; no sanitizer report in any replica's
#      log (when built with NUAGE_SANITIZE).
# The store is whatever cluster.sh picks: PostgreSQL when installed, else
# one SQLite file (NUAGE_CLUSTER_STORE=sqlite forces it).
# Loops are bounded (stop file + request caps); about 30-60 s in all.
# Exit 77 (skipped) when haproxy, curl or jq are missing.
# Env (set by ctest): NUAGE_BIN, NUAGE_SOURCE_DIR.
set -u
bin=${NUAGE_BIN:?NUAGE_BIN not set}
src=${NUAGE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
haproxy=${HAPROXY:-$(command -v haproxy 2>/dev/null || echo /usr/sbin/haproxy)}
[ -x "$haproxy" ] || { echo "skipped: haproxy not installed"; exit 77; }
command -v curl >/dev/null 2>&1 || { echo "skipped: curl not installed"; exit 77; }
command -v jq >/dev/null 2>&1 || { echo "skipped: jq not installed"; exit 77; }
have_sqlite=0; command -v sqlite3 >/dev/null 2>&1 && have_sqlite=1
have_psql=0; command -v psql >/dev/null 2>&1 && have_psql=1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nuage-cluster-XXXXXX")
export NUAGE_CLUSTER_DIR=$tmp/state NUAGE_BIN=$bin HAPROXY=$haproxy
# a short batch lease, so that section 5's takeover takes seconds
export NUAGE_CLUSTER_SERVE_FLAGS="${NUAGE_CLUSTER_SERVE_FLAGS:-} --batch-lease 3"
cluster() { bash "$src/scripts/cluster.sh" "$@"; }
cleanup() { cluster down 2>/dev/null; [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"; }
trap cleanup EXIT
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }
finish() { echo "$pass passed, $fail failed"; [ "$fail" = 0 ]; exit $?; }

# ---- --replica-id must fit a header value ----
"$bin" serve -m "$src/models/nuage-fast.gguf" --no-db --port 0 --replica-id $'r1\r\nx-evil: 1' >/dev/null 2>"$tmp/rid.err"
rc=$?
[ $rc = 2 ] && grep -q -- "--replica-id" "$tmp/rid.err" && ok "--replica-id with CR/LF refused (exit 2)" ||
  bad "--replica-id with CR/LF: exit $rc: $(cat "$tmp/rid.err")"

# ---- up ----
if ! cluster up 3 >"$tmp/up.out" 2>"$tmp/up.err"; then
  cat "$tmp/up.err"; bad "cluster.sh up 3"; finish
fi
[ "$(wc -l <"$tmp/up.out")" = 3 ] && grep -q '^url=http://127\.0\.0\.1:[0-9]*$' "$tmp/up.out" &&
  grep -q '^db=.' "$tmp/up.out" && grep -Eq '^admin_key=nk-[A-Za-z0-9]{8}-[A-Za-z0-9]{32}$' "$tmp/up.out" &&
  ok "cluster.sh up prints url=, db=, admin_key=" || bad "cluster.sh up output: $(cat "$tmp/up.out")"
url=$(sed -n 's/^url=//p' "$tmp/up.out")
db=$(sed -n 's/^db=//p' "$tmp/up.out")
state=$NUAGE_CLUSTER_DIR
rport() { cat "$state/r$1.port"; }
admin() { "$bin" admin --db "$db" "$@"; }

# chat BASE KEY [EXTRA_JSON [HEADER]]: one short completion; prints "CODE REPLICA".
chat() {
  local base=$1 key=$2 extra=${3:-} hdr=${4:-x-nuage-none: 1}
  local code
  code=$(curl -s --max-time 30 -D "$tmp/ch.h" -o "$tmp/ch.b" -w '%{http_code}' "$base/v1/chat/completions" \
    -H "authorization: Bearer $key" -H 'content-type: application/json' -H "$hdr" \
    -d "{\"messages\":[{\"role\":\"user\",\"content\":\"What is 12 + 30?\"}],\"max_tokens\":8$extra}")
  echo "$code $(tr -d '\r' <"$tmp/ch.h" | sed -n 's/^x-nuage-replica: //Ip' | tail -n 1)"
}

# ---- 1. keys everywhere, revocation everywhere ----
admin tenant create acme >/dev/null 2>&1 || bad "tenant create"
key=$(admin key create --tenant acme 2>/dev/null)
prefix=${key:0:11}
for i in 1 2 3; do
  r=$(chat "http://127.0.0.1:$(rport "$i")" "$key")
  [ "$r" = "200 r$i" ] && ok "CLI key works on replica r$i (x-nuage-replica r$i)" || bad "replica r$i direct: $r"
done
seen=""
for _ in $(seq 1 9); do
  r=$(chat "$url" "$key")
  case "$r" in "200 r"[1-3]) seen="$seen ${r#200 }" ;; *) bad "through the balancer: $r" ;; esac
done
n_seen=$(echo "$seen" | tr ' ' '\n' | sort -u | grep -c .)
[ "$n_seen" -ge 2 ] && ok "answers through the balancer come from $n_seen replicas:$seen" ||
  bad "one replica only through the balancer:$seen"
admin key revoke "$prefix" >/dev/null 2>&1 || bad "key revoke"
# Each replica must refuse it within 1 s of its first try (the tries of
# the three run one after the other; the time since the revocation is shown).
t0=$(date +%s%3N)
for i in 1 2 3; do
  ti=$(date +%s%3N)
  while :; do
    r=$(chat "http://127.0.0.1:$(rport "$i")" "$key")
    [ "${r%% *}" = 401 ] && break
    [ $(($(date +%s%3N) - ti)) -gt 1000 ] && break
    sleep 0.05
  done
  dt=$(($(date +%s%3N) - t0))
  [ "${r%% *}" = 401 ] && ok "revoked key refused by r$i ($dt ms after the revocation)" ||
    bad "r$i still accepts the revoked key 1 s later: $r"
done
r=$(chat "$url" "$key")
[ "${r%% *}" = 401 ] && ok "revoked key refused through the balancer" || bad "balancer after revocation: $r"

# ---- 1b. one tenant's quota holds for the cluster, not per replica ----
# rpm 6 and 18 requests sent straight to r1, r2, r3 in turn: exactly 6 are
# admitted in all (per-replica windows would admit 6 on each: 18), the
# others are 429 with retry-after; x-ratelimit-remaining-requests counts
# down across replicas. PostgreSQL store only (with one SQLite file each
# replica keeps its own window: documented).
case $db in
postgres://* | postgresql://*)
  admin tenant create quota-co --rpm 6 >/dev/null 2>&1 || bad "tenant create quota-co"
  qkey=$(admin key create --tenant quota-co 2>/dev/null)
  n200=0; n429=0; nother=0; remaining=""; retry_ok=1
  for i in $(seq 0 17); do
    r=$(( i % 3 + 1 ))
    code=$(curl -s --max-time 30 -D "$tmp/q.h" -o /dev/null -w '%{http_code}' \
      "http://127.0.0.1:$(rport "$r")/v1/chat/completions" -H "authorization: Bearer $qkey" \
      -H 'content-type: application/json' \
      -d '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2}')
    case $code in
    200) n200=$((n200 + 1))
         remaining="$remaining $(tr -d '\r' <"$tmp/q.h" | sed -n 's/^x-ratelimit-remaining-requests: //Ip')" ;;
    429) n429=$((n429 + 1)); grep -qi '^retry-after: [1-9]' "$tmp/q.h" || retry_ok=0 ;;
    *) nother=$((nother + 1)) ;;
    esac
  done
  [ "$n200" = 6 ] && [ "$n429" = 12 ] && [ "$nother" = 0 ] &&
    ok "rpm 6 across 3 replicas: 6 admitted, 12 refused (per-replica windows would admit 18)" ||
    bad "rpm 6 across 3 replicas: $n200 admitted, $n429 refused (429), $nother other"
  [ "$(echo $remaining)" = "5 4 3 2 1 0" ] && ok "x-ratelimit-remaining-requests counts down across replicas" ||
    bad "x-ratelimit-remaining-requests across replicas:$remaining"
  [ $retry_ok = 1 ] && ok "refused requests carry retry-after" || bad "a 429 without retry-after"
  ;;
*) echo "skip: shared quota check (store is not PostgreSQL: $db)" ;;
esac

# ---- 2. affinity ----
key=$(admin key create --tenant acme 2>/dev/null)
aff_check() { # WHAT EXTRA HEADER
  local first="" r same=1
  for _ in $(seq 1 5); do
    r=$(chat "$url" "$key" "$2" "$3")
    [ "${r%% *}" = 200 ] || { same=0; break; }
    [ -z "$first" ] && first=${r#* }
    [ "${r#* }" = "$first" ] || same=0
  done
  [ "$same" = 1 ] && ok "affinity by $1: 5 requests on $first" || bad "affinity by $1: $r (first $first)"
}
aff_check "x-nuage-affinity header" "" "x-nuage-affinity: conv-42"
aff_check "body prompt_cache_key" ",\"prompt_cache_key\":\"pck-7\"" ""
aff_check "body user" ",\"user\":\"user-alice\"" ""
# The header wins over the body: same replica as the header alone.
h=$(chat "$url" "$key" "" "x-nuage-affinity: conv-42")
hb=$(chat "$url" "$key" ",\"prompt_cache_key\":\"zzz\"" "x-nuage-affinity: conv-42")
[ "${h#* }" = "${hb#* }" ] && ok "the header takes precedence over the body" || bad "header vs body: $h / $hb"
spread=""
for k in $(seq 1 12); do
  r=$(chat "$url" "$key" "" "x-nuage-affinity: key-$k"); spread="$spread ${r#* }"
  echo "key-$k ${r#* }" >>"$tmp/keymap"
done
n_seen=$(echo "$spread" | tr ' ' '\n' | sort -u | grep -c .)
[ "$n_seen" -ge 2 ] && ok "12 affinity keys spread over $n_seen replicas" || bad "affinity keys not spread:$spread"

# ---- load workers ----
# worker W MAX MODE KEY: up to MAX sequential requests through the balancer
# until $tmp/stop exists; MODE stream|mixed. One line per request in
# $tmp/w.W: start_ms end_ms http_code curl_rc replica complete prompt completion id
worker() {
  local w=$1 max=$2 mode=$3 wkey=$4 n t0 t1 code rc rep done pt ct id stream body
  for n in $(seq 1 "$max"); do
    [ -e "$tmp/stop" ] && break
    stream=true
    [ "$mode" = mixed ] && [ $((n % 2)) = 0 ] && stream=false
    body="{\"messages\":[{\"role\":\"user\",\"content\":\"What is $w + $n?\"}],\"max_tokens\":120,\"ignore_eos\":true,\"stream\":$stream,\"stream_options\":{\"include_usage\":true}}"
    [ "$stream" = false ] && body="{\"messages\":[{\"role\":\"user\",\"content\":\"What is $w + $n?\"}],\"max_tokens\":60,\"ignore_eos\":true}"
    t0=$(date +%s%3N)
    code=$(curl -sN --max-time 60 -D "$tmp/h.$w" -o "$tmp/b.$w" -w '%{http_code}' "$url/v1/chat/completions" \
      -H "authorization: Bearer $wkey" -H 'content-type: application/json' -d "$body")
    rc=$?
    t1=$(date +%s%3N)
    rep=$(tr -d '\r' <"$tmp/h.$w" | sed -n 's/^x-nuage-replica: //Ip' | tail -n 1)
    done=0
    if [ "$stream" = true ]; then grep -q '^data: \[DONE\]' "$tmp/b.$w" && done=1
    else grep -q '"usage":{' "$tmp/b.$w" && done=1; fi
    [ "$code" = 200 ] && [ "$rc" = 0 ] || done=0
    pt=$(grep -o '"usage":{"prompt_tokens":[0-9]*' "$tmp/b.$w" | tail -n 1 | grep -o '[0-9]*$')
    ct=$(grep -o '"usage":{[^}]*"completion_tokens":[0-9]*' "$tmp/b.$w" | tail -n 1 | grep -o '[0-9]*$')
    id=$(grep -o '"id":"chatcmpl-[0-9a-f]*"' "$tmp/b.$w" | head -n 1 | cut -d'"' -f4)
    echo "$t0 $t1 $code $rc ${rep:--} $done ${pt:-0} ${ct:-0} ${id:--}" >>"$tmp/w.$w"
  done
}
# usage_of TENANT FIELD: the store's total (admin usage --json).
usage_of() {
  admin usage --tenant "$1" --json 2>/dev/null | tr -d ' \n' | grep -o "\"$2\":[0-9]*" | head -n 1 | grep -o '[0-9]*$'
}

# ---- 3. kill -9 during streaming load ----
admin tenant create bolt >/dev/null 2>&1
key=$(admin key create --tenant bolt 2>/dev/null)
admin tenant create probe >/dev/null 2>&1
pkey=$(admin key create --tenant probe 2>/dev/null)
rm -f "$tmp/stop" "$tmp"/w.*
pids=()
for w in 1 2 3 4 5 6; do worker "$w" 200 stream "$key" & pids+=($!); done
sleep 1
# Kill while r2 is generating: its /metrics shows a running sequence.
for _ in $(seq 1 200); do
  curl -s --max-time 1 "http://127.0.0.1:$(rport 2)/metrics" | grep -Eq '^nuage_running_sequences [1-9]' && break
done
victim=$(cat "$state/r2.pid")
t_kill=$(date +%s%3N)
kill -KILL "$victim"
sleep 4
touch "$tmp/stop"
wait "${pids[@]}"
cat "$tmp"/w.* >"$tmp/kill.all"
total=$(wc -l <"$tmp/kill.all")
after_bad=$(awk -v t="$t_kill" '$1 > t && $6 != 1' "$tmp/kill.all" | wc -l)
after=$(awk -v t="$t_kill" '$1 > t' "$tmp/kill.all" | wc -l)
cut_n=$(awk '$6 != 1' "$tmp/kill.all" | wc -l)
on_r2_after=$(awk -v t="$t_kill" '$1 > t && $5 == "r2"' "$tmp/kill.all" | wc -l)
[ "$after" -gt 0 ] && [ "$after_bad" = 0 ] &&
  ok "kill -9 r2: all $after requests started after the kill succeeded ($cut_n of $total cut by the kill)" ||
  bad "kill -9 r2: $after_bad of $after requests started after the kill failed: $(awk -v t="$t_kill" '$1 > t && $6 != 1' "$tmp/kill.all" | head -n 3)"
# Whether a stream was still running at the kill is a race (r2's streams
# last a fraction of a second); the checks below hold either way.
[ "$cut_n" -ge 1 ] && ok "the kill cut $cut_n stream(s) in flight on r2" ||
  echo "note: every stream on r2 had ended when the kill landed (timing); the accounting checks still apply"
[ "$on_r2_after" = 0 ] && ok "no answer from the dead replica after the kill" || bad "$on_r2_after answers from r2 after its kill"
for _ in $(seq 1 10); do
  r=$(chat "$url" "$key")
  [ "${r%% *}" = 200 ] || break
done
[ "${r%% *}" = 200 ] && ok "10 new requests through the balancer succeed with r2 dead" || bad "new request after the kill: $r"
# Affinity keys that lived on r2 move to the others while it is dead.
r2keys=$(awk '$2 == "r2" {print $1}' "$tmp/keymap")
moved=""
for k in $r2keys; do r=$(chat "$url" "$pkey" "" "x-nuage-affinity: $k"); moved="$moved $r"; done
case "$moved" in *" r2"* | *" 4"* | *" 5"*) bad "r2's affinity keys with r2 dead:$moved" ;;
  *) ok "r2's affinity keys ($(echo $r2keys | wc -w)) are served by the others while it is dead:$moved" ;; esac
cluster restart 2 2>"$tmp/restart.err" && ok "cluster.sh restart 2 brings the killed replica back" ||
  bad "restart r2: $(cat "$tmp/restart.err")"
r=$(chat "http://127.0.0.1:$(rport 2)" "$pkey")
[ "$r" = "200 r2" ] && ok "r2 serves again" || bad "r2 after restart: $r"
back=1
for k in $r2keys; do r=$(chat "$url" "$pkey" "" "x-nuage-affinity: $k"); [ "$r" = "200 r2" ] || back=0; done
[ $back = 1 ] && ok "r2's affinity keys return to it (consistent hashing)" || bad "r2's keys after its restart: $r"
# Usage goes through each replica's journal: what r2 had not shipped when
# it was killed is shipped by the restarted r2 (same --journal), so the
# store is compared once r2 is back and the journals had time to drain.
read -r c_req _ < <(awk '$6 == 1 {n++} END {print n + 10}' "$tmp/kill.all")
for _ in $(seq 1 40); do
  [ "$(usage_of bolt requests)" -ge "$c_req" ] 2>/dev/null && break
  sleep 0.5
done
# Completed responses vs the store (the 10 short ones above included).
read -r c_req c_pt c_ct < <(awk '$6 == 1 {n++; p += $7; c += $8} END {print n + 0, p + 0, c + 0}' "$tmp/kill.all")
short_pt=$(grep -o '"prompt_tokens":[0-9]*' "$tmp/ch.b" | head -n 1 | grep -o '[0-9]*$')
short_ct=$(grep -o '"completion_tokens":[0-9]*' "$tmp/ch.b" | head -n 1 | grep -o '[0-9]*$')
c_req=$((c_req + 10)); c_pt=$((c_pt + 10 * short_pt)); c_ct=$((c_ct + 10 * short_ct))
s_req=$(usage_of bolt requests); s_pt=$(usage_of bolt prompt_tokens); s_ct=$(usage_of bolt completion_tokens)
# A stream cut by the kill may already be billed (r2 wrote its record, then
# died before the client read [DONE]): the store holds every completed
# response once, plus at most one record per cut stream, never fewer.
extra=$((s_req - c_req))
if [ "$extra" = 0 ]; then
  [ "$s_pt" = "$c_pt" ] && [ "$s_ct" = "$c_ct" ] &&
    ok "usage in the store = sum of completed responses: $s_req requests, $s_pt prompt, $s_ct completion tokens" ||
    bad "usage: store $s_req/$s_pt/$s_ct, completed responses $c_req/$c_pt/$c_ct (requests/prompt/completion)"
elif [ "$extra" -gt 0 ] && [ "$extra" -le "$cut_n" ] && [ "$s_pt" -ge "$c_pt" ] && [ "$s_ct" -ge "$c_ct" ]; then
  ok "usage in the store = completed responses ($c_req) + $extra record(s) of the $cut_n stream(s) cut by the kill"
else
  bad "usage: store $s_req/$s_pt/$s_ct, completed responses $c_req/$c_pt/$c_ct, $cut_n cut (requests/prompt/completion)"
fi
# sql QUERY: rows as "a|b|c" from the store (sqlite3 or psql), 1 when neither fits.
sql() {
  case "$db" in
    postgres://*) [ $have_psql = 1 ] && psql "$db" -Atq -c "$1" ;;
    *) [ $have_sqlite = 1 ] && [ -f "$db" ] && sqlite3 "$db" "$1" ;;
  esac
}
if sql "SELECT 1" >/dev/null 2>&1; then
  # Per request id: every completed stream has exactly one record with its tokens.
  sql "SELECT request_id, prompt_tokens, completion_tokens FROM usage u JOIN tenants t ON t.id = u.tenant_id WHERE t.name = 'bolt'" |
    tr '|' ' ' | sort >"$tmp/store.ids"
  awk '$6 == 1 {print $9, $7, $8}' "$tmp/kill.all" | sort >"$tmp/resp.ids"
  missing=$(join -v 1 "$tmp/resp.ids" "$tmp/store.ids" | wc -l)
  dup=$(cut -d' ' -f1 "$tmp/store.ids" | uniq -d | wc -l)
  differ=$(join "$tmp/resp.ids" "$tmp/store.ids" | awk '$2 != $4 || $3 != $5' | wc -l)
  [ "$missing" = 0 ] && [ "$dup" = 0 ] && [ "$differ" = 0 ] &&
    ok "per request id: every completed response has one record with its tokens" ||
    bad "per request id: $missing missing, $dup duplicated, $differ with other tokens"
fi

# ---- 4. rolling restart under load ----
admin tenant create roll >/dev/null 2>&1
key=$(admin key create --tenant roll 2>/dev/null)
rm -f "$tmp/stop" "$tmp"/w.*
pids=()
for w in 1 2 3 4; do worker "$w" 400 mixed "$key" & pids+=($!); done
sleep 1
cluster roll 2>"$tmp/roll.err"; roll_rc=$?
sleep 1
touch "$tmp/stop"
wait "${pids[@]}"
cat "$tmp"/w.* >"$tmp/roll.all"
total=$(wc -l <"$tmp/roll.all")
failed=$(awk '$6 != 1' "$tmp/roll.all" | wc -l)
[ "$roll_rc" = 0 ] && ok "cluster.sh roll restarted r1, r2, r3" || bad "cluster.sh roll: $(cat "$tmp/roll.err")"
[ "$total" -ge 20 ] && [ "$failed" = 0 ] && ok "rolling restart under load: $total requests, 0 failed" ||
  bad "rolling restart: $failed of $total failed: $(awk '$6 != 1' "$tmp/roll.all" | head -n 3)"
for i in 1 2 3; do
  [ "$(cat "$state/r$i.pid")" != "" ] && grep -q " r$i " "$tmp/roll.all" || bad "no answer from r$i during the roll"
done
for _ in $(seq 1 40); do
  s_req=$(usage_of roll requests)
  [ "$s_req" -ge "$total" ] 2>/dev/null && break
  sleep 0.5
done
[ "$s_req" = "$total" ] && ok "usage: $s_req records for $total answered requests" || bad "usage after the roll: $s_req records, $total requests"

# ---- 5. a batch job moves to another replica when its holder dies ----
# The holder is the replica whose log says "batch ID: running ... on rI"
# (the runner logs one such line each time it takes a job up).
admin tenant create batchy >/dev/null 2>&1
key=$(admin key create --tenant batchy 2>/dev/null)
auth="authorization: Bearer $key"
model=$(curl -s "$url/v1/models" -H "$auth" | jq -r '.data[0].id')
for i in $(seq -w 1 40); do
  printf '{"custom_id":"c%s","method":"POST","url":"/v1/chat/completions","body":{"model":"%s","messages":[{"role":"user","content":"Count from %s to 200, one number a line."}],"max_tokens":160,"ignore_eos":true}}\n' \
    "$i" "$model" "$i"
done >"$tmp/batch.jsonl"
fid=$(curl -s "$url/v1/files" -H "$auth" -F purpose=batch -F "file=@$tmp/batch.jsonl" | jq -r .id)
bid=$(curl -s "$url/v1/batches" -H "$auth" -H 'content-type: application/json' \
  -d "{\"input_file_id\":\"$fid\",\"endpoint\":\"/v1/chat/completions\",\"completion_window\":\"24h\"}" | jq -r .id)
bget() { curl -s --max-time 10 "$url/v1/batches/$bid" -H "$auth"; }
holder="" n_before=0
for _ in $(seq 1 600); do
  holder=$(grep -l "batch $bid: running" "$state"/r*.log 2>/dev/null | head -n 1 | sed 's|.*/r\([0-9]*\)\.log$|\1|')
  n_before=$(bget | jq -r '.request_counts.completed // 0')
  [ -n "$holder" ] && [ "$n_before" -ge 3 ] && break
  sleep 0.1
done
if [ -z "$holder" ] || [ "$n_before" -ge 40 ]; then
  bad "batch $bid: no replica holding it mid-job (holder '${holder}', $n_before lines done)"
else
  kill -9 "$(cat "$state/r$holder.pid")"
  t_kill=$(date +%s%N)
  ok "batch $bid: kill -9 r$holder, its lease holder, with $n_before of 40 lines done"
  st=""
  for _ in $(seq 1 1200); do
    st=$(bget | jq -r .status)
    case "$st" in completed | failed | expired | cancelled) break ;; esac
    sleep 0.1
  done
  took=$((($(date +%s%N) - t_kill) / 1000000))
  taker=$(grep -H "batch $bid: running" "$state"/r*.log | grep -v "/r$holder.log:" | head -n 1)
  if [ "$st" = completed ] && [ -n "$taker" ]; then
    ok "batch $bid: completed ${took} ms after the kill by another replica ($(echo "$taker" | sed 's|.*/\(r[0-9]*\)\.log:.*running|\1: running|'))"
  elif [ "$st" = completed ]; then
    # The holder ran its last lines between our look and the kill (they run
    # concurrently): a race under load, not a takeover to check; the
    # exactly-once checks below still apply (test_batch_runner covers the
    # takeover deterministically).
    echo "note: batch $bid had finished on r$holder before the kill landed (timing)"
  else
    bad "batch $bid after the kill: status '$st', taken over: '${taker}'"
  fi
  b=$(bget)
  oid=$(echo "$b" | jq -r .output_file_id)
  curl -s "$url/v1/files/$oid/content" -H "$auth" >"$tmp/batch.out"
  n_out=$(grep -c . "$tmp/batch.out")
  jq -r .custom_id "$tmp/batch.out" | sort >"$tmp/batch.ids"
  for i in $(seq -w 1 40); do echo "c$i"; done >"$tmp/batch.want"
  n_ok=$(jq -r 'select(.response.status_code == 200) | .custom_id' "$tmp/batch.out" | wc -l)
  [ "$n_out" = 40 ] && cmp -s "$tmp/batch.ids" "$tmp/batch.want" && [ "$n_ok" = 40 ] &&
    [ "$(echo "$b" | jq -c .request_counts)" = '{"total":40,"completed":40,"failed":0}' ] &&
    ok "batch $bid: 40 output lines, every custom_id exactly once, all answered 200" ||
    bad "batch $bid output: $n_out lines, $n_ok answered 200, ids differ: $(comm -3 "$tmp/batch.ids" "$tmp/batch.want" | head -n 3 | tr '\n' ' '), counts $(echo "$b" | jq -c .request_counts)"
  cluster restart "$holder" 2>/dev/null || bad "restart r$holder after the batch kill"
fi

# Every replica stops cleanly; under ASan/UBSan their logs hold any report.
cluster down 2>/dev/null
if grep -l -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$state"/r*.log >/dev/null 2>&1; then
  bad "sanitizer reports in the replica logs: $(grep -h -E -m 3 "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$state"/r*.log)"
else
  ok "replicas stopped, no sanitizer report in their logs"
fi

finish
