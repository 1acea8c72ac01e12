#!/usr/bin/env bash
# The job queue's scale simulation (issue 17): one server on its private PostgreSQL, 2,000
# builds queued, then 5, 20 and 50 simulated workers (benchmarks/queue_sim.py) claiming,
# heartbeating, reporting and finishing through the API, no buildah. Then the same with a
# usage cap set and 20,000 finished jobs already in the month, and with ten organizations.
# Each scenario gets organizations of its own on the Startup plan (the Developer plan includes
# only 30 build minutes a month, fewer than 2,000 simulated jobs meter); "cap" scenarios set a
# minutes cap, which makes every claim and creation check the month's usage.
# Targets: >= 150 jobs/s at 20 workers, claim p99 < 50 ms at 50 workers, heartbeat p99 < 50 ms.
# REPLICAS=2 runs a second server on the first one's PostgreSQL and a shared blob directory,
# with Debian's haproxy balancing the workers' requests over both, round-robin.
# SLOW_MS=N has PostgreSQL log every statement slower than N ms (and autovacuum runs) to
# DATA/postgres.log, with a line marking each scenario's start; KEEP=1 keeps DATA to read it.
# (That is how a sweep of the lease reaper that grew with history was found: README.)
# Usage: [JOBS=2000] [REPLICAS=1|2] [SCENARIOS="5 20 50 cap20 cap50 orgs20"] [SIM=another_sim.py] [SLOW_MS=15 KEEP=1] benchmarks/queue.sh
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2000}
SCENARIOS=${SCENARIOS:-"5 20 50 cap20 cap50 orgs20"}

scripts/install-deps.sh curl python3
# The generator's event loop: uvloop when PyPI is reachable (less of the shared cores spent on
# the generator itself), else asyncio's; each result line says which ("loop").
python3 -c "import uvloop" 2>/dev/null || { scripts/install-deps.sh python3-pip
    python3 -m pip install --quiet uvloop 2>/dev/null || python3 -m pip install --quiet --break-system-packages uvloop 2>/dev/null || true; }
if [[ -z ${DRYDOCK_BIN:-} ]]; then
    echo "==> building release"
    swift build -c release 2>&1 | grep -E 'error|Compiling drydock' || true
fi
BIN=${DRYDOCK_BIN:-$(swift build -c release --show-bin-path)}

DATA=$(mktemp -d /tmp/drydock-queue.XXXXXX)
chmod 711 "$DATA"
PORT=${BENCH_PORT:-18191}
URL=http://127.0.0.1:$PORT
export DRYDOCK_DATA_DIR=$DATA
export DRYDOCK_BLOB_STORE=file://$DATA/shared
DRYDOCK_PORT=$PORT LOG_LEVEL=warning "$BIN/drydock-server" >"$DATA/server.log" 2>&1 &
SERVER=$!
SECOND=
BALANCER=
cleanup() {
    [[ -z $BALANCER ]] || kill $BALANCER 2>/dev/null || true
    [[ -z $SECOND ]] || { kill -TERM $SECOND 2>/dev/null; wait $SECOND 2>/dev/null || true; }
    kill -TERM $SERVER 2>/dev/null || true
    wait $SERVER 2>/dev/null || true
    [[ -n ${KEEP:-} ]] || rm -rf "$DATA"
}
trap cleanup EXIT
for _ in $(seq 1 240); do curl -fsS "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fsS "$URL/readyz" >/dev/null
if [[ ${REPLICAS:-1} == 2 ]]; then
    scripts/install-deps.sh haproxy
    # The second replica: the first one's private PostgreSQL (over its socket), the same blobs.
    DRYDOCK_DATABASE_URL="postgres://drydock@/drydock?host=$DATA/run" DRYDOCK_DATA_DIR=$DATA/second DRYDOCK_PORT=$((PORT + 1)) \
        LOG_LEVEL=warning "$BIN/drydock-server" >"$DATA/second.log" 2>&1 &
    SECOND=$!
    for _ in $(seq 1 120); do curl -fsS "http://127.0.0.1:$((PORT + 1))/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
    cat >"$DATA/haproxy.cfg" <<CFG
global
    maxconn 2048
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
frontend queue
    bind 127.0.0.1:$((PORT + 2))
    default_backend replicas
backend replicas
    balance roundrobin
    server a 127.0.0.1:$PORT
    server b 127.0.0.1:$((PORT + 1))
CFG
    haproxy -db -f "$DATA/haproxy.cfg" >"$DATA/haproxy.log" 2>&1 &
    BALANCER=$!
    URL=http://127.0.0.1:$((PORT + 2))
    for _ in $(seq 1 40); do curl -fsS "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.25; done
fi

WORKER=$("$BIN/drydock-server" worker-token --name sim | tail -1)
ZERO=$(mktemp)
head -c 1024 /dev/zero >"$ZERO"
HEX=$(sha256sum "$ZERO" | cut -d' ' -f1)
psql_() { psql -q -h "$DATA/run" -U drydock -d drydock -v ON_ERROR_STOP=1 "$@"; }
if [[ $(id -u) -eq 0 ]]; then psql_() { runuser -u postgres -- psql -q -h "$DATA/run" -U drydock -d drydock -v ON_ERROR_STOP=1 "$@"; }; fi
if [[ -n ${SLOW_MS:-} ]]; then
    psql_ -c "ALTER SYSTEM SET log_min_duration_statement = ${SLOW_MS}" -c "ALTER SYSTEM SET log_autovacuum_min_duration = 0" \
        -c "SELECT pg_reload_conf()" >/dev/null
    echo "==> PostgreSQL logs statements slower than $SLOW_MS ms to $DATA/postgres.log"
