#!/usr/bin/env bash
# How the scaler follows a load step: one `strategist serve` (release) on a private
# redis-server and a SQLite file, idle, then `strategist load` on system.events well
# above what the pool's minimum takes, then idle again; once a second the pool's
# row of GET /api/v1/metrics (admin token from `strategist token`) is printed as
# a table: time, backlog the scaler last sampled (pending + lag), workers it asked
# for, workers running.
#
#   scripts/scaler-step.sh [pool, default archiver] [rate, default 30000] [seconds of load, default 15]
#
# The pool keeps its config/default.toml row (archiver: queue_length, one worker per
# 1000 entries, 4 to 16). Only the scaler's clock is shortened so the step fits in a
# minute: a sample every second, up again after 3 s, down to the highest count asked
# for in the last 10 s (defaults: 5 s, 15 s, 60 s).
#
# Needs redis-server, curl, jq and a release build (cargo build --release).
set -euo pipefail
pool=${1:-archiver}
rate=${2:-30000}
secs=${3:-15}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${STRATEGIST_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/strategist}
[ -x "$bin" ] || { echo "$bin is missing: cargo build --release" >&2; exit 1; }
for t in curl jq redis-server; do command -v $t >/dev/null || { echo "$t is missing" >&2; exit 1; }; done
tmp=$(mktemp -d)
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
rport=$(free_port)
hport=$(free_port)
redis-server --port "$rport" --save "" --appendonly no --dir "$tmp" --daemonize no >/dev/null 2>&1 &
rpid=$!
spid=
lpid=
cleanup() {
  [ -n "$lpid" ] && kill "$lpid" 2>/dev/null || true
  [ -n "$spid" ] && { kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; }
  kill "$rpid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
export REDIS_URL=redis://127.0.0.1:$rport STRATEGIST_AUTH_SECRET=scaler-step-secret \
  DATABASE_URL="sqlite://$tmp/step.db?mode=rwc" STRATEGIST_HTTP_ADDR=127.0.0.1:$hport RUST_LOG=warn \
  STRATEGIST__HEALTH__INTERVAL_MS=0 STRATEGIST__THRESHOLDS__INTERVAL_MS=0 \
  STRATEGIST__SCALER__INTERVAL_MS=1000 STRATEGIST__SCALER__UP_COOLDOWN_MS=3000 \
  STRATEGIST__SCALER__DOWN_STABILIZATION_MS=10000
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
"$bin" serve --no-scheduler >"$tmp/serve.log" 2>&1 &
spid=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$hport/readyz" >/dev/null && break; sleep 0.1; done
token=$("$bin" token --user-id scaler-step --admin)
row() {
  curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$hport/api/v1/metrics" |
    jq -r --arg p "$pool" '.scaling[] | select(.pool == $p) | "\(.last_value // "-") \(.desired) \(.workers) \(.min_workers) \(.max_workers) \(.metric) \(.threshold)"'
}
read -r _ _ _ min max metric threshold <<<"$(row)"
echo "pool $pool: $metric, threshold $threshold, $min..$max workers; load ${rate}/s on system.events for ${secs} s from t=5 s"
echo
echo "| t (s) | phase | backlog | desired | workers |"
echo "|---|---|---|---|---|"
start=$(date +%s.%N)
loaded=0
idle_since=
t=0
while :; do
  t=$(python3 -c "import time;print(int(time.time()-$start))")
  if [ "$loaded" = 0 ] && [ "$t" -ge 5 ]; then
    "$bin" load --rate "$rate" --seconds "$secs" --streams system.events >/dev/null 2>&1 &
    lpid=$!
    loaded=1
  fi
  # `load` keeps running after publishing to time the drain: the phase is by clock.
  phase=idle
  if [ "$t" -ge 5 ] && [ "$t" -lt $((5 + secs)) ]; then phase=load; fi
  [ "$loaded" = 1 ] && [ "$t" -ge $((5 + secs)) ] && [ -z "$idle_since" ] && idle_since=$t
  read -r backlog desired workers _ <<<"$(row)"
  printf '| %s | %s | %s | %s | %s |\n' "$t" "$phase" "$backlog" "$desired" "$workers"
  # Done when back at the minimum after the load, or after two minutes.
  if [ -n "$idle_since" ] && [ "$workers" = "$min" ] && [ $((t - idle_since)) -ge 3 ]; then break; fi
  [ "$t" -ge 120 ] && break
  sleep 1
done
