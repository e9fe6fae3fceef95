#!/usr/bin/env bash
# `nuage admin` end to end on a fresh database: tenants, keys (printed
# alone on stdout, never stored in clear), revocation, usage totals, JSON
# listings, exit codes (0 ok, 1 error, 2 usage) and the refusal of foreign
# or newer database files. JSON is checked with node when present, else
# with grep. Usage rows are inserted with the sqlite3 shell when present
# (that part is skipped otherwise). Needs NUAGE_BIN (set by ctest).
set -u
bin=${NUAGE_BIN:?NUAGE_BIN not set}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nuage-admin-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
db=$tmp/nuage.db
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }
have_node=0; command -v node >/dev/null 2>&1 && have_node=1
have_sqlite=0; command -v sqlite3 >/dev/null 2>&1 && have_sqlite=1

admin() { "$bin" admin --db "$db" "$@"; }
# expect_rc WANT DESCRIPTION CMD...: run, compare the exit code.
expect_rc() {
  local want=$1 what=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  if [ "$rc" = "$want" ]; then ok "$what (exit $rc)"; else bad "$what: exit $rc, want $want: $(cat "$tmp/err")"; fi
}
# json_check DESCRIPTION JSON NODE_EXPR GREP_REGEX: `a` is the parsed value.
json_check() {
  local what=$1 json=$2 expr=$3 re=$4
  if [ $have_node = 1 ]; then
    if printf '%s' "$json" | node -e "const a=JSON.parse(require('fs').readFileSync(0,'utf8')); process.exit(($expr)?0:1)"; then
      ok "$what"; else bad "$what: $json"; fi
  else
    if printf '%s' "$json" | tr -d ' \n' | grep -Eq "$re"; then ok "$what"; else bad "$what: $json"; fi
  fi
}

# ---- usage errors ----
expect_rc 2 "no command" "$bin" admin --db "$db"
expect_rc 2 "unknown command" admin frobnicate
expect_rc 0 "--help" admin --help
grep -q "tenant create" "$tmp/out" && ok "help text on stdout" || bad "help text missing"
[ ! -e "$db" ] && ok "usage errors create no database" || bad "database created by a usage error"

# ---- tenants ----
expect_rc 0 "tenant create" admin tenant create acme --tpm 1000 --rpm 10 --weight 2
expect_rc 1 "duplicate tenant" admin tenant create acme
grep -q "already exists" "$tmp/err" && ok "duplicate message" || bad "duplicate message: $(cat "$tmp/err")"
expect_rc 2 "invalid tenant name" admin tenant create "bad name"
expect_rc 2 "bad --tpm" admin tenant create other --tpm lots
expect_rc 2 "unknown option" admin tenant create other --color red
expect_rc 0 "second tenant" admin tenant create bolt
out=$(admin tenant list --json)
json_check "tenant list --json" "$out" \
  'a.length==2 && a[0].name=="acme" && a[0].tpm==1000 && a[0].rpm==10 && a[0].weight==2 && a[1].name=="bolt" && a[1].tpm==0' \
  '"name":"acme","tpm":1000,"rpm":10'
admin tenant list | grep -Eq '^[0-9]+ +acme +1000 +10 ' && ok "tenant list table" || bad "tenant list table: $(admin tenant list)"

# ---- keys ----
admin key create --tenant acme --deployments small,big --expires 2099-12-31 >"$tmp/key" 2>"$tmp/err"
rc=$?
key=$(cat "$tmp/key")
if [ $rc = 0 ] && [ "$(wc -l <"$tmp/key")" = 1 ] && [[ "$key" =~ ^nk-[A-Za-z0-9]{8}-[A-Za-z0-9]{32}$ ]]; then
  ok "key create prints the key alone on stdout"
else
  bad "key create: rc=$rc stdout='$key' stderr='$(cat "$tmp/err")'"
fi
prefix=${key:0:11}; secret=${key:12}
grep -q "$prefix" "$tmp/err" && ok "key id on stderr" || bad "stderr lacks the prefix"
expect_rc 2 "key create without tenant" admin key create
expect_rc 1 "key create for unknown tenant" admin key create --tenant nobody
expect_rc 2 "bad --expires" admin key create --tenant acme --expires 2099-13-01
expect_rc 2 "past --expires" admin key create --tenant acme --expires 2001-01-01T00:00:00Z
expect_rc 0 "RFC 3339 --expires" admin key create --tenant bolt --expires 2099-06-01T12:30:00+02:00
key2=$(cat "$tmp/out")
expect_rc 0 "admin key without tenant" admin key create --admin
out=$(admin key list --json)
json_check "key list --json" "$out" \
  "a.length==3 && a[0].prefix=='$prefix' && a[0].tenant=='acme' && a[0].deployments.join()=='small,big' && a[0].expires=='2099-12-31T00:00:00Z' && !a[0].revoked && a[1].expires=='2099-06-01T10:30:00Z' && a[2].admin && a[2].tenant===null" \
  "\"prefix\":\"$prefix\",\"tenant\":\"acme\""
