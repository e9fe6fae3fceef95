#!/usr/bin/env bash
# bench_quota_cluster.sh - one tenant's TPM / RPM across a cluster
# (docs/cluster.md "Quotas across replicas"): 3 replicas behind HAProxy on
# PostgreSQL (scripts/cluster.sh), a tenant at rpm 600 / tpm 60000, 200
# clients (bench/quota_load.py) for DURATION seconds, every request 20
# prompt + 80 output tokens (so both limits bind at once: 600 x 100 =
# 60000). Prints the requests and tokens admitted in the first full
# 60-s window and in the busiest 60-s window (from the clients' send
# times), the answers per replica, and the cost of the quota check:
# bench_quota in memory and against the cluster's PostgreSQL while the
# load runs.
# usage: bench/bench_quota_cluster.sh [BUILD_DIR] (env DURATION=90 CLIENTS=200 RPM=600 TPM=60000)
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
export NUAGE_BIN=${NUAGE_BIN:-$build/nuage}
dur=${DURATION:-90}; clients=${CLIENTS:-200}; rpm=${RPM:-600}; tpm=${TPM:-60000}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nuage-bq-XXXXXX")
export NUAGE_CLUSTER_DIR=$tmp/state
trap 'bash "$src/scripts/cluster.sh" down 2>/dev/null; rm -rf "$tmp"' EXIT
bash "$src/scripts/cluster.sh" up 3 >"$tmp/up.out" 2>"$tmp/up.err" || { cat "$tmp/up.err"; exit 1; }
url=$(sed -n 's/^url=//p' "$tmp/up.out"); db=$(sed -n 's/^db=//p' "$tmp/up.out")
case $db in postgres*) ;; *) echo "needs PostgreSQL (store is $db)"; exit 1 ;; esac
"$NUAGE_BIN" admin --db "$db" tenant create bench --rpm "$rpm" --tpm "$tpm" >/dev/null
key=$("$NUAGE_BIN" admin --db "$db" key create --tenant bench)
echo "3 replicas, PostgreSQL store; tenant rpm $rpm tpm $tpm; $clients clients for $dur s; load $(cut -d' ' -f1-3 /proc/loadavg)"
tid=$(psql "$db" -At -c "SELECT id FROM tenants WHERE name = 'bench'")
# Every admission as the database records it (a trigger on the window's
# table, for this measurement only): the rolling 60-s windows are then
# counted here from the admission times, not from the limiter's own sums.
psql "$db" -q -c "CREATE TABLE bench_admits(req BIGINT, tenant BIGINT, t_ms BIGINT, tokens BIGINT);
  CREATE FUNCTION bench_admit() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN
    IF NEW.scope = '' THEN INSERT INTO bench_admits VALUES (NEW.req, NEW.tenant, NEW.t_ms, NEW.tokens); END IF;
    RETURN NEW; END \$\$;
  CREATE TRIGGER bench_admit AFTER INSERT ON nuage_quota_log FOR EACH ROW EXECUTE FUNCTION bench_admit();" ||
  { echo "cannot install the measurement trigger"; exit 1; }
python3 "$src/bench/quota_load.py" --url "$url" --key "$key" -c "$clients" -d "$dur" --out "$tmp/answers" &
lp=$!
# The limiter's own view, every 0.5 s: the live window in the database.
( while kill -0 $lp 2>/dev/null; do
    psql "$db" -At -F ' ' -c "SELECT count(*), coalesce(sum(tokens), 0) FROM nuage_quota_log WHERE tenant = $tid
      AND scope = '' AND t_ms > floor(extract(epoch FROM clock_timestamp()) * 1000) - 60000" 2>/dev/null
    sleep 0.5
  done >"$tmp/window" ) &
