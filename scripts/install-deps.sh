#!/usr/bin/env bash
# Installs what Drydock needs on Debian when it is missing: PostgreSQL (server and client).
# Swift itself must already be installed (swift.org toolchain); this script checks for it.
set -euo pipefail

need=()
have_pg() {
    command -v initdb >/dev/null 2>&1 && return 0
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
have_pg || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
for extra in "$@"; do
    case $extra in
        busybox) [[ -x /bin/busybox || -x /usr/bin/busybox ]] || need+=(busybox-static) ;;
        qemu) [[ -x /usr/bin/qemu-aarch64-static ]] || need+=(qemu-user-static) ;;
        # buildah's OCI isolation (RUN steps in their own PID and network namespaces): runc, and
        # netavark with aardvark-dns and iptables for the build's own network.
        isolation)
            command -v runc >/dev/null 2>&1 || need+=(runc)
            [[ -x /usr/lib/podman/netavark ]] || need+=(netavark)
            [[ -x /usr/lib/podman/aardvark-dns ]] || need+=(aardvark-dns)
            # netavark sets the build network up with iptables (only recommended by its package).
            command -v iptables >/dev/null 2>&1 || need+=(iptables) ;;
        # The dashboard's browser tests: Debian's chromium and its WebDriver.
        browser)
            command -v chromium >/dev/null 2>&1 || need+=(chromium)
            command -v chromedriver >/dev/null 2>&1 || [[ -x /usr/lib/chromium/chromedriver ]] || need+=(chromium-driver) ;;
        python3-pip) python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip) ;;
        # The docker CLI alone (no engine): configure-docker's plugin and credential helper.
        docker) command -v docker >/dev/null 2>&1 || need+=(docker.io) ;;
        *) command -v "$extra" >/dev/null 2>&1 || need+=("$extra") ;;
    esac
done

if ((${#need[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "drydock: missing packages: ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
        exit 1
    fi
    echo "==> installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # Debian's postgresql package starts a system cluster; Drydock runs its own, so stop it.
    if command -v pg_lsclusters >/dev/null 2>&1; then
        service postgresql stop >/dev/null 2>&1 || true
    fi
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "drydock: Swift is not installed; install a Swift 6 toolchain from swift.org first" >&2
    exit 1
fi