case "$out" in *"$secret"*) bad "key list shows the secret" ;; *) ok "key list hides the secret" ;; esac
out=$(admin key list --tenant bolt --json)
json_check "key list --tenant" "$out" "a.length==1 && a[0].prefix=='${key2:0:11}'" "\"prefix\":\"${key2:0:11}\""
if grep -aqF "$secret" "$tmp"/nuage.db*; then bad "secret found in the database files"; else ok "secret not in the database files"; fi
expect_rc 0 "key revoke by prefix" admin key revoke "$prefix"
out=$(admin key list --tenant acme --json)
json_check "revoked in listing" "$out" "a[0].revoked===true" '"revoked":true'
admin key list | grep "$prefix" | grep -q revoked && ok "revoked in table" || bad "table status"
expect_rc 1 "revoke unknown key" admin key revoke nk-ZZZZZZZZ
expect_rc 0 "tenant delete" admin tenant delete bolt
out=$(admin key list --json)
json_check "deleting a tenant revokes its keys" "$out" "a[1].revoked===true && a[1].tenant=='#'+a[1].tenant_id" '"revoked":true.*"revoked":true'
expect_rc 1 "delete unknown tenant" admin tenant delete bolt

# ---- usage ----
out=$(admin usage --json)
json_check "usage on an empty table" "$out" "a.length==1 && a[0].group=='total' && a[0].requests==0" '"group":"total","requests":0'
expect_rc 2 "bad --by" admin usage --by week
expect_rc 2 "bad --since" admin usage --since yesterday
expect_rc 1 "usage for unknown tenant" admin usage --tenant nobody
if [ $have_sqlite = 1 ]; then
  acme_id=$(admin tenant list --json | tr -d ' \n' | sed 's/.*"id":\([0-9]*\),"name":"acme".*/\1/')
  # 2024-03-09 10:00 UTC = 1709978400 s; two days, two deployments, one other tenant.
  sqlite3 "$db" "
    INSERT INTO usage(time_ms,tenant_id,key_id,request_id,deployment,model_version,prompt_tokens,cached_tokens,completion_tokens,reasoning_tokens,status,latency_ms) VALUES
    (1709978400000,$acme_id,1,'a','small','v',10,2,5,1,200,1),
    (1709978500000,$acme_id,1,'b','big','v',20,0,7,0,200,1),
    (1710064800000,$acme_id,1,'c','small','v',30,4,9,2,200,1),
    (1710064800000,999,1,'d','small','v',1000,0,0,0,200,1);"
  out=$(admin usage --tenant acme --by day --json)
  json_check "usage by day" "$out" \
    "a.length==2 && a[0].group=='2024-03-09' && a[0].requests==2 && a[0].prompt_tokens==30 && a[0].completion_tokens==12 && a[1].group=='2024-03-10' && a[1].cached_tokens==4 && a[1].reasoning_tokens==2" \
    '"group":"2024-03-09","requests":2,"prompt_tokens":30'
  out=$(admin usage --by deployment --json)
  json_check "usage by deployment (all tenants)" "$out" \
    "a.length==2 && a[0].group=='big' && a[0].prompt_tokens==20 && a[1].group=='small' && a[1].requests==3 && a[1].prompt_tokens==1040" \
    '"group":"small","requests":3,"prompt_tokens":1040'
  out=$(admin usage --tenant acme --since 2024-03-10 --json)
  json_check "usage --since" "$out" "a.length==1 && a[0].requests==1 && a[0].prompt_tokens==30" '"requests":1,"prompt_tokens":30'
  admin usage --by tenant | grep -Eq '^acme +3 +60 ' && ok "usage table by tenant" || bad "usage table: $(admin usage --by tenant)"

  # A database from a newer nuage is refused, and left alone.
  cp "$db" "$tmp/newer.db"
  sqlite3 "$tmp/newer.db" "PRAGMA user_version = 999"
  expect_rc 1 "newer schema refused" "$bin" admin --db "$tmp/newer.db" tenant list
  grep -q "newer" "$tmp/err" && ok "newer schema message" || bad "message: $(cat "$tmp/err")"
  # Some other application's database.
  sqlite3 "$tmp/other.db" "CREATE TABLE photos(id INTEGER)"
  expect_rc 1 "foreign database refused" "$bin" admin --db "$tmp/other.db" tenant list
else
  echo "sqlite3 shell not found: usage rows and schema checks skipped"
fi

# ---- default path ----
NUAGE_DB= XDG_DATA_HOME="$tmp/xdg" "$bin" admin tenant create viaxdg >/dev/null 2>&1 \
  && [ -f "$tmp/xdg/nuage/nuage.db" ] && ok "default path under XDG_DATA_HOME" || bad "XDG default path"
NUAGE_DB="$tmp/env.db" "$bin" admin tenant list >/dev/null 2>&1 && [ -f "$tmp/env.db" ] \
  && ok "NUAGE_DB" || bad "NUAGE_DB"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
