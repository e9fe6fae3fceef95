#!/usr/bin/env bash
# bench_quota_cluster.sh - one tenant's TPM / RPM across a cluster
# (docs/cluster.md "Quotas across replicas"): 3 replicas behind HAProxy on
# PostgreSQL (scripts/cluster.sh), a tenant at rpm 600 / tpm 60000, 200
# clients (bench/quota_load.py) for DURATION seconds, every request 20
# prompt + 80 output tokens (so both limits bind at once: 600 x 100 =
# 60000). Prints the requests and tokens admitted in the first full
# 60-s window and in the busiest 60-s window (from the clients' send
# times), the answers per replica, and the cost of the quota check:
# each replica's quota-check histogram (/metrics) after the load.
# usage: bench/bench_quota_cluster.sh [BUILD_DIR] (env DURATION=180 CLIENTS=200 RPM=600 TPM=60000;
# NUAGE_CLUSTER_SERVE_FLAGS='--quota-slice 0' measures the exact keeper)
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
export NUAGE_BIN=${NUAGE_BIN:-$build/nuage}
dur=${DURATION:-180}; clients=${CLIENTS:-200}; rpm=${RPM:-600}; tpm=${TPM:-60000}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nuage-bq-XXXXXX")
export NUAGE_CLUSTER_DIR=$tmp/state
# every replica logs its admissions (wall ms, tokens): the limiter's own clock
export NUAGE_QUOTA_TRACE=$tmp/admissions
trap 'bash "$src/scripts/cluster.sh" down 2>/dev/null; rm -rf "$tmp"' EXIT
bash "$src/scripts/cluster.sh" up 3 >"$tmp/up.out" 2>"$tmp/up.err" || { cat "$tmp/up.err"; exit 1; }
url=$(sed -n 's/^url=//p' "$tmp/up.out"); db=$(sed -n 's/^db=//p' "$tmp/up.out")
case $db in postgres*) ;; *) echo "needs PostgreSQL (store is $db)"; exit 1 ;; esac
"$NUAGE_BIN" admin --db "$db" tenant create bench --rpm "$rpm" --tpm "$tpm" >/dev/null
key=$("$NUAGE_BIN" admin --db "$db" key create --tenant bench)
echo "3 replicas, PostgreSQL store; tenant rpm $rpm tpm $tpm; $clients clients for $dur s; load $(cut -d' ' -f1-3 /proc/loadavg)"
tid=$(psql "$db" -At -c "SELECT id FROM tenants WHERE name = 'bench'")
# Every admission (exact keeper) or lease (slices, --quota-slice) as the
# database records it, with what it finally holds (a trigger on the
# window's table, for this measurement only): the rolling 60-s windows by
# the database's clock are counted here, not from the limiter's own sums.
psql "$db" -q -c "CREATE TABLE bench_admits(req BIGINT PRIMARY KEY, tenant BIGINT, t_ms BIGINT, tokens BIGINT, requests BIGINT);
  CREATE FUNCTION bench_admit() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN
    IF NEW.scope = '' THEN INSERT INTO bench_admits VALUES (NEW.req, NEW.tenant, NEW.t_ms, NEW.tokens, NEW.requests)
      ON CONFLICT (req) DO UPDATE SET tokens = EXCLUDED.tokens, requests = EXCLUDED.requests; END IF;
    RETURN NEW; END \$\$;
  CREATE TRIGGER bench_admit AFTER INSERT OR UPDATE ON nuage_quota_log FOR EACH ROW EXECUTE FUNCTION bench_admit();" ||
  { echo "cannot install the measurement trigger"; exit 1; }
python3 "$src/bench/quota_load.py" --url "$url" --key "$key" -c "$clients" -d "$dur" --out "$tmp/answers" &
lp=$!
# The limiter's own view, every 0.5 s: the live window in the database.
( while kill -0 $lp 2>/dev/null; do
    psql "$db" -At -F ' ' -c "SELECT coalesce(sum(requests), 0), coalesce(sum(tokens), 0) FROM nuage_quota_log WHERE tenant = $tid
      AND scope = '' AND t_ms > floor(extract(epoch FROM clock_timestamp()) * 1000) - 60000" 2>/dev/null
    sleep 0.5
  done >"$tmp/window" ) &
wait $lp
sleep 2
# The quota check's time on each replica (nuage_quota_check_* in /metrics).
for i in 1 2 3; do
  curl -s "http://127.0.0.1:$(cat "$NUAGE_CLUSTER_DIR/r$i.port")/metrics" |
    awk -v r="r$i" '/^nuage_quota_check_(p50|p99|max)_seconds / {printf "%s %s %.3f ms  ", r, $1, $2 * 1000}
      /^nuage_quota_check_seconds_(bucket\{le="0.002"\}|count) / {printf "%s %s  ", $1, $2} END {print ""}'
done
echo "load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
# The server's arrival time of each admitted request (completion - latency).
psql "$db" -At -F ' ' -c "SELECT round(time_ms - latency_ms), prompt_tokens + completion_tokens FROM usage
  WHERE tenant_id = $tid AND status = 200" >"$tmp/arrivals"
psql "$db" -At -F ' ' -c "SELECT t_ms, tokens, requests FROM bench_admits WHERE tenant = $tid" >"$tmp/admits"
cat "$tmp"/admissions.* 2>/dev/null >"$tmp/trace"
python3 - "$tmp/answers" "$rpm" "$tpm" "$tmp/window" "$tmp/arrivals" "$tmp/admits" "$tmp/trace" <<'PY'
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
def busiest_w(ok):  # (t, tokens, requests) rows: a lease counts its requests
    best_n = best_t = 0; j = 0; rn = rt = 0
    for i in range(len(ok)):
        while j < len(ok) and ok[j][0] < ok[i][0] + 60000:
            rt += ok[j][1]; rn += ok[j][2]; j += 1
        best_n = max(best_n, rn); best_t = max(best_t, rt)
        rt -= ok[i][1]; rn -= ok[i][2]
    return best_n, best_t
if adm:
    n, t = busiest_w(adm)
    print("busiest 60-s window by admission/lease time (database clock, %d rows, %d requests): %d requests (%.2f %%), %d tokens (%.2f %%)"
          % (len(adm), sum(a[2] for a in adm), n, 100.0 * n / rpm, t, 100.0 * t / tpm))
def windows(rows, clock):  # consecutive 60-s windows from the first row
    t0 = rows[0][0]
    for k in range(0, int((rows[-1][0] - t0) / 60000) + 1):
        w = [a for a in rows if t0 + 60000 * k <= a[0] < t0 + 60000 * (k + 1)]
        print("  window %d (%s time, from the first): %d requests (%.2f %%), %d tokens (%.2f %%)"
              % (k + 1, clock, len(w), 100.0 * len(w) / rpm, sum(a[1] for a in w), 100.0 * sum(a[1] for a in w) / tpm))
tr = sorted(tuple(int(x) for x in l.split()) for l in open(sys.argv[7]) if l.strip())
if tr:
    n, t = busiest(tr)
    print("busiest 60-s window by the replicas' admission times (%d admissions, sliding): %d requests (%.2f %%), %d tokens (%.2f %%)"
          % (len(tr), n, 100.0 * n / rpm, t, 100.0 * t / tpm))
    windows(tr, "admission")
if arr:
    n, t = busiest(arr)
    print("busiest 60-s window by server arrival time (usage records, %d admitted): %d requests (%.2f %%), %d tokens (%.2f %%)"
          % (len(arr), n, 100.0 * n / rpm, t, 100.0 * t / tpm))
    windows(arr, "arrival")
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
