#!/usr/bin/env bash
# Registry benchmark: Drydock's /v2 against Debian's docker-registry (the Go reference
# implementation, distribution 2.8) on loopback, same machine, same run:
#   1. pull throughput of one 1 GiB blob (curl to /dev/null)
#   2. time to push a 10-layer image with skopeo (a fresh repository each time)
#   3. manifest GET req/s with wrk at 64 connections
# Each measure alternates the two servers run by run (RUNS, default 5) and reports medians.
# Drydock is measured with authentication (Basic, a project's token); the reference runs
# without any, as Debian ships it. Usage: benchmarks/registry.sh [blob MiB, default 1024]
#
# STORE=s3 puts both on one S3 endpoint instead of their local disks: moto in server mode (from
# PyPI, as the tests use it) on loopback, Drydock with DRYDOCK_BLOB_STORE=s3://… and the reference
# with its own S3 storage driver (Debian's build has it). moto keeps objects in memory, so the
# default blob is 256 MiB there.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-filesystem}; export STORE
if [[ $STORE == s3 ]]; then BLOB_MIB=${1:-256}; else BLOB_MIB=${1:-1024}; fi

scripts/install-deps.sh wrk curl python3 skopeo docker-registry
# DRYDOCK_BIN runs another build's binaries (benchmarks/compare.sh uses it); otherwise this checkout's.
if [[ -z ${DRYDOCK_BIN:-} ]]; then
    echo "==> building release"
    swift build -c release 2>&1 | grep -E 'error' || true
fi
BIN=${DRYDOCK_BIN:-$(swift build -c release --show-bin-path)}

WORK=$(mktemp -d /tmp/drydock-regbench.XXXXXX)
chmod 711 "$WORK"
DD_PORT=18290 REF_PORT=18291
MOTO=
if [[ $STORE == s3 ]]; then
    python3 -c 'import moto.server, boto3' 2>/dev/null || python3 -m pip install --quiet 'moto[server]' 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages 'moto[server]'
    S3_PORT=18292
    python3 Tests/Fixtures/moto-s3.py $S3_PORT --no-auth >"$WORK/moto.log" 2>&1 &
    MOTO=$!
    for _ in $(seq 1 60); do grep -q '^{' "$WORK/moto.log" 2>/dev/null && break; sleep 0.5; done
    python3 -c "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:$S3_PORT', region_name='us-east-1',
        aws_access_key_id='testing', aws_secret_access_key='testing').create_bucket(Bucket='reference')"
    cat >"$WORK/registry.yml" <<YAML
version: 0.1
log: { level: error }
storage:
  s3: { accesskey: testing, secretkey: testing, region: us-east-1, regionendpoint: "http://127.0.0.1:$S3_PORT",
        bucket: reference, rootdirectory: /registry, secure: false, v4auth: true }
  delete: { enabled: true }
  # Its S3 driver redirects blob GETs to the store by default; off, so both serve the bytes themselves.
  redirect: { disable: true }
http: { addr: 127.0.0.1:$REF_PORT }
YAML
    export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
    export DRYDOCK_BLOB_STORE="s3://drydock/registry?endpoint=http://127.0.0.1:$S3_PORT&region=us-east-1&path-style=true"
else
    cat >"$WORK/registry.yml" <<YAML
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $WORK/reference }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$REF_PORT }
YAML
fi
# (A CA bundle named in AWS_CA_BUNDLE makes the reference's S3 driver panic on a plain-HTTP endpoint.)
env -u AWS_CA_BUNDLE docker-registry serve "$WORK/registry.yml" >"$WORK/reference.log" 2>&1 &
REF=$!
DRYDOCK_DATA_DIR=$WORK/drydock DRYDOCK_PORT=$DD_PORT LOG_LEVEL=warning "$BIN/drydock-server" >"$WORK/drydock.log" 2>&1 &
DD=$!
cleanup() {
    kill $REF 2>/dev/null || true; kill -TERM $DD 2>/dev/null || true; wait $DD 2>/dev/null || true
    [[ -n $MOTO ]] && kill $MOTO 2>/dev/null || true
    rm -rf "$WORK"
}
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
seconds() { local start end; start=$(date +%s.%N); "$@"; end=$(date +%s.%N); python3 -c "print($end - $start)"; }
# The blob is in the page cache from writing it; each side's upload is timed once, alternating,
# with a sync between so neither inherits the other's writeback.
sync
DD_UPLOAD=$(seconds upload "http://127.0.0.1:$DD_PORT" "$PROJECT/big" "$AUTH")
sync
REF_UPLOAD=$(seconds upload "http://127.0.0.1:$REF_PORT" "bench/big")
echo "    one ${BLOB_MIB} MiB blob up: Drydock ${DD_UPLOAD} s (verified, fsynced), reference ${REF_UPLOAD} s"
# Drydock fsyncs what it stores; the reference leaves 1 GiB of dirty pages that the kernel writes
# back during whatever runs next. Flush them so that is not Drydock's first pull.
sync

