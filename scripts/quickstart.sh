#!/usr/bin/env bash
# The quick start: installs what is missing, builds Drydock (release), starts drydock-server
# on its private PostgreSQL, creates an organization the first time, and shows the CLI working.
# The server keeps running afterwards; stop it with: kill "$(cat "$DRYDOCK_DATA_DIR/server.pid")"
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh curl python3

if [[ $(id -u) -eq 0 ]]; then default_data=/var/lib/drydock; else default_data=${XDG_DATA_HOME:-$HOME/.local/share}/drydock; fi
export DRYDOCK_DATA_DIR=${DRYDOCK_DATA_DIR:-$default_data}
export DRYDOCK_PORT=${DRYDOCK_PORT:-8080}
export DRYDOCK_API_URL=${DRYDOCK_API_URL:-http://127.0.0.1:$DRYDOCK_PORT}
mkdir -p "$DRYDOCK_DATA_DIR"

echo "==> building drydock-server and drydock (release; the first build takes 10-20 minutes)"
swift build -c release 2>&1 | grep -E 'error:' || true
BIN=$(swift build -c release --show-bin-path)
[[ -x $BIN/drydock-server && -x $BIN/drydock ]] || { echo "drydock: build failed" >&2; exit 1; }

PIDFILE=$DRYDOCK_DATA_DIR/server.pid
if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "==> drydock-server already running (pid $(cat "$PIDFILE"))"
else
    echo "==> starting drydock-server on $DRYDOCK_API_URL (data in $DRYDOCK_DATA_DIR, log in $DRYDOCK_DATA_DIR/server.log)"
    nohup "$BIN/drydock-server" >"$DRYDOCK_DATA_DIR/server.log" 2>&1 &
    echo $! >"$PIDFILE"
fi
for _ in $(seq 1 120); do
    curl -fsS "$DRYDOCK_API_URL/readyz" >/dev/null 2>&1 && break
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { echo "drydock-server exited:" >&2; tail -20 "$DRYDOCK_DATA_DIR/server.log" >&2; exit 1; }
    sleep 0.5
done
curl -fsS "$DRYDOCK_API_URL/readyz" >/dev/null || { echo "drydock-server did not become ready" >&2; exit 1; }

if "$BIN/drydock" whoami >/dev/null 2>&1; then
    echo "==> already logged in"
else
    echo "==> creating organization 'quickstart' and logging in as its owner"
    TOKEN=$("$BIN/drydock-server" bootstrap --org "quickstart-$(date +%s)" --email "owner@quickstart.local" | tail -1)
    "$BIN/drydock" login --token "$TOKEN" --api-url "$DRYDOCK_API_URL"
fi

echo "==> drydock whoami"
"$BIN/drydock" whoami
name="demo-$(date +%H%M%S)"
echo "==> drydock projects create $name"
PROJECT=$("$BIN/drydock" projects create "$name" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "==> drydock projects list"
"$BIN/drydock" projects list
echo "==> drydock tokens create --name ci --project $PROJECT --expires 30d"
"$BIN/drydock" tokens create --name ci --project "$PROJECT" --expires 30d >/dev/null
"$BIN/drydock" tokens list
echo
echo "Drydock is running at $DRYDOCK_API_URL (pid $(cat "$PIDFILE")). Binaries: $BIN"
echo "Stop it with: kill \$(cat $PIDFILE)"