fi

# An organization with a project and the empty context uploaded → "ORG PROJECT TOKEN".
organization() {
    local name=$1 token project org
    token=$("$BIN/drydock-server" bootstrap --org "$name" --plan startup | tail -1)
    project=$(curl -fsS -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "{\"name\":\"$name\"}" "$URL/api/v1/projects" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    org=$(curl -fsS -H "Authorization: Bearer $token" "$URL/api/v1/me" | python3 -c 'import json,sys; print(json.load(sys.stdin)["organization"]["id"])')
    curl -fsS -X PUT -H "Authorization: Bearer $token" -H 'Content-Type: application/x-tar' --data-binary @"$ZERO" \
        "$URL/api/v1/projects/$project/contexts/$HEX" >/dev/null
    echo "$org $project $token"
}

# 20,000 finished builds and jobs already this month, each metered.
prefill() {
    local org=$1 project=$2 tag=$3
    psql_ <<SQL
INSERT INTO builds (id, project_id, organization_id, status, context_digest, spec, created_at, started_at, finished_at)
SELECT '$tag' || lpad(i::text, 11, '0'), '$project', '$org', 'succeeded', 'sha256:$HEX',
       '{"dockerfile":"Dockerfile","platforms":["linux/amd64"],"tags":[],"pushTags":[],"buildArgs":{},"labels":{},"noCache":false,"pull":"missing","push":false}',
       now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour'
FROM generate_series(1, 20000) i;
INSERT INTO build_jobs (id, build_id, organization_id, platform, status, started_at, finished_at)
SELECT 'j$tag' || lpad(i::text, 10, '0'), '$tag' || lpad(i::text, 11, '0'), '$org', 'linux/amd64', 'succeeded',
       now() - interval '1 hour', now() - interval '1 hour' + interval '1 second'
FROM generate_series(1, 20000) i;
INSERT INTO usage_builds (job_id, organization_id, project_id, platform, start_epoch, seconds)
SELECT 'j$tag' || lpad(i::text, 10, '0'), '$org', '$project', 'linux/amd64', extract(epoch FROM now() - interval '1 hour')::bigint, 1
FROM generate_series(1, 20000) i;
VACUUM ANALYZE build_jobs, builds, usage_builds;
SQL
}

results=()
failed=0
REPLICAS_LABEL="${REPLICAS:-1} replica(s)"
for scenario in $SCENARIOS; do
    workers=${scenario//[a-z]/}
    args=()
    case $scenario in
    orgs*)
        for i in $(seq 1 10); do read -r org project token < <(organization "sim-$scenario-$i"); args+=("$project:$token"); done ;;
    cap*)
        read -r org project token < <(organization "sim-$scenario")
        curl -fsS -X PUT -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{"minutesPerMonth":100000}' \
            "$URL/api/v1/orgs/$org/usage/caps" >/dev/null
        prefill "$org" "$project" "${scenario:0:5}"
        args+=("$project:$token") ;;
    *)
        read -r org project token < <(organization "sim-$scenario")
        args+=("$project:$token") ;;
    esac
    echo "==> scenario $scenario: $JOBS jobs, $workers workers"
    # A statement slower than any threshold, so the log marks where the scenario begins.
    [[ -z ${SLOW_MS:-} ]] || psql_ -c "SELECT pg_sleep(($SLOW_MS + 1) / 1000.0), 'scenario $scenario starts'" >/dev/null
    status=0
    line=$(echo "sha256:$HEX" | python3 ${SIM:-benchmarks/queue_sim.py} "$URL" "$WORKER" "$JOBS" "$workers" "${args[@]}") || status=$?
    echo "$line"
    if ((status)); then failed=1; echo "scenario $scenario FAILED: a job was lost, claimed twice or refused (see above)"; fi
    results+=("$scenario $line")
done

echo
echo "==> results ($REPLICAS_LABEL; this machine: $(nproc) cores, load generator on the same machine)"
printf '%s\n' "${results[@]}" | python3 -c '
import json, sys
# "srv<=50" columns: the share of claims and heartbeats the server itself answered within 50 ms
# (its request-duration histogram, without the lag of the load generator on the shared cores).
head = ("scenario", "jobs/s", "create/s", "claim p50", "claim p99", "after 1s", "hb p50", "hb p99", "srv<=50 claim", "hb", "twice", "lost")
print("%-9s %7s %8s %9s %9s %9s %7s %7s %13s %7s %6s %5s" % head)
for line in sys.stdin:
    name, data = line.split(" ", 1)
    r = json.loads(data)
    share = lambda v: "-" if v is None else "%s%%" % v
    print("%-9s %7s %8s %7sms %7sms %7sms %5sms %5sms %13s %7s %6s %5s" % (name, r["jobs_per_s"], r["create_per_s"], r["claim_p50_ms"], r["claim_p99_ms"],
          r["claim_p99_after_1s_ms"], r["heartbeat_p50_ms"], r["heartbeat_p99_ms"], share(r["server_claim_within_50ms_pct"]),
          share(r["server_heartbeat_within_50ms_pct"]), r["claimed_twice"], r["lost"]))
'
curl -fsS "$URL/metrics" | grep -E '^drydock_db_pool' || true
exit $failed
