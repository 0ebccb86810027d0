#!/usr/bin/env bash
# Events per second handled end to end by 1, 2 and 3 `strategist serve --no-http`
# processes on one private redis-server, for one stream (system.events) and for all
# seven. Each run starts from an empty Redis and an empty database, starts the
# processes (every consumer group), then `strategist load` publishes at a rate above
# what they can take for a fixed time and waits until every group of the loaded
# streams has drained (pending + lag = 0). handled/s = events published (all
# streams) / (publishing time + time to drain): what the processes did, not what the
# publisher did. Every event is stored by the archiver (one row per event in the
# event store), so the database is part of the figure: PostgreSQL when psql reaches
# 127.0.0.1:5432 as postgres (each run gets a fresh database), SQLite otherwise.
#
#   scripts/bench-processes.sh [seconds of load per run, default 10] [events/s offered, default 5000]
#   CLUSTER=1 scripts/bench-processes.sh ...   # on a local 3-master, 3-replica Redis Cluster
#
# The offered rate is split over the loaded streams (all seven: rate/7 each), so
# one stream and seven streams get the same number of events.
#
# Needs redis-server, python3 and a release build (cargo build --release).
set -euo pipefail
secs=${1:-10}
rate=${2:-5000}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${STRATEGIST_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/strategist}
[ -x "$bin" ] || { echo "$bin is missing: cargo build --release" >&2; exit 1; }
tmp=$(mktemp -d)
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
rpids=()
if [ "${CLUSTER:-0}" = 1 ]; then
  # Six nodes, each with its own folder and an explicit cluster bus port.
  cports=()
  for i in 1 2 3 4 5 6; do
    p=$(free_port); b=$(free_port)
    mkdir -p "$tmp/n$i"
    redis-server --port "$p" --cluster-enabled yes --cluster-port "$b" \
      --cluster-node-timeout 1000 --repl-diskless-sync-delay 0 \
      --save "" --appendonly no --dir "$tmp/n$i" --daemonize no >/dev/null 2>&1 &
    rpids+=($!)
    cports+=("$p")
  done
  for p in "${cports[@]}"; do
    for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
  done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${cports[@]}") --cluster-replicas 1 --cluster-yes >/dev/null
  for p in "${cports[@]}"; do
    for _ in $(seq 200); do redis-cli -p "$p" cluster info 2>/dev/null | grep -q cluster_state:ok && break; sleep 0.05; done
  done
  rport=${cports[0]}
  redis_url="redis+cluster://$(printf '127.0.0.1:%s,' "${cports[@]}" | sed 's/,$//')"
  flush() { for p in "${cports[@]}"; do redis-cli -p "$p" flushall >/dev/null 2>&1 || true; done; }
else
  rport=$(free_port)
  redis-server --port "$rport" --save "" --appendonly no --dir "$tmp" --daemonize no >/dev/null 2>&1 &
  rpids+=($!)
  redis_url=redis://127.0.0.1:$rport
  flush() { redis-cli -p "$rport" flushall >/dev/null; }
fi
pids=()
stop_serves() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  pids=()
}
pg=0
psql -h 127.0.0.1 -U postgres -d postgres -qAtc 'select 1' >/dev/null 2>&1 && pg=1
dbs=()
cleanup() {
  stop_serves
  for p in "${rpids[@]}"; do kill "$p" 2>/dev/null || true; done
  for d in "${dbs[@]:-}"; do
    [ -n "$d" ] && psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
export REDIS_URL=$redis_url STRATEGIST_AUTH_SECRET=bench-secret RUST_LOG=warn \
  STRATEGIST__HEALTH__INTERVAL_MS=0 STRATEGIST__THRESHOLDS__INTERVAL_MS=0
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
all=user.events,content.events,contextual.events,market.events,ai.events,notification.events,system.events

run() { # processes streams label
  local n=$1 streams=$2 label=$3 db
  flush
  if [ "$pg" = 1 ]; then
    db="strategist_bench_$$_${n}_${label}"
    psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $db" >/dev/null
    dbs+=("$db")
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
  else
    export DATABASE_URL="sqlite://$tmp/bench-$n-$label.db?mode=rwc"
  fi
  "$bin" migrate 2>/dev/null
  for i in $(seq "$n"); do
    "$bin" serve --no-http --no-scheduler >"$tmp/serve-$n-$label-$i.log" 2>&1 &
    pids+=($!)
  done
  # Ready when every process has started its pools.
  for i in $(seq "$n"); do
    for _ in $(seq 300); do grep -q "running without HTTP" "$tmp/serve-$n-$label-$i.log" && break; sleep 0.1; done
  done
  local report
  local per_stream=$(( rate / $(tr ',' '\n' <<<"$streams" | wc -l) ))
  if ! report=$("$bin" load --rate "$per_stream" --seconds "$secs" --streams "$streams" 2>"$tmp/load.log"); then
    stop_serves
    echo "| $n | $label | load failed: $(grep '^error' "$tmp/load.log" | tail -1) |"
    return 0
  fi
  stop_serves
  python3 - "$n" "$label" "$streams" "$report" <<'PY'
import json, sys
n, label, streams, report = sys.argv[1], sys.argv[2], sys.argv[3].split(","), json.loads(sys.argv[4])
events = report["seconds"] * report["rate_per_stream"] * len(streams)
pub_secs = report["seconds"] * report["rate_per_stream"] / report["achieved_rate_per_stream"]
drains = [g["drained_after_ms"] for g in report["groups"].values()]
if any(d is None for d in drains):
    print(f"| {n} | {label} | {events} | {report['achieved_rate_per_stream'] * len(streams):.0f} | not drained in 60 s | - |")
    sys.exit(0)
drain = max(drains) / 1000
slowest = max(report["groups"].items(), key=lambda kv: kv[1]["drained_after_ms"])[0]
print(f"| {n} | {label} | {events} | {report['achieved_rate_per_stream'] * len(streams):.0f} | {events / (pub_secs + drain):.0f} | {drain:.1f} s ({slowest}) |")
PY
}

db_kind=SQLite
[ "$pg" = 1 ] && db_kind=PostgreSQL
redis_kind="one redis-server"
[ "${CLUSTER:-0}" = 1 ] && redis_kind="a 3-master, 3-replica cluster"
echo "load: ${secs} s at ${rate}/s offered (split over the streams); event store: $db_kind; Redis: $redis_kind; $(nproc) cores"
echo
echo "| processes | streams | events | published/s | handled/s | drain after the load (slowest group) |"
echo "|---|---|---|---|---|---|"
for n in ${PROCESSES:-1 2 3}; do
  [ "${STREAMS:-both}" != seven ] && run "$n" system.events one
  [ "${STREAMS:-both}" != one ] && run "$n" "$all" seven
done
