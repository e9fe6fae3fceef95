#!/usr/bin/env bash
# pg_temp.sh - a throwaway PostgreSQL server for tests, benchmarks and
# scripts/cluster.sh (docs/cluster.md).
#
#   scripts/pg_temp.sh start [DIR]   initdb + pg_ctl start in DIR (created;
#                                    default: a new mktemp dir), on a free
#                                    loopback port, with a database "nuage";
#                                    prints its URL on stdout
#                                    (postgres://nuage@127.0.0.1:PORT/nuage)
#                                    and DIR on stderr; DIR/url holds the URL.
#   scripts/pg_temp.sh stop DIR      stop it and remove DIR.
#   scripts/pg_temp.sh halt DIR      stop the server, keep DIR (database outage
#                                    tests); `resume DIR` starts it again on
#                                    the same port.
#   scripts/pg_temp.sh check         exit 0 when the PostgreSQL server
#                                    binaries are installed, else 77 with why.
#
# PostgreSQL refuses to run as root: as root the server runs as the
# `postgres` user (Debian's package creates it) or, when there is none, as
# a `nuagepg` system user created here; DIR is chowned to that user. The
# superuser is "nuage", trusted on loopback and the socket in DIR: this is
# for tests, never for production. PG_TEMP_FAST=1 turns fsync off (unit
# tests: durability is not what they check). Binaries: $PG_BIN, else
# /usr/lib/postgresql/<newest>/bin, else $PATH.
set -euo pipefail

find_bin() {
  if [[ -n "${PG_BIN:-}" && -x "$PG_BIN/initdb" ]]; then echo "$PG_BIN"; return 0; fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && { echo "$d"; return 0; }
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"; return 0
  fi
  return 1
}

# Run "$@" as the server's user.
as_pg() {
  if [[ $(id -u) -ne 0 ]]; then "$@"; return; fi
  runuser -u "$PGUSER_OS" -- "$@"
}

pick_user() {
  if [[ $(id -u) -ne 0 ]]; then PGUSER_OS=$(id -un); return; fi
  if id postgres >/dev/null 2>&1; then PGUSER_OS=postgres; return; fi
  id nuagepg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin nuagepg
  PGUSER_OS=nuagepg
}

free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
  else
    echo $((20000 + RANDOM % 30000))
  fi
}

cmd=${1:-}
case "$cmd" in
check)
  if ! BIN=$(find_bin); then
    echo "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql" >&2
    exit 77
  fi
  exit 0
  ;;
start)
  BIN=$(find_bin) || { echo "pg_temp.sh: PostgreSQL binaries not found (apt-get install postgresql)" >&2; exit 77; }
  pick_user
  DIR=${2:-}
  if [[ -z "$DIR" ]]; then DIR=$(mktemp -d "${TMPDIR:-/tmp}/nuage-pg-XXXXXX"); else mkdir -p "$DIR"; fi
  DIR=$(cd "$DIR" && pwd)
  chmod 0755 "$DIR"
  [[ $(id -u) -eq 0 ]] && chown "$PGUSER_OS" "$DIR"
  if ! as_pg test -w "$DIR"; then
    echo "pg_temp.sh: user $PGUSER_OS cannot write $DIR (is a parent directory private?)" >&2; exit 1
  fi
  as_pg "$BIN/initdb" -D "$DIR/data" -U nuage --auth=trust -E UTF8 --locale=C >"$DIR/initdb.log" 2>&1 ||
    { cat "$DIR/initdb.log" >&2; exit 1; }
  opts="-c listen_addresses=127.0.0.1 -c unix_socket_directories=$DIR -c max_connections=200"
  [[ "${PG_TEMP_FAST:-0}" == 1 ]] && opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  for attempt in 1 2 3 4 5; do
    PORT=$(free_port)
    if as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 -o "$opts -p $PORT" start >/dev/null 2>&1; then
      ok=1; break
    fi
    ok=0
  done
  if [[ $ok != 1 ]]; then
    echo "pg_temp.sh: the server did not start:" >&2; tail -20 "$DIR/server.log" >&2; exit 1
  fi
  as_pg "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U nuage nuage
  URL="postgres://nuage@127.0.0.1:$PORT/nuage"
  echo "$URL" >"$DIR/url"
  echo "$opts -p $PORT" >"$DIR/opts"
  echo "$BIN" >"$DIR/bin"
  echo "pg_temp.sh: PostgreSQL in $DIR" >&2
  echo "$URL"
  ;;
stop)
  DIR=${2:?usage: pg_temp.sh stop DIR}
  [[ -d "$DIR" ]] || exit 0
  pick_user
  BIN=$(cat "$DIR/bin" 2>/dev/null || find_bin)
  if [[ -f "$DIR/data/postmaster.pid" ]]; then
    as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$DIR"
  ;;
halt)
  DIR=${2:?usage: pg_temp.sh halt DIR}
  pick_user
  as_pg "$(cat "$DIR/bin")/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
  ;;
resume)
  DIR=${2:?usage: pg_temp.sh resume DIR}
  pick_user
  as_pg "$(cat "$DIR/bin")/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 -o "$(cat "$DIR/opts")" start >/dev/null
  ;;
*)
  echo "usage: pg_temp.sh start [DIR] | stop DIR | halt DIR | resume DIR | check" >&2
  exit 2
  ;;
esac
