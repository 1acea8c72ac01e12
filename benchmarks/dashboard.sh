#!/usr/bin/env bash
# Dashboard benchmark: the server time of each page (its own Server-Timing) with a thousand
# finished builds in the project, as issue 19 asks (target: under 50 ms a page). Release build,
# the server on its private PostgreSQL, seeding and reading through the API and the pages.
# Usage: [BUILDS=1000] [ROUNDS=50] benchmarks/dashboard.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILDS=${BUILDS:-1000}
ROUNDS=${ROUNDS:-50}

scripts/install-deps.sh curl python3
if [[ -z ${DRYDOCK_BIN:-} ]]; then
    echo "==> building release"
    swift build -c release 2>&1 | grep -E 'error|Compiling drydock' || true
fi
BIN=${DRYDOCK_BIN:-$(swift build -c release --show-bin-path)}

DATA=$(mktemp -d /tmp/drydock-bench.XXXXXX)
chmod 711 "$DATA"
PORT=${BENCH_PORT:-18191}
URL=http://127.0.0.1:$PORT
DRYDOCK_DATA_DIR=$DATA DRYDOCK_PORT=$PORT LOG_LEVEL=warning "$BIN/drydock-server" >"$DATA/server.log" 2>&1 &
SERVER=$!
cleanup() { kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT
for _ in $(seq 1 120); do curl -fsS "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.5; done

TOKEN=$(DRYDOCK_DATA_DIR=$DATA "$BIN/drydock-server" bootstrap --org bench --plan business | tail -1)
WORKER=$(DRYDOCK_DATA_DIR=$DATA "$BIN/drydock-server" worker-token --name seed | tail -1)
PROJECT=$(DRYDOCK_API_URL=$URL DRYDOCK_TOKEN=$TOKEN "$BIN/drydock" projects create bench --format json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
# One context for every build: 1 KiB of zeros.
HEX=5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef
head -c 1024 /dev/zero | curl -fsS -X PUT -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/x-tar" \
    --data-binary @- "$URL/api/v1/projects/$PROJECT/contexts/$HEX" >/dev/null

echo "==> $BUILDS builds in one project, each page loaded $ROUNDS times"
echo "sha256:$HEX" | python3 benchmarks/dashboard_pages.py "$URL" "$TOKEN" "$WORKER" "$PROJECT" "$BUILDS" "$ROUNDS"
