#!/usr/bin/env bash
# The whole system under a steady load: one `strategist serve --no-http` on a private
# redis-server and a fresh database, `strategist load` publishing R events/s on each of
# system.events and user.events for S seconds. Prints load's JSON report: every group's
# largest backlog (pending + lag) and when it was reached, whether every group stayed
# within one second of backlog (`kept_up`), and the serve process's peak RSS.
#
#   scripts/bench-load.sh [sqlite|postgres] [events/s per stream, default 5000] [seconds, default 60]
#
# PGQUERY adds query options to the PostgreSQL URL (e.g. PGQUERY=sslmode=require).
#
# Needs redis-server, python3, a release build (cargo build --release), and for
# postgres a server on 127.0.0.1:5432 that takes user postgres without a password.
set -euo pipefail
db=${1:-sqlite}
rate=${2:-5000}
secs=${3:-60}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${STRATEGIST_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/strategist}
[ -x "$bin" ] || { echo "$bin is missing: cargo build --release" >&2; exit 1; }
tmp=$(mktemp -d)
rport=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
redis-server --port "$rport" --save "" --appendonly no --dir "$tmp" --daemonize no >/dev/null 2>&1 &
rpid=$!
spid=
pgdb="strategist_load_$$"
cleanup() {
  [ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null || true
  kill "$rpid" 2>/dev/null || true
  [ "$db" = postgres ] && psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
[ -n "${KEEP_LOG:-}" ] && trap 'cp "$tmp/serve.log" "$KEEP_LOG" 2>/dev/null; cleanup' EXIT
export REDIS_URL=redis://127.0.0.1:$rport STRATEGIST_AUTH_SECRET=bench-secret RUST_LOG=${RUST_LOG:-warn,strategist::serve=info}
case "$db" in
  sqlite) export DATABASE_URL="sqlite://$tmp/load.db?mode=rwc" ;;
  postgres)
    psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $pgdb" >/dev/null
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$pgdb${PGQUERY:+?$PGQUERY}" ;;
  *) echo "database must be sqlite or postgres, not $db" >&2; exit 2 ;;
esac
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
"$bin" migrate >/dev/null 2>&1
"$bin" serve --no-http >"$tmp/serve.log" 2>&1 &
spid=$!
for _ in $(seq 300); do grep -q "running without HTTP" "$tmp/serve.log" && break; sleep 0.1; done
"$bin" load --rate "$rate" --seconds "$secs" --pid "$spid"
