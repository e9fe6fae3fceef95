#!/usr/bin/env bash
# scripts/cluster.sh - a nuage cluster on this machine with one command:
# the shared store, N `nuage serve` replicas on loopback ports and HAProxy
# in front (deploy/cluster/haproxy.cfg), for trying the data plane, for
# tests/integration/test_cluster.sh and for bench/bench_cluster.sh.
#
#   scripts/cluster.sh up N [--model PATH] [--port P] [--db URL|PATH] [--threads T]
#       start everything, wait until every replica is healthy and HAProxy
#       routes to all of them, then print exactly three lines on stdout:
#         url=http://127.0.0.1:PORT   (the balancer)
#         db=...                      (give it to `nuage admin --db`)
#         admin_key=nk-...            (an admin key created for this cluster)
#       Everything else (progress, errors) goes to stderr. Exit 1 on failure,
#       after stopping what was started.
#   scripts/cluster.sh down          stop all of it (SIGTERM, then SIGKILL)
#   scripts/cluster.sh restart I     restart replica I (1..N) on its port:
#                                    SIGTERM (it drains), wait, start, wait
#                                    until the balancer routes to it again
#   scripts/cluster.sh roll          restart every replica in turn
#   scripts/cluster.sh status        the balancer's view: one line per replica
#
# The store. Without --db: PostgreSQL when its server binaries are
# installed (scripts/pg_temp.sh: initdb + pg_ctl in a folder under /tmp,
# run as a non-root user even when this script runs as root, stopped and
# removed by `down`), else one SQLite file in the state folder shared by
# every replica (WAL mode: several processes may write it on one host).
# NUAGE_CLUSTER_STORE=sqlite forces the latter.
#
# State (pid files, logs, the generated haproxy.cfg, ports) lives in
# $NUAGE_CLUSTER_DIR (default /tmp/nuage-cluster); one cluster per folder.
# The binary is $NUAGE_BIN, else build/nuage of this repository; HAProxy
# is $HAPROXY, else `haproxy` on the PATH or /usr/sbin/haproxy.
# Replica I is named rI (--replica-id): that is the x-nuage-replica header
# of the answers it serves. Works as root; nothing listens off loopback.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
state=${NUAGE_CLUSTER_DIR:-/tmp/nuage-cluster}
bin=${NUAGE_BIN:-$root/build/nuage}
haproxy=${HAPROXY:-$(command -v haproxy 2>/dev/null || echo /usr/sbin/haproxy)}

say() { echo "cluster: $*" >&2; }
die() { say "$*"; exit 1; }

# True when something accepts connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port nothing listens on (random in 20000-59999; the race with another
# program taking it meanwhile is the caller's to lose).
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    port_open "$p" || { echo "$p"; return 0; }
  done
  return 1
}

# GET /health on port $1: true on 200.
health_ok() {
  ( exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
    IFS= read -r line <&3
    case "$line" in *" 200 "*) exit 0 ;; *) exit 1 ;; esac ) 2>/dev/null
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# Stop the process whose pid is in file $1: SIGTERM, up to $2 s, SIGKILL.
stop_pidfile() {
  local f=$1 wait_s=${2:-15} p
  [ -f "$f" ] || return 0
  p=$(cat "$f" 2>/dev/null)
  if alive "$p"; then
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 1 $((wait_s * 10))); do alive "$p" || break; sleep 0.1; done
    alive "$p" && kill -KILL "$p" 2>/dev/null
    for _ in $(seq 1 50); do alive "$p" || break; sleep 0.1; done
  fi
  rm -f "$f"
}

# --journal for replica $1 on a PostgreSQL store: its usage journal in the
# state folder (kept across restarts of the replica, so it ships what it left).
journal_flag() {
  case "$(cat "$state/db")" in postgres://* | postgresql://*) echo "--journal $state/r$1.journal.db" ;; esac
}

# Start replica $1 on port $2 (0: any free one); its real port lands in
# $state/rI.port. Waits for health (60 s). Returns 1 on failure.
start_replica() {
  local i=$1 port=$2 log="$state/r$1.log" p
  # shellcheck disable=SC2086 # $serve_extra is a list of flags
  setsid "$bin" serve -m "$(cat "$state/model")" --db "$(cat "$state/db")" --host 127.0.0.1 \
    --port "$port" --replica-id "r$i" --threads "$(cat "$state/threads")" --quiet $(journal_flag "$i") \
    --max-conns-per-ip 4096 --drain-timeout 30 $serve_extra >>"$log" 2>&1 </dev/null &
  p=$!
  echo "$p" >"$state/r$i.pid"
  for _ in $(seq 1 600); do
    alive "$p" || { say "replica r$i exited: $(tail -n 3 "$log")"; return 1; }
    if [ "$port" = 0 ]; then
      port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$log" 2>/dev/null | tail -n 1)
      [ -n "$port" ] || { sleep 0.1; port=0; continue; }
    fi
    if health_ok "$port"; then echo "$port" >"$state/r$i.port"; return 0; fi
    sleep 0.1
  done
  say "replica r$i not healthy after 60 s: $(tail -n 3 "$log")"
  return 1
}

