#!/usr/bin/env bash
# Build benchmark, same machine, same Dockerfile, side by side:
#   1. a warm rebuild through Drydock (CLI → server → worker → buildah → registry push) against a
#      warm `buildah bud --layers` run directly on its own storage (median of 5 each)
#   2. queue-to-start latency: from the answer to POST /builds to the "picked up" entry arriving
#      on the client's live log stream (p50 and p90 of 20 builds)
#   3. a 100 MB / 10,000-file context: the second build uploads nothing
#   4. (as root, with qemu-user-static) a two-platform build, linux/amd64 on the native builder and
#      linux/arm64 on a second builder that emulates it, against the slower of the two built alone
#      (median of 3 each, alternating, no cache), and the same RUN step's time native vs emulated
#   5. what OCI isolation (runc: RUN steps in their own PID and network namespaces) costs against
#      chroot: the warm rebuild (every step cached) and a rebuild whose build argument changes
#      (three RUN steps run again), median of 5 each, the builder restarted with one or the other
#      before each run, alternating
#   6. drydock-agent: queue to start when the agent must first start the builder (cold: the
#      previous builder exited after its idle time; p50 of 10) and with its builder running (warm,
#      p50 of 20)
# Usage: benchmarks/build.sh   (BENCH_ONLY=isolation,agent runs only sections 5 and 6)
set -euo pipefail
ONLY=${BENCH_ONLY:-all}
want() { [[ $ONLY == all || ,$ONLY, == *,$1,* ]]; }
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/install-deps.sh curl python3 buildah skopeo busybox
# DRYDOCK_BIN runs another build's binaries (benchmarks/compare.sh uses it); otherwise this checkout's.
if [[ -z ${DRYDOCK_BIN:-} ]]; then
    echo "==> building release"
    swift build -c release 2>&1 | grep -E 'error' || true
fi
BIN=${DRYDOCK_BIN:-$(swift build -c release --show-bin-path)}

WORK=$(mktemp -d /tmp/drydock-buildbench.XXXXXX)
chmod 711 "$WORK"
PORT=18390
API=http://127.0.0.1:$PORT
HOST=127.0.0.1:$PORT
DRYDOCK_DATA_DIR=$WORK/data DRYDOCK_PORT=$PORT LOG_LEVEL=warning "$BIN/drydock-server" >"$WORK/server.log" 2>&1 &
SERVER=$!
BUILDER=
AGENT=
cleanup() {
    [[ -n $BUILDER ]] && kill -TERM "$BUILDER" 2>/dev/null
    [[ -n $AGENT ]] && kill -TERM "$AGENT" 2>/dev/null
    [[ -n ${EMULATOR:-} ]] && kill -TERM "$EMULATOR" 2>/dev/null
    kill -TERM $SERVER 2>/dev/null || true
    wait 2>/dev/null || true
    buildah --root "$WORK/direct/storage" --runroot "$WORK/direct/run" --storage-driver overlay rmi -a -f >/dev/null 2>&1 || true
    for d in "$WORK"/cache*/*/*/storage "$WORK"/agent/volumes/*/*/storage; do buildah --root "$d" --runroot "${d%storage}run" --storage-driver overlay rmi -a -f >/dev/null 2>&1 || true; done
    rm -rf "$WORK" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 120); do curl -fsS "$API/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
