#!/usr/bin/env bash
# The JSON endpoints the console uses, with curl against a real `nuage
# serve` with a store: /admin/tenants, /admin/keys, /admin/stats (admin
# key only: 401 without a key, 403 with a tenant key), tenant and key
# creation and revocation (a revoked key gets 401 at once, admin keys are
# refused over HTTP), and the console's files (public, with their headers;
# only known paths). Needs NUAGE_BIN (set by ctest) and curl (else 77).
set -u
bin=${NUAGE_BIN:?NUAGE_BIN not set}
src="${NUAGE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
command -v curl >/dev/null 2>&1 || { echo "curl not found: skipped"; exit 77; }
source "$(dirname "$0")/server_lib.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nuage-capi-XXXXXX")
pid=
trap 'stop_server "$pid"; rm -rf "$tmp"' EXIT
db=$tmp/nuage.db
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }
admin() { "$bin" admin --db "$db" "$@"; }

admin tenant create acme --rpm 100 >/dev/null
tkey=$(admin key create --tenant acme 2>/dev/null)
akey=$(admin key create --admin 2>/dev/null)
NUAGE_DB= "$bin" serve -m "$src/models/nuage-fast.gguf" --db "$db" --port 0 --quiet 2>"$tmp/log" &
pid=$!
port=
for _ in $(seq 1 600); do
  [ -z "$port" ] && port=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9]*\) .*/\1/p' "$tmp/log" | head -1)
  [ -n "$port" ] && health_ok "$port" && break
  sleep 0.1
done
health_ok "$port" || { cat "$tmp/log"; echo "FAIL: server did not start"; exit 1; }
u="http://127.0.0.1:$port"

# code METHOD PATH KEY [BODY]: the HTTP status; the body in $tmp/body.
code() {
  local m=$1 p=$2 k=$3 b=${4:-}
  local args=(-s --path-as-is -o "$tmp/body" -w '%{http_code}' -X "$m")
  [ -n "$k" ] && args+=(-H "Authorization: Bearer $k")
  [ -n "$b" ] && args+=(-H 'Content-Type: application/json' --data "$b")
  curl "${args[@]}" "$u$p"
}
expect() { # WANT DESCRIPTION METHOD PATH KEY [BODY]
  local want=$1 what=$2; shift 2
  local got; got=$(code "$@")
  if [ "$got" = "$want" ]; then ok "$what ($got)"; else bad "$what: $got, want $want: $(cat "$tmp/body")"; fi
}
has() { if grep -q -- "$2" "$tmp/body"; then ok "$1"; else bad "$1: $(cat "$tmp/body")"; fi; }

# ---- health names the release, as `nuage --version` does ----
ver=$("$bin" --version | sed -n 's/^nuage //p')
expect 200 "GET /health" GET /health ""
has "/health reports version $ver" "\"version\": *\"$ver\""

# ---- fail closed ----
for p in /admin/tenants /admin/stats; do
  expect 401 "GET $p without a key" GET "$p" ""
  expect 403 "GET $p with a tenant key" GET "$p" "$tkey"
done
expect 403 "POST /admin/keys with a tenant key" POST /admin/keys "$tkey" '{"tenant":"acme"}'
expect 403 "DELETE /admin/keys/1 with a tenant key" DELETE /admin/keys/1 "$tkey"

# ---- tenants ----
expect 200 "list tenants" GET /admin/tenants "$akey"
has "acme listed with its limits" '"name":"acme","tpm":0,"rpm":100'
grep -q "$tkey" "$tmp/body" && bad "a secret in the listing" || ok "no secret in the listing"
expect 201 "create tenant beta" POST /admin/tenants "$akey" '{"name":"beta","tpm":5000,"rpm":0,"weight":2}'
has "created tenant echoed" '"name":"beta"'
expect 409 "duplicate tenant" POST /admin/tenants "$akey" '{"name":"beta"}'
expect 400 "invalid tenant name" POST /admin/tenants "$akey" '{"name":"bad name"}'
expect 400 "negative tpm" POST /admin/tenants "$akey" '{"name":"gamma","tpm":-1}'
expect 400 "no name" POST /admin/tenants "$akey" '{}'
expect 405 "PUT /admin/tenants" PUT /admin/tenants "$akey" '{}'
expect 200 "new limits for beta" PATCH /admin/tenants/beta "$akey" '{"rpm":7}'
has "rpm changed, the rest kept" '"name":"beta","tpm":5000,"rpm":7,"weight":2'
expect 404 "limits of an unknown tenant" PATCH /admin/tenants/nobody "$akey" '{"rpm":7}'
expect 400 "bad weight" PATCH /admin/tenants/beta "$akey" '{"weight":0}'