# The machine is shared and noisy: every measure alternates Drydock and the reference run by run,
# so a burst of outside load cannot land on one side only, and reports medians.
RUNS=${RUNS:-5}
median() { python3 -c "import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))" "$@"; }
pull_rate() { # url [auth header] → MiB/s of one pull
    curl -fsS -H "${2:-X-None: 1}" -o /dev/null -w '%{speed_download}' "$1" | python3 -c "import sys; print(float(sys.stdin.read()) / 1048576)"
}
echo "==> pulling the blob, $RUNS runs each, alternating"
DD_PULLS=() REF_PULLS=()
for _ in $(seq 1 "$RUNS"); do
    DD_PULLS+=("$(pull_rate "http://127.0.0.1:$DD_PORT/v2/$PROJECT/big/blobs/$DIGEST" "$AUTH")")
    REF_PULLS+=("$(pull_rate "http://127.0.0.1:$REF_PORT/v2/bench/big/blobs/$DIGEST")")
done
DD_PULL=$(median "${DD_PULLS[@]}")
REF_PULL=$(median "${REF_PULLS[@]}")
echo "    Drydock MiB/s: ${DD_PULLS[*]}"
echo "    reference MiB/s: ${REF_PULLS[*]}"

echo "==> pushing a 10-layer image with skopeo, $RUNS runs each, alternating"
python3 Tests/Fixtures/make-oci-layout.py "$WORK/image" 10 4096 >/dev/null
push_time() { # destination creds-args... → seconds of one push
    local destination=$1; shift
    local start end
    start=$(date +%s.%N)
    skopeo copy --quiet --dest-tls-verify=false "$@" "oci:$WORK/image:latest" "docker://$destination" >/dev/null
    end=$(date +%s.%N)
    python3 -c "print($end - $start)"
}
DD_PUSHES=() REF_PUSHES=()
for run in $(seq 1 "$RUNS"); do
    DD_PUSHES+=("$(push_time "127.0.0.1:$DD_PORT/$PROJECT/push$run:v1" --dest-creds "bench:$TOKEN")")
    REF_PUSHES+=("$(push_time "127.0.0.1:$REF_PORT/bench/push$run:v1")")
done
DD_PUSH=$(median "${DD_PUSHES[@]}")
REF_PUSH=$(median "${REF_PUSHES[@]}")
echo "    Drydock s: ${DD_PUSHES[*]}"
echo "    reference s: ${REF_PUSHES[*]}"

echo "==> manifest GET with wrk, 64 connections, 3 rounds of 5 s each, alternating"
skopeo copy --quiet --dest-tls-verify=false --dest-creds "bench:$TOKEN" "oci:$WORK/image:latest" "docker://127.0.0.1:$DD_PORT/$PROJECT/app:v1" >/dev/null
skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/image:latest" "docker://127.0.0.1:$REF_PORT/bench/app:v1" >/dev/null
ACCEPT="Accept: application/vnd.oci.image.manifest.v1+json"
rps() { wrk -t2 -c64 -d5s "$@" | awk '/Requests\/sec/ {print $2}'; }
wrk -t2 -c64 -d2s -H "$AUTH" -H "$ACCEPT" "http://127.0.0.1:$DD_PORT/v2/$PROJECT/app/manifests/v1" >/dev/null
wrk -t2 -c64 -d2s -H "$ACCEPT" "http://127.0.0.1:$REF_PORT/v2/bench/app/manifests/v1" >/dev/null
DD_RPSS=() REF_RPSS=()
for _ in 1 2 3; do
    DD_RPSS+=("$(rps -H "$AUTH" -H "$ACCEPT" "http://127.0.0.1:$DD_PORT/v2/$PROJECT/app/manifests/v1")")
    REF_RPSS+=("$(rps -H "$ACCEPT" "http://127.0.0.1:$REF_PORT/v2/bench/app/manifests/v1")")
done
DD_RPS=$(median "${DD_RPSS[@]}")
REF_RPS=$(median "${REF_RPSS[@]}")
echo "    Drydock req/s: ${DD_RPSS[*]}"
echo "    reference req/s: ${REF_RPSS[*]}"

DD_PEAK_KB=$(awk '/VmHWM/ {print $2}' /proc/$DD/status)

python3 - "$DD_PULL" "$REF_PULL" "$DD_PUSH" "$REF_PUSH" "$DD_RPS" "$REF_RPS" "$BLOB_MIB" "$DD_PEAK_KB" "$DD_UPLOAD" "$REF_UPLOAD" <<'PY'
import sys
dd_pull, ref_pull, dd_push, ref_push, dd_rps, ref_rps = map(float, sys.argv[1:7])
print()
import os
print(f"Storage: {os.environ.get('STORE', 'filesystem')}")
print("| measure | Drydock | docker-registry 2.8 | ratio (higher is better for Drydock) |")
print("|---|---|---|---|")
print(f"| pull one {sys.argv[7]} MiB blob (median) | {dd_pull:,.0f} MiB/s | {ref_pull:,.0f} MiB/s | {dd_pull / ref_pull:.2f}x |")
dd_up, ref_up = map(float, sys.argv[9:11])
print(f"| push one {sys.argv[7]} MiB blob (POST + streamed PUT, one run each) | {dd_up:.2f} s | {ref_up:.2f} s | {ref_up / dd_up:.2f}x |")
print(f"| skopeo push, 10 layers x 4 MiB (median) | {dd_push:.2f} s | {ref_push:.2f} s | {ref_push / dd_push:.2f}x |")
print(f"| manifest GET, wrk 64 connections (median) | {dd_rps:,.0f} req/s | {ref_rps:,.0f} req/s | {dd_rps / ref_rps:.2f}x |")
print()
print(f"Drydock server peak RSS over the whole run (1 GiB in and 3 x out): {int(sys.argv[8]) / 1024:.0f} MB")
PY
