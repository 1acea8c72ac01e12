#!/usr/bin/env bash
# API benchmark: authenticated GET /api/v1/projects/{id} against the same server's plain
# unauthenticated /healthz (the framework's ceiling on this machine), with wrk on loopback at
# 64 connections, side by side in one run; plus the server's idle RSS.
# Usage: [ROUNDS=3] benchmarks/api.sh [seconds per route per round, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNECTIONS=64
THREADS=2

scripts/install-deps.sh wrk curl python3
# DRYDOCK_BIN runs another build's binaries (benchmarks/compare.sh uses it); otherwise this checkout's.
if [[ -z ${DRYDOCK_BIN:-} ]]; then
    echo "==> building release"
    swift build -c release 2>&1 | grep -E 'error|Compiling drydock' || true
fi
BIN=${DRYDOCK_BIN:-$(swift build -c release --show-bin-path)}

DATA=$(mktemp -d /tmp/drydock-bench.XXXXXX)
chmod 711 "$DATA"
PORT=${BENCH_PORT:-18190}
URL=http://127.0.0.1:$PORT
DRYDOCK_DATA_DIR=$DATA DRYDOCK_PORT=$PORT LOG_LEVEL=warning "$BIN/drydock-server" >"$DATA/server.log" 2>&1 &
SERVER=$!
cleanup() { kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT
for _ in $(seq 1 120); do curl -fsS "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.5; done

TOKEN=$(DRYDOCK_DATA_DIR=$DATA "$BIN/drydock-server" bootstrap --org bench | tail -1)
PROJECT=$(DRYDOCK_API_URL=$URL DRYDOCK_TOKEN=$TOKEN "$BIN/drydock" projects create bench --format json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
sleep 2
IDLE_RSS_KB=$(awk '/VmRSS/ {print $2}' /proc/$SERVER/status)

# wrk → "req/s p99_ms"
measure() {
    local out
    out=$(wrk -t$THREADS -c$CONNECTIONS -d"${DURATION}s" --latency "$@")
    echo "$out" >>"$DATA/wrk.log"
    python3 - "$out" <<'PY'
import re, sys
text = sys.argv[1]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M).groups()
p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors:
    sys.exit(f"wrk saw {errors.group(1)} error responses")
print(f"{rps:.0f} {p99:.2f}")
PY
}

echo "==> warming up"
wrk -t$THREADS -c$CONNECTIONS -d3s "$URL/healthz" >/dev/null
wrk -t$THREADS -c$CONNECTIONS -d3s -H "Authorization: Bearer $TOKEN" "$URL/api/v1/projects/$PROJECT" >/dev/null

# The machine is shared and noisy: alternate the two routes for ROUNDS rounds and report the
# median of each, so a burst of outside load cannot land on one side only.
ROUNDS=${ROUNDS:-3}
echo "==> measuring ${DURATION}s per route per round, $ROUNDS rounds, $CONNECTIONS connections"
: >"$DATA/results"
for round in $(seq 1 "$ROUNDS"); do
    read -r CEIL_RPS CEIL_P99 < <(measure "$URL/healthz")
    read -r API_RPS API_P99 < <(measure -H "Authorization: Bearer $TOKEN" "$URL/api/v1/projects/$PROJECT")
    echo "    round $round: ceiling $CEIL_RPS req/s (p99 $CEIL_P99 ms), API $API_RPS req/s (p99 $API_P99 ms)"
    echo "$CEIL_RPS $CEIL_P99 $API_RPS $API_P99" >>"$DATA/results"
done
LOADED_RSS_KB=$(awk '/VmRSS/ {print $2}' /proc/$SERVER/status)

python3 - "$DATA/results" "$IDLE_RSS_KB" "$LOADED_RSS_KB" <<'PY'
import statistics, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1]) if line.strip()]
ceil_rps, ceil_p99, api_rps, api_p99 = (statistics.median(column) for column in zip(*rows))
ratios = [row[2] / row[0] for row in rows]
idle, loaded = int(sys.argv[2]) / 1024, int(sys.argv[3]) / 1024
print()
print(f"medians of {len(rows)} rounds:")
print()
print("| route | req/s | p99 |")
print("|---|---|---|")
print(f"| GET /healthz (ceiling, no auth, no database) | {ceil_rps:,.0f} | {ceil_p99:.2f} ms |")
print(f"| GET /api/v1/projects/{{id}} (bearer token, PostgreSQL) | {api_rps:,.0f} | {api_p99:.2f} ms |")
print()
print(f"ratio: {api_rps / ceil_rps:.2f} of the ceiling (per round {', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.50); "
      f"p99 {api_p99:.2f} ms (worst round {max(row[3] for row in rows):.2f} ms; target < 20 ms)")
print(f"server RSS: {idle:.1f} MB idle, {loaded:.1f} MB after the runs (target idle < 100 MB)")
PY
