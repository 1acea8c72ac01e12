#!/usr/bin/env bash
# Registry benchmark: Drydock's /v2 against Debian's docker-registry (the Go reference
# implementation, distribution 2.8) on loopback, same machine, same run:
#   1. pull throughput of one 1 GiB blob (curl to /dev/null, best of 3)
#   2. time to push a 10-layer image with skopeo (median of 5, fresh repository each time)
#   3. manifest GET req/s with wrk at 64 connections
# Drydock is measured with authentication (Basic, a project's token); the reference runs
# without any, as Debian ships it. Usage: benchmarks/registry.sh [blob MiB, default 1024]
set -euo pipefail
cd "$(dirname "$0")/.."
BLOB_MIB=${1:-1024}

scripts/install-deps.sh wrk curl python3 skopeo docker-registry
echo "==> building release"
swift build -c release 2>&1 | grep -E 'error' || true
BIN=$(swift build -c release --show-bin-path)

WORK=$(mktemp -d /tmp/drydock-regbench.XXXXXX)
chmod 711 "$WORK"
DD_PORT=18290 REF_PORT=18291
cat >"$WORK/registry.yml" <<YAML
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $WORK/reference }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$REF_PORT }
YAML
docker-registry serve "$WORK/registry.yml" >"$WORK/reference.log" 2>&1 &
REF=$!
DRYDOCK_DATA_DIR=$WORK/drydock DRYDOCK_PORT=$DD_PORT LOG_LEVEL=warning "$BIN/drydock-server" >"$WORK/drydock.log" 2>&1 &
DD=$!
cleanup() { kill $REF 2>/dev/null || true; kill -TERM $DD 2>/dev/null || true; wait $DD 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$DD_PORT/readyz" >/dev/null 2>&1 && curl -fsS "http://127.0.0.1:$REF_PORT/v2/" >/dev/null 2>&1 && break
    sleep 0.5
done
TOKEN=$(DRYDOCK_DATA_DIR=$WORK/drydock "$BIN/drydock-server" bootstrap --org bench | tail -1)
PROJECT=$(DRYDOCK_API_URL=http://127.0.0.1:$DD_PORT DRYDOCK_TOKEN=$TOKEN "$BIN/drydock" projects create bench --format json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
AUTH="Authorization: Basic $(printf 'bench:%s' "$TOKEN" | base64 -w0)"

echo "==> making a ${BLOB_MIB} MiB blob"
head -c $((BLOB_MIB * 1024 * 1024)) /dev/urandom >"$WORK/blob"
DIGEST="sha256:$(sha256sum "$WORK/blob" | cut -d' ' -f1)"
upload() { # base-url repo [auth header]: POST, then one streamed PUT (what distribution 2.8 supports)
    local location
    location=$(curl -fsS -X POST -H "${3:-X-None: 1}" -D - -o /dev/null "$1/v2/$2/blobs/uploads/" |
        awk 'tolower($1) == "location:" {print $2}' | tr -d '\r')
    [[ $location == http* ]] || location="$1$location"
    [[ $location == *\?* ]] && sep='&' || sep='?'
    curl -fsS -X PUT -H "${3:-X-None: 1}" -H "Content-Type: application/octet-stream" -T - <"$WORK/blob" \
        "$location${sep}digest=$DIGEST" -o /dev/null
}
upload "http://127.0.0.1:$DD_PORT" "$PROJECT/big" "$AUTH"
upload "http://127.0.0.1:$REF_PORT" "bench/big"

pull_rate() { # url [auth header] → best MiB/s of 3
    local best=0
    for _ in 1 2 3; do
        local speed
        speed=$(curl -fsS -H "${2:-X-None: 1}" -o /dev/null -w '%{speed_download}' "$1")
        best=$(python3 -c "print(max($best, $speed / 1048576))")
    done
    echo "$best"
}
echo "==> pulling the blob"
DD_PULL=$(pull_rate "http://127.0.0.1:$DD_PORT/v2/$PROJECT/big/blobs/$DIGEST" "$AUTH")
REF_PULL=$(pull_rate "http://127.0.0.1:$REF_PORT/v2/bench/big/blobs/$DIGEST")

echo "==> pushing a 10-layer image with skopeo"
python3 Tests/Fixtures/make-oci-layout.py "$WORK/image" 10 4096 >/dev/null
push_time() { # dest-prefix creds-args... → median seconds of 3
    local prefix=$1; shift
    local times=()
    for run in 1 2 3 4 5; do
        local start end
        start=$(date +%s.%N)
        skopeo copy --quiet --dest-tls-verify=false "$@" "oci:$WORK/image:latest" "docker://$prefix/push$run:v1" >/dev/null
        end=$(date +%s.%N)
        times+=("$(python3 -c "print($end - $start)")")
    done
    python3 -c "import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))" "${times[@]}"
}
DD_PUSH=$(push_time "127.0.0.1:$DD_PORT/$PROJECT" --dest-creds "bench:$TOKEN")
REF_PUSH=$(push_time "127.0.0.1:$REF_PORT/bench")

echo "==> manifest GET with wrk, 64 connections"
skopeo copy --quiet --dest-tls-verify=false --dest-creds "bench:$TOKEN" "oci:$WORK/image:latest" "docker://127.0.0.1:$DD_PORT/$PROJECT/app:v1" >/dev/null
skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/image:latest" "docker://127.0.0.1:$REF_PORT/bench/app:v1" >/dev/null
ACCEPT="Accept: application/vnd.oci.image.manifest.v1+json"
rps() { wrk -t2 -c64 -d10s "$@" | awk '/Requests\/sec/ {print $2}'; }
wrk -t2 -c64 -d2s -H "$AUTH" -H "$ACCEPT" "http://127.0.0.1:$DD_PORT/v2/$PROJECT/app/manifests/v1" >/dev/null
DD_RPS=$(rps -H "$AUTH" -H "$ACCEPT" "http://127.0.0.1:$DD_PORT/v2/$PROJECT/app/manifests/v1")
wrk -t2 -c64 -d2s -H "$ACCEPT" "http://127.0.0.1:$REF_PORT/v2/bench/app/manifests/v1" >/dev/null
REF_RPS=$(rps -H "$ACCEPT" "http://127.0.0.1:$REF_PORT/v2/bench/app/manifests/v1")

DD_PEAK_KB=$(awk '/VmHWM/ {print $2}' /proc/$DD/status)

python3 - "$DD_PULL" "$REF_PULL" "$DD_PUSH" "$REF_PUSH" "$DD_RPS" "$REF_RPS" "$BLOB_MIB" "$DD_PEAK_KB" <<'PY'
import sys
dd_pull, ref_pull, dd_push, ref_push, dd_rps, ref_rps = map(float, sys.argv[1:7])
print()
print("| measure | Drydock | docker-registry 2.8 | ratio (higher is better for Drydock) |")
print("|---|---|---|---|")
print(f"| pull one {sys.argv[7]} MiB blob | {dd_pull:,.0f} MiB/s | {ref_pull:,.0f} MiB/s | {dd_pull / ref_pull:.2f}x |")
print(f"| skopeo push, 10 layers x 4 MiB | {dd_push:.2f} s | {ref_push:.2f} s | {ref_push / dd_push:.2f}x |")
print(f"| manifest GET, wrk 64 connections | {dd_rps:,.0f} req/s | {ref_rps:,.0f} req/s | {dd_rps / ref_rps:.2f}x |")
print()
print(f"Drydock server peak RSS over the whole run (1 GiB in and 3 x out): {int(sys.argv[8]) / 1024:.0f} MB")
PY
