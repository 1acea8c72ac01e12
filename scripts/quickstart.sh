#!/usr/bin/env bash
# The quick start: installs what is missing, builds Drydock (release), starts drydock-server
# on its private PostgreSQL and a drydock-agent beside it (which starts a builder per project and
# platform on demand), creates an organization the first time, and runs a sample build twice (the
# second from the cache), then a two-platform build (linux/amd64 native, linux/arm64 emulated with
# qemu-user-static) into one image index.
# Both keep running afterwards; stop them with:
#   kill "$(cat "$DRYDOCK_DATA_DIR/agent.pid")" "$(cat "$DRYDOCK_DATA_DIR/server.pid")"
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh curl python3 buildah skopeo busybox qemu isolation

if [[ $(id -u) -eq 0 ]]; then default_data=/var/lib/drydock; else default_data=${XDG_DATA_HOME:-$HOME/.local/share}/drydock; fi
export DRYDOCK_DATA_DIR=${DRYDOCK_DATA_DIR:-$default_data}
export DRYDOCK_PORT=${DRYDOCK_PORT:-8080}
export DRYDOCK_API_URL=${DRYDOCK_API_URL:-http://127.0.0.1:$DRYDOCK_PORT}
mkdir -p "$DRYDOCK_DATA_DIR"

echo "==> building drydock-server, drydock-agent, drydock-builder and drydock (release; the first build takes 10-20 minutes)"
# Swift 6.3's incremental release builds (cross-module optimisation) can keep objects compiled
# against an older version of Drydock's own modules, which crashed drydock-agent at start after an
# update; so when the sources changed since the last release build, Drydock's own modules are
# rebuilt from scratch (the dependencies stay built).
stamp=.build/drydock-release-sources
sources=$( { git rev-parse HEAD 2>/dev/null; git status --porcelain 2>/dev/null; } | sha256sum | cut -d' ' -f1)
if [[ -d .build/release && "$(cat "$stamp" 2>/dev/null)" != "$sources" ]]; then
    rm -rf .build/release/Drydock*.build .build/release/drydock*.build .build/release/Drydock*.swiftmodule .build/release/Modules/Drydock* 2>/dev/null || true
fi
swift build -c release 2>&1 | grep -E 'error:' || true
echo "$sources" > "$stamp"
BIN=$(swift build -c release --show-bin-path)
[[ -x $BIN/drydock-server && -x $BIN/drydock && -x $BIN/drydock-builder && -x $BIN/drydock-agent ]] || { echo "drydock: build failed" >&2; exit 1; }

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
CI_TOKEN=$("$BIN/drydock" tokens create --name ci --project "$PROJECT" --expires 30d 2>/dev/null | tail -1)
"$BIN/drydock" tokens list

AGENT_PIDFILE=$DRYDOCK_DATA_DIR/agent.pid
if [[ -f $AGENT_PIDFILE ]] && kill -0 "$(cat "$AGENT_PIDFILE")" 2>/dev/null; then
    echo "==> drydock-agent already running (pid $(cat "$AGENT_PIDFILE"))"
else
    # The agent of an earlier run is gone: its token is revoked, so it neither lingers as a live
    # credential nor lists as an offline agent beside the new one.
    for id in $("$BIN/drydock" tokens list --kind agent --format csv --limit 200 | awk -F, 'NR > 1 && $2 == "quickstart-agent" && $9 == "active" { print $1 }'); do
        echo "==> drydock tokens revoke $id (the agent token of an earlier quickstart run)"
        "$BIN/drydock" tokens revoke "$id" >/dev/null
    done
    echo "==> drydock tokens create --kind agent --name quickstart-agent; starting drydock-agent"
    AGENT_TOKEN=$("$BIN/drydock" tokens create --kind agent --name quickstart-agent 2>/dev/null | tail -1)
    # It starts one builder per project and platform on demand (each exits when idle): amd64 (and
    # 386) natively, and arm64 through qemu as root (binfmt_misc needs root once).
    if [[ $(id -u) -eq 0 ]]; then emulate=${DRYDOCK_AGENT_EMULATE:-linux/arm64}; else emulate=${DRYDOCK_AGENT_EMULATE:-}; fi
    DRYDOCK_AGENT_TOKEN=$AGENT_TOKEN DRYDOCK_AGENT_DATA_DIR=${DRYDOCK_AGENT_DATA_DIR:-$DRYDOCK_DATA_DIR/agent} \
        DRYDOCK_AGENT_EMULATE=$emulate \
        nohup "$BIN/drydock-agent" >"$DRYDOCK_DATA_DIR/agent.log" 2>&1 &
    echo $! >"$AGENT_PIDFILE"
fi

# No base image can be pulled from the internet here: push busybox-static into the project.
HOST=${DRYDOCK_API_URL#*://}
echo "==> pushing a busybox base image to $HOST/$PROJECT/busybox:latest (skopeo)"
LAYOUT=$(mktemp -d)
python3 Tests/Fixtures/make-busybox-layout.py "$LAYOUT" >/dev/null
skopeo copy --quiet --dest-tls-verify=false --dest-creds "ci:$CI_TOKEN" \
    "oci:$LAYOUT:latest" "docker://$HOST/$PROJECT/busybox:latest"
rm -rf "$LAYOUT"

echo "==> drydock build -t hello:1 --push examples/hello"
"$BIN/drydock" build --project "$PROJECT" -t hello:1 --push --progress plain \
    --build-arg BASE="$HOST/$PROJECT/busybox:latest" --build-arg GREETING=hi examples/hello
echo "==> the same build again: every step from the cache"
"$BIN/drydock" build --project "$PROJECT" -t hello:1 --push --progress plain \
    --build-arg BASE="$HOST/$PROJECT/busybox:latest" --build-arg GREETING=hi examples/hello 2>&1 | grep -E 'CACHED|DONE|context|image|pushed'
if [[ $(id -u) -eq 0 ]]; then
    echo "==> pushing busybox for every platform (Debian's busybox-static of each architecture) as $HOST/$PROJECT/busybox:multi"
    LAYOUT=$(mktemp -d)
    Tests/Fixtures/busybox-arches.sh "$LAYOUT/index" >/dev/null
    skopeo copy --quiet --all --dest-tls-verify=false --dest-creds "ci:$CI_TOKEN" "oci:$LAYOUT/index:latest" "docker://$HOST/$PROJECT/busybox:multi"
    rm -rf "$LAYOUT"
    echo "==> drydock projects update $PROJECT --emulation allowed; drydock build --platform linux/amd64,linux/arm64 -t hello:multi"
    "$BIN/drydock" projects update "$PROJECT" --emulation allowed >/dev/null
    "$BIN/drydock" build --project "$PROJECT" -t hello:multi --platform linux/amd64,linux/arm64 --progress plain \
        --build-arg BASE="$HOST/$PROJECT/busybox:multi" --build-arg GREETING=hi examples/hello 2>&1 | grep -E '^#[0-9]+ \[|linux/|index|tagged'
else
    echo "==> (the two-platform build needs root once: dpkg --add-architecture, binfmt_misc; skipped)"
fi
echo "==> drydock agents list; drydock builders list; drydock cache show"
"$BIN/drydock" agents list
"$BIN/drydock" builders list
"$BIN/drydock" cache show --project "$PROJECT"
echo "==> drydock builds list"
"$BIN/drydock" builds list --project "$PROJECT"
echo "==> drydock registry tags hello"
"$BIN/drydock" registry tags hello --project "$PROJECT"
echo "==> the dashboard: GET $DRYDOCK_API_URL/ answers the sign-in page"
curl -fsS "$DRYDOCK_API_URL/" | grep -q 'name="token"' || { echo "drydock: the dashboard's sign-in page is missing" >&2; exit 1; }
DASHBOARD_TOKEN=$("$BIN/drydock" tokens create --name dashboard --expires 1d 2>/dev/null | tail -1)
echo
echo "Dashboard: open $DRYDOCK_API_URL/ and paste this token (yours, valid one day) to sign in:"
echo "  $DASHBOARD_TOKEN"
echo "Drydock is running at $DRYDOCK_API_URL (server pid $(cat "$PIDFILE"), agent pid $(cat "$AGENT_PIDFILE")). Binaries: $BIN"
echo "Stop them with: kill \$(cat $AGENT_PIDFILE) \$(cat $PIDFILE)"