sleep $((dur / 3))
echo "quota check while the load runs (load $(cut -d' ' -f1-3 /proc/loadavg)):"
"$build/bench/bench_quota" --db "$db" -t 4 -n 250 --conns 4
"$build/bench/bench_quota" --db "$db" -t 4 -n 250 --conns 4 --same-tenant | sed -n '/PostgreSQL/,$p'
wait $lp
sleep 1
echo "quota check after the load (load $(cut -d' ' -f1-3 /proc/loadavg)):"
"$build/bench/bench_quota" --db "$db" -t 4 -n 250 --conns 4 | sed -n '/PostgreSQL/,$p'
# The server's arrival time of each admitted request (completion - latency).
psql "$db" -At -F ' ' -c "SELECT round(time_ms - latency_ms), prompt_tokens + completion_tokens FROM usage
  WHERE tenant_id = $tid AND status = 200" >"$tmp/arrivals"
psql "$db" -At -F ' ' -c "SELECT t_ms, tokens FROM bench_admits WHERE tenant = $tid" >"$tmp/admits"
python3 - "$tmp/answers" "$rpm" "$tpm" "$tmp/window" "$tmp/arrivals" "$tmp/admits" <<'PY'
import sys, collections
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
rpm, tpm = int(sys.argv[2]), int(sys.argv[3])
win = [tuple(map(int, l.split())) for l in open(sys.argv[4]) if l.strip()]
if win:
    print("the limiter's live window sampled every 0.5 s (%d samples): max %d requests, %d tokens"
          % (len(win), max(w[0] for w in win), max(w[1] for w in win)))
arr = sorted(tuple(int(float(x)) for x in l.split()) for l in open(sys.argv[5]) if l.strip())
def busiest(ok):
    best_n = best_t = 0; j = 0; run = 0
    for i in range(len(ok)):
        while j < len(ok) and ok[j][0] < ok[i][0] + 60000:
            run += ok[j][1]; j += 1
        best_n = max(best_n, j - i); best_t = max(best_t, run)
        run -= ok[i][1]
    return best_n, best_t
adm = sorted(tuple(int(x) for x in l.split()) for l in open(sys.argv[6]) if l.strip())
if adm:
    n, t = busiest(adm)
    print("busiest 60-s window by admission time (database clock, %d admissions): %d requests (%.2f %%), ~%d tokens (%.2f %%)"
          % (len(adm), n, 100.0 * n / rpm, t, 100.0 * t / tpm))
    first = [a for a in adm if a[0] < adm[0][0] + 60000]
    print("first 60-s window by admission time: %d requests (%.2f %%)" % (len(first), 100.0 * len(first) / rpm))
if arr:
    n, t = busiest(arr)
    print("busiest 60-s window by server arrival time (usage records, %d admitted): %d requests (%.2f %%), %d tokens (%.2f %%)"
          % (len(arr), n, 100.0 * n / rpm, t, 100.0 * t / tpm))
ok = sorted((int(r[0]), int(r[3])) for r in rows if r[2] == "200")
st = collections.Counter(r[2] for r in rows)
print("answers by status:", dict(st))
print("200 by replica:", dict(collections.Counter(r[4] for r in rows if r[2] == "200")))
if not ok:
    sys.exit(1)
t0 = ok[0][0]
first = [t for s, t in ok if s < t0 + 60000]
print("first 60-s window from the first admission: %d requests (%.2f %% of rpm), %d tokens (%.2f %% of tpm)"
      % (len(first), 100.0 * len(first) / rpm, sum(first), 100.0 * sum(first) / tpm))
best_n, best_t = busiest(ok)
print("busiest 60-s window (client send times): %d requests (%.2f %%), %d tokens (%.2f %%)"
      % (best_n, 100.0 * best_n / rpm, best_t, 100.0 * best_t / tpm))
lat = sorted(int(r[1]) - int(r[0]) for r in rows if r[2] == "429")
if lat:
    print("429 answers: %d, client round trip p50 %d ms p99 %d ms" % (len(lat), lat[len(lat)//2], lat[int(len(lat)*0.99)]))
PY
