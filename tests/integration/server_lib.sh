# Shell helpers shared by the integration scripts that start `nuage serve`
# (sourced, not a test: ctest runs only test_*.sh).

# GET /health through bash's /dev/tcp (no curl needed): true on 200.
health_ok() {
  ( exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
    IFS= read -r line <&3
    case "$line" in *" 200 "*) exit 0 ;; *) exit 1 ;; esac ) 2>/dev/null
}

# Stop server process $1: SIGTERM, up to 10 s to drain, then SIGKILL.
stop_server() {
  local p="$1"
  if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  fi
}
