#!/usr/bin/env bash
# Request-response over HTTP, measured with wrk: POST /api/v1/content/generate with
# the offline provider (publish, worker, draft stored, completion, reply) at
# concurrency 1, 50, 200 and 1000, beside GET /healthz as the HTTP ceiling of this
# machine. Everything runs here: a private redis-server, `strategist serve` (release)
# on a SQLite file in a temporary folder, the rate limit off.
#
#   scripts/bench-http.sh [seconds per run, default 10]
#
# Needs wrk (apt-get install wrk) and a release build (cargo build --release).
set -euo pipefail
secs=${1:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${STRATEGIST_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/strategist}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
[ -x "$bin" ] || { echo "$bin is missing: cargo build --release" >&2; exit 1; }
tmp=$(mktemp -d)
rport=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
hport=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
redis-server --port "$rport" --save "" --appendonly no --dir "$tmp" --daemonize no >/dev/null 2>&1 &
rpid=$!
cleanup() { kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; kill "$rpid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
export REDIS_URL=redis://127.0.0.1:$rport STRATEGIST_AUTH_SECRET=bench-secret \
  DATABASE_URL="sqlite://$tmp/bench.db?mode=rwc" STRATEGIST_HTTP_ADDR=127.0.0.1:$hport \
  STRATEGIST__HTTP__GENERATION_PER_MINUTE=0 RUST_LOG=warn
sleep 0.3
"$bin" serve >"$tmp/serve.log" 2>&1 &
spid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$hport/readyz" >/dev/null && break; sleep 0.1; done
token=$("$bin" token --user-id bench)
cat >"$tmp/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
wrk.body = '{"contextual_core_id":"core-1","content_type":"social_post","prompt_template":"social_post","variables":{"topic":"the benchmark","audience":"engineers"},"max_tokens":200}'
LUA
run() { # name url conns [script]
  local out t=2
  [ "$3" -lt 2 ] && t=1
  out=$(wrk -t"$t" -c"$3" -d"${secs}s" --latency ${4:+-s "$4"} "$2" 2>&1)
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  printf '%-10s c=%-5s %10s req/s  p50 %-9s p99 %-9s %s\n' "$1" "$3" "$rps" "$p50" "$p99" "$errs"
}
for c in 1 50 200 1000; do
  run healthz "http://127.0.0.1:$hport/healthz" "$c"
  run generate "http://127.0.0.1:$hport/api/v1/content/generate" "$c" "$tmp/post.lua"
done
