#!/usr/bin/env bash
# Runs every test: installs what is missing, starts a throwaway PostgreSQL on 127.0.0.1,
# builds, runs the Swift Testing suites, and stops PostgreSQL again whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

scripts/install-deps.sh skopeo buildah busybox qemu isolation podman docker openssl curl haproxy browser
# oras, the OCI artifact client, from PyPI (its Python package).
if ! python3 -c 'import oras' 2>/dev/null; then
    python3 -m pip --version >/dev/null 2>&1 || scripts/install-deps.sh python3-pip
    python3 -m pip install --quiet oras 2>/dev/null || python3 -m pip install --quiet --break-system-packages oras
fi

# moto in server mode (a real S3 endpoint for the object-store tests) and boto3, from PyPI.
if ! python3 -c 'import moto.server, boto3, flask' 2>/dev/null; then
    python3 -m pip --version >/dev/null 2>&1 || scripts/install-deps.sh python3-pip
    python3 -m pip install --quiet 'moto[server]' 2>/dev/null || python3 -m pip install --quiet --break-system-packages 'moto[server]'
fi

# selenium drives chromium for the dashboard's browser tests.
if ! python3 -c 'import selenium' 2>/dev/null; then
    python3 -m pip --version >/dev/null 2>&1 || scripts/install-deps.sh python3-pip
    python3 -m pip install --quiet selenium 2>/dev/null || python3 -m pip install --quiet --break-system-packages selenium
fi

PGBIN=$(dirname "$(readlink -f "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")")
PGDIR=$(mktemp -d /tmp/drydock-test-pg.XXXXXX)
chmod 755 "$PGDIR"
AS=()
if [[ $(id -u) -eq 0 ]]; then
    chown postgres:postgres "$PGDIR"
    AS=(runuser -u postgres --)
fi

stop_pg() {
    local status=$?
    # A failed run keeps what PostgreSQL said about it (connections refused, statements that
    # failed) in the output, since the cluster is deleted.
    # Clients that went away when their test server stopped are not news: left out.
    local said
    said=$(grep -E 'FATAL|PANIC|too many' "$PGDIR/log" 2>/dev/null | grep -vE 'connection to client lost|terminating connection due to administrator command' | tail -20) || true
    if [[ $status -ne 0 && -n $said ]]; then
        echo "==> the test PostgreSQL's log, its FATAL lines (the run failed):" >&2
        echo "$said" >&2
    fi
    (cd / && "${AS[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate -w stop >/dev/null 2>&1) || true
    rm -rf "$PGDIR"
}
trap stop_pg EXIT

# Only a Unix socket in its own directory: no TCP port to collide with anything else running.
echo "==> starting PostgreSQL for the tests (socket in $PGDIR)"
(cd / && "${AS[@]}" "$PGBIN/initdb" -D "$PGDIR/data" -U drydock -A trust -E UTF8 --no-instructions >/dev/null)
if ! (cd / && "${AS[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w -t 60 \
    -o "-c listen_addresses='' -k $PGDIR -c max_connections=500 -c fsync=off" start >/dev/null); then
    echo "drydock: the test PostgreSQL did not start:" >&2
    tail -20 "$PGDIR/log" >&2
    exit 1
fi
export DRYDOCK_TEST_DATABASE_URL="postgres://drydock@/postgres?host=$PGDIR"

echo "==> building (debug, with tests)"
set +e
swift build --build-tests 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]|^(Compiling|Building|Write|Emitting|Linking|Planning)'
build=${PIPESTATUS[0]}
set -e
if [[ $build -ne 0 ]]; then echo "drydock: build failed" >&2; exit "$build"; fi

echo "==> running tests (unit and integration; 'swift test --skip-build --filter Unit' alone is the quick loop)"
# Line-buffered, so a log written to a file shows every test as it ends (a hang shows where it is).
if command -v stdbuf >/dev/null 2>&1; then
    stdbuf -oL -eL swift test --skip-build "$@"
else
    swift test --skip-build "$@"
fi