# ---- keys ----
expect 400 "no admin keys over HTTP" POST /admin/keys "$akey" '{"tenant":"beta","admin":true}'
expect 400 "a key needs a tenant" POST /admin/keys "$akey" '{}'
expect 404 "unknown tenant" POST /admin/keys "$akey" '{"tenant":"nobody"}'
expect 201 "create a key for beta" POST /admin/keys "$akey" '{"tenant":"beta"}'
bkey=$(sed -n 's/.*"key":"\(nk-[^"]*\)".*/\1/p' "$tmp/body")
bid=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' "$tmp/body")
[ -n "$bkey" ] && [ -n "$bid" ] && ok "new key and id returned" || bad "no key in $(cat "$tmp/body")"
expect 200 "the new key works" GET /v1/models "$bkey"
grep -qi "^x-ratelimit-limit-requests: 7" <(curl -s -D - -o /dev/null -H "Authorization: Bearer $bkey" "$u/v1/models") \
  && ok "the new limit is in effect" || bad "x-ratelimit-limit-requests is not 7"
expect 403 "the new key is no admin key" GET /admin/stats "$bkey"
expect 200 "revoke it" DELETE "/admin/keys/$bid" "$akey"
expect 401 "the revoked key gets 401" GET /v1/models "$bkey"
expect 404 "revoke an unknown key" DELETE /admin/keys/999999 "$akey"
expect 400 "revoke a malformed id" DELETE /admin/keys/abc "$akey"
expect 200 "delete tenant beta" DELETE /admin/tenants/beta "$akey"
expect 404 "delete it again" DELETE /admin/tenants/beta "$akey"

# ---- stats ----
code POST /v1/chat/completions "$tkey" '{"messages":[{"role":"user","content":"What is 2 + 2?"}],"max_tokens":8}' >/dev/null
# usage over a range (until: a date is inclusive)
today=$(date -u +%Y-%m-%d)
expect 200 "usage until today" GET "/v1/usage?since=$today&until=$today" "$tkey"
has "today's request counted" '"requests":1,'
expect 200 "usage until 2000-01-01" GET "/v1/usage?until=2000-01-01" "$tkey"
has "nothing before 2000" '"requests":0,'
expect 400 "bad until" GET "/v1/usage?until=soon" "$tkey"
expect 200 "GET /admin/stats" GET /admin/stats "$akey"
has "stats: per-deployment scheduler state" '"stats":{"queued":0,"running":0'
has "stats: TTFT histogram with percentiles" '"time_to_first_token":{"count":1,'
has "stats: generated tokens" '"generated_tokens":[1-9]'

# ---- the console's files ----
expect 200 "GET / (public)" GET / ""
curl -s -D "$tmp/h" -o /dev/null "$u/console/app.js"
grep -qi "^content-security-policy: default-src 'self'" "$tmp/h" && ok "CSP header" || bad "CSP: $(cat "$tmp/h")"
grep -qi "^x-content-type-options: nosniff" "$tmp/h" && ok "nosniff" || bad "nosniff"
grep -qi "^content-type: text/javascript" "$tmp/h" && ok "JS content type" || bad "JS type: $(cat "$tmp/h")"
expect 404 "unknown console file" GET /console/secret.txt ""
expect 404 "no path tricks" GET "/console/%2e%2e/nuage.db" ""
expect 404 "no path tricks (2)" GET "/console/vendor/../../CMakeLists.txt" ""

# A clean exit, and no sanitizer report in the server's log.
stop_server "$pid"; pid=
if grep -Eq "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$tmp/log"; then bad "sanitizer report: $(cat "$tmp/log")"; else ok "clean server log"; fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