# The balancer's CSV statistics (needs curl): "name status" per replica.
hap_status() {
  curl -s --max-time 2 "http://127.0.0.1:$(cat "$state/stats_port")/stats;csv" 2>/dev/null |
    awk -F, '$1=="nuage_spread" && $2!="BACKEND" && $2!="FRONTEND" {print $2, $18}'
}

# Wait (30 s) until the balancer says replica r$1 is UP (skipped without curl).
wait_routed() {
  command -v curl >/dev/null 2>&1 || { sleep 3; return 0; }
  for _ in $(seq 1 300); do
    hap_status | grep -q "^r$1 UP" && return 0
    sleep 0.1
  done
  say "the balancer does not route to r$1 after 30 s: $(hap_status | tr '\n' ' ')"
  return 1
}

cmd_down() {
  [ -d "$state" ] || return 0
  stop_pidfile "$state/haproxy.pid" 5
  for f in "$state"/r*.pid; do [ -e "$f" ] && stop_pidfile "$f" 35; done
  if [ -f "$state/pg_dir" ]; then
    bash "$root/scripts/pg_temp.sh" stop "$(cat "$state/pg_dir")" >&2 || true
    rm -f "$state/pg_dir"
  fi
  rm -f "$state/haproxy.sock"
  say "stopped (state in $state)"
}