TOKEN=$(DRYDOCK_DATA_DIR=$WORK/data "$BIN/drydock-server" bootstrap --org bench | tail -1)
export DRYDOCK_API_URL=$API DRYDOCK_TOKEN=$TOKEN XDG_CONFIG_HOME=$WORK/config
PROJECT=$("$BIN/drydock" projects create bench --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
WORKER=$("$BIN/drydock" tokens create --kind worker --name bench 2>/dev/null | tail -1)
DRYDOCK_WORKER_TOKEN=$WORKER DRYDOCK_CACHE_DIR=$WORK/cache LOG_LEVEL=warning "$BIN/drydock-builder" >"$WORK/builder.log" 2>&1 &
BUILDER=$!

python3 Tests/Fixtures/make-busybox-layout.py "$WORK/busybox" >/dev/null
skopeo copy --quiet --dest-tls-verify=false --dest-creds "bench:$TOKEN" oci:"$WORK/busybox":latest "docker://$HOST/$PROJECT/busybox:latest"
BASE=$HOST/$PROJECT/busybox:latest

# The same context and Dockerfile for both.
CTX=$WORK/ctx
mkdir -p "$CTX/src"
for i in $(seq 1 50); do head -c 20000 /dev/urandom | base64 >"$CTX/src/file$i.txt"; done
cat >"$CTX/Dockerfile" <<DOCKERFILE
FROM $BASE
ARG VERSION=1
WORKDIR /app
COPY src/ ./src/
RUN cat src/*.txt | wc -c > /app/size
RUN mkdir -p /app/out && for i in 1 2 3 4 5; do echo \$i >> /app/out/list; done
ENV MODE=release
RUN echo "\$VERSION \$MODE" > /app/version
CMD ["cat", "/app/version"]
DOCKERFILE

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

drydock_build() { "$BIN/drydock" build --project "$PROJECT" --progress plain -t bench:1 "$CTX" >"$WORK/last.log" 2>&1; }
# The queue-to-start function (sections 2 and 6) is defined before the sections.
# Queue to start: from the answer to POST /builds to the "running" status on the live log.
# queue_latency COUNT warm|cold  prints "p50 p90" in ms.
queue_latency() {
python3 - "$API" "$TOKEN" "$PROJECT" "$CTX" "$1" "$2" <<'PY'
import hashlib, io, json, os, statistics, sys, tarfile, time, urllib.request
api, token, project, ctx, count, mode = sys.argv[1:7]
count = int(count)
def call(method, path, body=None, ctype="application/json"):
    req = urllib.request.Request(api + path, data=body, method=method,
                                 headers={"Authorization": "Bearer " + token, "Content-Type": ctype})
    return urllib.request.urlopen(req, timeout=120)
# A tiny context: just a Dockerfile that does nothing slow.
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as tar:
    data = open(os.path.join(ctx, "Dockerfile"), "rb").read().split(b"\n")[0] + b"\nRUN true\n"
    info = tarfile.TarInfo("Dockerfile"); info.size = len(data); tar.addfile(info, io.BytesIO(data))
tar_bytes = buf.getvalue()
digest = hashlib.sha256(tar_bytes).hexdigest()
call("PUT", f"/api/v1/projects/{project}/contexts/{digest}", tar_bytes, "application/x-tar").read()
samples = []
def no_live_builder():
    builders = json.load(call("GET", "/api/v1/builders"))["items"]
    return not any(b.get("projectId") == project and b.get("state") != "stopped" for b in builders)
for n in range(count):
    if mode == "cold":
        # The agent's builder for this project has exited after its idle time.
        while not no_live_builder():
            time.sleep(0.2)
    body = json.dumps({"contextDigest": "sha256:" + digest}).encode()
    build = json.load(call("POST", f"/api/v1/projects/{project}/builds", body))
    queued = time.monotonic()
    stream = call("GET", f"/api/v1/builds/{build['id']}/logs?follow=true")
    started = None
    for line in stream:
        entry = json.loads(line)
        if started is None and entry.get("kind") == "status" and entry.get("status") == "running":
            started = time.monotonic()
    samples.append((started - queued) * 1000)
samples.sort()
print(f"{statistics.median(samples):.1f} {samples[int(len(samples) * 0.9) - 1]:.1f}")
PY
}
DD_MED=0; DIRECT_MED=0; RATIO=-; ADDED=0; P50=-; P90=-; BIG1=0; BIG2=0; BIG_LINE1=-; BIG_LINE2=-; MULTI=""
if want rebuild; then
echo "==> warm rebuild: drydock build vs buildah bud --layers (median of 5 each, after a warm-up)"
drydock_build && drydock_build
: >"$WORK/dd.times"
for _ in 1 2 3 4 5; do s=$(now); drydock_build; e=$(now); echo "$e - $s" | bc >>"$WORK/dd.times"; done
grep -q "nothing to upload" "$WORK/last.log" || { echo "warm Drydock build uploaded its context again" >&2; exit 1; }
DIRECT=(buildah --root "$WORK/direct/storage" --runroot "$WORK/direct/run" --storage-driver overlay)
direct_build() {
    BUILDAH_ISOLATION=chroot "${DIRECT[@]}" bud --layers --tls-verify=false --creds "bench:$TOKEN" --pull=false \
        -t localhost/bench:1 "$CTX" >"$WORK/direct.log" 2>&1
}
direct_build && direct_build
: >"$WORK/direct.times"
for _ in 1 2 3 4 5; do s=$(now); direct_build; e=$(now); echo "$e - $s" | bc >>"$WORK/direct.times"; done
DD_MED=$(median <"$WORK/dd.times"); DIRECT_MED=$(median <"$WORK/direct.times")
RATIO=$(echo "scale=2; $DD_MED / $DIRECT_MED" | bc); ADDED=$(echo "scale=3; $DD_MED - $DIRECT_MED" | bc)

fi
if want queue; then
echo "==> queue-to-start latency (20 builds, one worker idle and waiting)"
LATENCY=$(queue_latency 20 warm)
P50=${LATENCY% *}; P90=${LATENCY#* }
fi

if want context; then
echo "==> 100 MB / 10,000-file context: first build uploads it, the second uploads nothing"
BIG=$WORK/big
mkdir -p "$BIG"
python3 - "$BIG" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(100):
    os.makedirs(f"{root}/d{d:03}", exist_ok=True)
    for f in range(100):
        with open(f"{root}/d{d:03}/f{f:03}.bin", "wb") as out:
            out.write(os.urandom(10_000))
PY
echo "FROM $BASE" >"$BIG/Dockerfile"
echo "COPY . /data" >>"$BIG/Dockerfile"
s=$(now); "$BIN/drydock" build --project "$PROJECT" --progress plain "$BIG" >"$WORK/big1.log" 2>&1; e=$(now); BIG1=$(echo "$e - $s" | bc)
s=$(now); "$BIN/drydock" build --project "$PROJECT" --progress plain "$BIG" >"$WORK/big2.log" 2>&1; e=$(now); BIG2=$(echo "$e - $s" | bc)
BIG_LINE1=$(grep -m1 '^context' "$WORK/big1.log"); BIG_LINE2=$(grep -m1 '^context' "$WORK/big2.log")
fi

if want multi && [[ $(id -u) -eq 0 ]] && "$ROOT/scripts/install-deps.sh" qemu >/dev/null 2>&1; then
    echo "==> two platforms (amd64 native + arm64 emulated) against the slower one alone"
    "$ROOT/Tests/Fixtures/busybox-arches.sh" "$WORK/arches" >/dev/null
    skopeo copy --quiet --all --dest-tls-verify=false --dest-creds "bench:$TOKEN" oci:"$WORK/arches":latest "docker://$HOST/$PROJECT/busybox:multi"
    DRYDOCK_WORKER_TOKEN=$WORKER DRYDOCK_CACHE_DIR=$WORK/cache-emu DRYDOCK_BUILDER_NAME=emulator DRYDOCK_BUILDER_PLATFORMS=none \
        DRYDOCK_BUILDER_EMULATE=linux/arm64 LOG_LEVEL=warning "$BIN/drydock-builder" >"$WORK/emulator.log" 2>&1 &
    EMULATOR=$!
    "$BIN/drydock" projects update "$PROJECT" --emulation allowed >/dev/null
    MP=$WORK/mp
    mkdir -p "$MP"
    printf 'FROM %s\nRUN i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo $i > /count\n' "$HOST/$PROJECT/busybox:multi" >"$MP/Dockerfile"
    mp_build() { "$BIN/drydock" build --project "$PROJECT" --progress plain --no-cache --platform "$1" --metadata-file "$WORK/mp.json" "$MP" >"$WORK/mp.log" 2>&1; }
    mp_build linux/amd64,linux/arm64   # warm-up: base images pulled on both builders
    : >"$WORK/mp.amd64"; : >"$WORK/mp.arm64"; : >"$WORK/mp.both"; : >"$WORK/run.native"; : >"$WORK/run.emulated"
    for _ in 1 2 3; do
        for p in linux/amd64 linux/arm64 linux/amd64,linux/arm64; do
            s=$(now); mp_build "$p"; e=$(now)
            case $p in linux/amd64) f=mp.amd64 ;; linux/arm64) f=mp.arm64 ;; *) f=mp.both ;; esac
            echo "$e - $s" | bc >>"$WORK/$f"
        done
        id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["drydock.build.id"])' "$WORK/mp.json")
        "$BIN/drydock" builds get "$id" --format json | python3 -c '
import json, sys
build = json.load(sys.stdin)
for step in build["steps"]:
    if step["instruction"].startswith("RUN"):
        kind = "emulated" if step["platform"] == "linux/arm64" else "native"
        open(sys.argv[1] + "/run." + kind, "a").write(str(step.get("durationMs", 0) / 1000) + "\n")' "$WORK"
    done
    A=$(median <"$WORK/mp.amd64"); B=$(median <"$WORK/mp.arm64"); BOTH=$(median <"$WORK/mp.both")
    SLOWER=$(echo "if ($A > $B) $A else $B" | bc)
    ADDED_PCT=$(echo "scale=1; ($BOTH - $SLOWER) * 100 / $SLOWER" | bc)
    NATIVE=$(median <"$WORK/run.native"); EMULATED=$(median <"$WORK/run.emulated")
    MULTI=$(printf '| two platforms vs the slower alone (median of 3) | %.2f s vs %.2f s (amd64 %.2f s, arm64 %.2f s) | | %.1f%% added |\n| the same RUN, native vs emulated | %.2f s vs %.2f s | | %.1fx |' \
        "$BOTH" "$SLOWER" "$A" "$B" "$ADDED_PCT" "$NATIVE" "$EMULATED" "$(echo "scale=2; $EMULATED / $NATIVE" | bc)")
fi

ISO_OCI_WARM=0; ISO_CHROOT_WARM=1; ISO_OCI_ARG=0; ISO_CHROOT_ARG=1; COLD="- -"; WARM="- -"
if want isolation; then
echo "==> OCI isolation vs chroot: warm rebuild and a rebuild with a changed build argument (median of 5 each, alternating)"
[[ -n $BUILDER ]] && { kill -TERM "$BUILDER" 2>/dev/null; wait "$BUILDER" 2>/dev/null || true; BUILDER=; }
[[ -n ${EMULATOR:-} ]] && { kill -TERM "$EMULATOR" 2>/dev/null; wait "$EMULATOR" 2>/dev/null || true; EMULATOR=; }
"$ROOT/scripts/install-deps.sh" isolation >/dev/null 2>&1 || true
start_builder() {
    DRYDOCK_WORKER_TOKEN=$WORKER DRYDOCK_CACHE_DIR=$WORK/cache DRYDOCK_BUILDER_ISOLATION=$1 LOG_LEVEL=warning "$BIN/drydock-builder" >"$WORK/builder-$1.log" 2>&1 &
    BUILDER=$!
}
stop_builder() { kill -TERM "$BUILDER" 2>/dev/null; wait "$BUILDER" 2>/dev/null || true; BUILDER=; }
: >"$WORK/iso.oci.warm"; : >"$WORK/iso.chroot.warm"; : >"$WORK/iso.oci.arg"; : >"$WORK/iso.chroot.arg"
for round in 1 2 3 4 5 6; do
    for iso in oci chroot; do
        start_builder "$iso"
        if [[ $round -gt 1 ]]; then   # round 1 warms both up
            s=$(now); drydock_build; e=$(now); echo "$e - $s" | bc >>"$WORK/iso.$iso.warm"
            s=$(now); "$BIN/drydock" build --project "$PROJECT" --progress plain --build-arg VERSION="$iso$round" -t bench:1 "$CTX" >"$WORK/iso.log" 2>&1; e=$(now)
            echo "$e - $s" | bc >>"$WORK/iso.$iso.arg"
        else
            drydock_build
        fi
        stop_builder
    done
done
ISO_OCI_WARM=$(median <"$WORK/iso.oci.warm"); ISO_CHROOT_WARM=$(median <"$WORK/iso.chroot.warm")
ISO_OCI_ARG=$(median <"$WORK/iso.oci.arg"); ISO_CHROOT_ARG=$(median <"$WORK/iso.chroot.arg")
echo "    oci warm: $(tr '\n' ' ' <"$WORK/iso.oci.warm")  chroot warm: $(tr '\n' ' ' <"$WORK/iso.chroot.warm")"
echo "    oci arg:  $(tr '\n' ' ' <"$WORK/iso.oci.arg")  chroot arg:  $(tr '\n' ' ' <"$WORK/iso.chroot.arg")"
fi

if want agent; then
[[ -n $BUILDER ]] && { kill -TERM "$BUILDER" 2>/dev/null; wait "$BUILDER" 2>/dev/null || true; BUILDER=; }
echo "==> drydock-agent: queue to start, the builder started on demand (cold, 10) and running (warm, 20)"
"$BIN/drydock" projects update "$PROJECT" --builder-idle 5s >/dev/null
AGENT_TOKEN=$("$BIN/drydock" tokens create --kind agent --name bench-agent 2>/dev/null | tail -1)
DRYDOCK_AGENT_TOKEN=$AGENT_TOKEN DRYDOCK_AGENT_DATA_DIR=$WORK/agent DRYDOCK_AGENT_PLATFORMS=linux/amd64 LOG_LEVEL=warning \
    "$BIN/drydock-agent" >"$WORK/agent.log" 2>&1 &
AGENT=$!
COLD=$(queue_latency 10 cold)
WARM=$(queue_latency 20 warm)
fi

echo
echo "| measure | Drydock | direct buildah | ratio / figure |"
echo "|---|---|---|---|"
if want rebuild; then printf '| warm rebuild (median of 5) | %.2f s | %.2f s | %sx, +%.2f s |\n' "$DD_MED" "$DIRECT_MED" "$RATIO" "$ADDED"; fi
if want queue; then printf '| queue to start, 20 builds | p50 %s ms, p90 %s ms | | |\n' "$P50" "$P90"; fi
if want context; then
    printf '| 100 MB / 10,000-file context, first build | %.2f s | | %s |\n' "$BIG1" "$BIG_LINE1"
    printf '| same context, second build | %.2f s | | %s |\n' "$BIG2" "$BIG_LINE2"
fi
if [[ -n $MULTI ]]; then echo "$MULTI"; fi
if want isolation; then
    printf '| warm rebuild, OCI isolation vs chroot (median of 5) | %.2f s vs %.2f s | | %sx |\n' "$ISO_OCI_WARM" "$ISO_CHROOT_WARM" "$(echo "scale=2; $ISO_OCI_WARM / $ISO_CHROOT_WARM" | bc)"
    printf '| changed build argument (3 RUN steps), OCI vs chroot | %.2f s vs %.2f s | | %sx |\n' "$ISO_OCI_ARG" "$ISO_CHROOT_ARG" "$(echo "scale=2; $ISO_OCI_ARG / $ISO_CHROOT_ARG" | bc)"
fi
if want agent; then
    printf '| agent: queue to start, builder started on demand (10) | p50 %s ms, p90 %s ms | | |\n' "${COLD% *}" "${COLD#* }"
    printf '| agent: queue to start, builder running (20) | p50 %s ms, p90 %s ms | | |\n' "${WARM% *}" "${WARM#* }"
fi
