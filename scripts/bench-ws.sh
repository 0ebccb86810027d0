#!/usr/bin/env bash
# The notification WebSocket, measured: N sockets on one `strategist serve` (one
# user each, so one Redis subscription each), the server's resident memory per
# connection (RSS delta / N), then notifications published to random users at a
# steady rate (XADD notification.send.requested, as any service would) and the
# time from the XADD to the frame on the socket (notifier, database, pub/sub, hub
# and socket included): p50, p99, max.
#
#   scripts/bench-ws.sh [sockets, default 10000] [notifications, default 2000] [per second, default 200]
#
# Everything runs here: a private redis-server and `strategist serve` (release) on a
# SQLite file in a temporary folder. Builds the release binary and the example
# client (examples/bench_ws.rs) if needed. Raises the open-file limit: each socket
# is one descriptor in the server and one in the client.
set -euo pipefail
n=${1:-10000}
m=${2:-2000}
rate=${3:-200}
here=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$here/target}
# PROFILE=debug measures a debug build (quicker to build, slower to run).
profile=${PROFILE:-release}
flag=--release; [ "$profile" = debug ] && flag=
(cd "$here" && cargo build $flag --quiet --bin strategist --example bench_ws)
bin=$target/$profile/strategist
client=$target/$profile/examples/bench_ws
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((n + 1000)) ] || { echo "open-file limit $(ulimit -n) is too low for $n sockets" >&2; exit 1; }
tmp=$(mktemp -d)
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
rport=$(port)
hport=$(port)
redis-server --port "$rport" --save "" --appendonly no --dir "$tmp" --maxclients $((n + 1000)) --daemonize no >/dev/null 2>&1 &
rpid=$!
spid=
cleanup() { [ -n "$spid" ] && { kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; }; kill "$rpid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
export REDIS_URL=redis://127.0.0.1:$rport STRATEGIST_AUTH_SECRET=bench-secret \
  DATABASE_URL="sqlite://$tmp/bench.db?mode=rwc" STRATEGIST_HTTP_ADDR=127.0.0.1:$hport RUST_LOG=warn
sleep 0.3
"$bin" serve >"$tmp/serve.log" 2>&1 &
spid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$hport/readyz" >/dev/null && break; sleep 0.1; done
"$client" "127.0.0.1:$hport" "$REDIS_URL" "$STRATEGIST_AUTH_SECRET" "$spid" "$n" "$m" "$rate"
grep -i "error\|panic" "$tmp/serve.log" | head -5 || true