cmd_up() {
  local n=${1:-}; shift || true
  case "$n" in '' | *[!0-9]*) die "usage: cluster.sh up N [--model PATH] [--port P] [--db URL] [--threads T]" ;; esac
  [ "$n" -ge 1 ] && [ "$n" -le 32 ] || die "N must be 1..32"
  local model="$root/models/nuage-fast.gguf" port="" db="" threads=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --model) model=$2; shift 2 ;;
      --port) port=$2; shift 2 ;;
      --db) db=$2; shift 2 ;;
      --threads) threads=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  [ -x "$bin" ] || die "no nuage binary at $bin (build it, or set NUAGE_BIN)"
  [ -x "$haproxy" ] || die "no haproxy (apt-get install haproxy, or set HAPROXY)"
  [ -f "$model" ] || die "no model at $model"
  model=$(cd "$(dirname "$model")" && pwd)/$(basename "$model")
  mkdir -p "$state" || die "cannot create $state"
  for f in "$state"/r*.pid "$state/haproxy.pid"; do
    [ -e "$f" ] && alive "$(cat "$f")" && die "a cluster already runs from $state (cluster.sh down first)"
  done
  rm -f "$state"/r*.pid "$state"/r*.port "$state"/r*.log "$state/haproxy.pid"
  if [ -z "$threads" ]; then
    threads=$(( $(nproc 2>/dev/null || echo 2) / n )); [ "$threads" -ge 1 ] || threads=1
  fi
  [ -n "$port" ] || port=$(free_port) || die "no free port"

  # The store.
  if [ -z "$db" ] && [ "${NUAGE_CLUSTER_STORE:-}" != sqlite ] && [ -f "$root/scripts/pg_temp.sh" ] &&
     bash "$root/scripts/pg_temp.sh" check 2>/dev/null; then
    # A folder of its own under /tmp: the server runs as another user,
    # who must reach it (the state folder may be private).
    local pgdir
    pgdir=$(mktemp -d "/tmp/nuage-cluster-pg-XXXXXX") || die "cannot create a PostgreSQL folder"
    echo "$pgdir" >"$state/pg_dir"
    db=$(bash "$root/scripts/pg_temp.sh" start "$pgdir" 2>"$state/pg.log" | tail -n 1)
    case "$db" in postgres://*) ;; *) cmd_down; die "PostgreSQL did not start: $(tail -n 5 "$state/pg.log")" ;; esac
    say "PostgreSQL at $db (data in $pgdir)"
  fi
  if [ -z "$db" ]; then
    db=$state/nuage.db
    rm -f "$db" "$db-wal" "$db-shm"
  fi
  echo "$db" >"$state/db"
  echo "$model" >"$state/model"
  echo "$threads" >"$state/threads"
  echo "$n" >"$state/n"
  local key
  key=$("$bin" admin --db "$db" key create --admin 2>"$state/admin.log") || die "admin key: $(cat "$state/admin.log")"

  # The replicas, one after the other (each loads the model once).
  trap 'cmd_down; exit 1' INT TERM
  local i
  for i in $(seq 1 "$n"); do
    start_replica "$i" 0 || { cmd_down; exit 1; }
    say "replica r$i on 127.0.0.1:$(cat "$state/r$i.port")"
  done

  # The balancer: the template with the ports filled in.
  local stats_port spread="" affine="" rp
  stats_port=$(free_port) || die "no free port"
  echo "$stats_port" >"$state/stats_port"
  echo "$port" >"$state/port"
  for i in $(seq 1 "$n"); do
    rp=$(cat "$state/r$i.port")
    spread+="    server r$i 127.0.0.1:$rp"$'\n'
    affine+="    server r$i 127.0.0.1:$rp track nuage_spread/r$i"$'\n'
  done
  awk -v bind="127.0.0.1:$port" -v st="$state" -v sp="$spread" -v af="$affine" -v stp="$stats_port" '
    /\{\{SERVERS_SPREAD\}\}/ { printf "%s", sp; next }
    /\{\{SERVERS_AFFINE\}\}/ { printf "%s", af; next }
    { gsub(/\{\{BIND\}\}/, bind); gsub(/\{\{STATE_DIR\}\}/, st); print }
    END {
      print ""
      print "# Added by scripts/cluster.sh: the statistics page (CSV at /stats;csv), loopback only."
      print "frontend stats"
      print "    bind 127.0.0.1:" stp
      print "    stats enable"
      print "    stats uri /stats"
    }' "$root/deploy/cluster/haproxy.cfg" >"$state/haproxy.cfg"
  "$haproxy" -c -q -f "$state/haproxy.cfg" >"$state/haproxy.log" 2>&1 ||
    { say "bad haproxy.cfg: $(cat "$state/haproxy.log")"; cmd_down; exit 1; }
  "$haproxy" -D -p "$state/haproxy.pid" -f "$state/haproxy.cfg" >>"$state/haproxy.log" 2>&1 ||
    { say "haproxy did not start: $(tail -n 5 "$state/haproxy.log")"; cmd_down; exit 1; }
  for _ in $(seq 1 100); do health_ok "$port" && break; sleep 0.1; done
  health_ok "$port" || { say "the balancer on port $port does not answer /health"; cmd_down; exit 1; }
  for i in $(seq 1 "$n"); do wait_routed "$i" || { cmd_down; exit 1; }; done
  trap - INT TERM
  say "up: $n replica(s) behind http://127.0.0.1:$port (state in $state; stop with: cluster.sh down)"
  echo "url=http://127.0.0.1:$port"
  echo "db=$db"
  echo "admin_key=$key"
}

cmd_restart() {
  local i=${1:-}
  [ -f "$state/r$i.port" ] || die "no replica r$i in $state"
  local port
  port=$(cat "$state/r$i.port")
  say "restarting r$i (port $port): SIGTERM, drain"
  stop_pidfile "$state/r$i.pid" 35
  for _ in $(seq 1 100); do port_open "$port" || break; sleep 0.1; done
  start_replica "$i" "$port" || return 1
  wait_routed "$i" || return 1
  say "r$i back"
}

cmd_status() {
  [ -f "$state/port" ] || die "no cluster in $state"
  echo "balancer http://127.0.0.1:$(cat "$state/port")"
  local i p st
  for i in $(seq 1 "$(cat "$state/n")"); do
    p=$(cat "$state/r$i.pid" 2>/dev/null)
    st=$(hap_status | awk -v r="r$i" '$1==r {print $2}')
    printf 'r%s port %s pid %s %s balancer=%s\n' "$i" "$(cat "$state/r$i.port" 2>/dev/null)" "${p:--}" \
      "$(alive "$p" && echo running || echo stopped)" "${st:-?}"
  done
  # The store's replica registry, where the binary has it (PostgreSQL).
  "$bin" admin --db "$(cat "$state/db")" cluster status 2>/dev/null || true
}

serve_extra=${NUAGE_CLUSTER_SERVE_FLAGS:-}
case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  restart) cmd_restart "${2:-}" ;;
  roll)
    [ -f "$state/n" ] || die "no cluster in $state"
    for i in $(seq 1 "$(cat "$state/n")"); do cmd_restart "$i" || exit 1; done ;;
  status) cmd_status ;;
  *) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
