#!/usr/bin/env bash
# Fetches Debian's busybox-static for every platform Drydock builds for (amd64, arm64, armhf =
# arm/v7, armel = arm/v6, i386 = 386) and writes one multi-platform OCI layout of them:
#   Tests/Fixtures/busybox-arches.sh OUT_DIR      # then: skopeo copy --all oci:OUT_DIR:latest docker://…
# Needs root the first time (dpkg --add-architecture, apt-get update); the packages are kept in
# /var/cache/drydock-busybox so later runs need no network.
set -euo pipefail
out=$1
cache=${DRYDOCK_BUSYBOX_CACHE:-/var/cache/drydock-busybox}
mkdir -p "$cache"
# Tests run at once may all get here on a fresh machine: one fetches, the others wait for it.
exec 9>"$cache/.lock"
flock 9
declare -A platforms=([amd64]=linux/amd64 [arm64]=linux/arm64 [armhf]=linux/arm/v7 [armel]=linux/arm/v6 [i386]=linux/386)
missing=()
for arch in "${!platforms[@]}"; do
    [[ -x $cache/$arch/bin/busybox ]] || missing+=("$arch")
done
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || { echo "busybox-arches.sh: run as root once to fetch ${missing[*]}" >&2; exit 1; }
    for arch in "${missing[@]}"; do
        [[ $arch == "$(dpkg --print-architecture)" ]] || dpkg --add-architecture "$arch"
    done
    apt-get update -qq >/dev/null 2>&1 || true   # a mirror of one architecture may lag; the packages are what matters
    (cd "$cache" && for arch in "${missing[@]}"; do
        rm -f busybox-static_*_"$arch".deb
        apt-get download -qq "busybox-static:$arch" 2>/dev/null
        rm -rf "$arch" && dpkg -x busybox-static_*_"$arch".deb "$arch"
    done)
fi
args=()
for arch in amd64 arm64 armhf armel i386; do args+=("${platforms[$arch]}=$cache/$arch/bin/busybox"); done
rm -rf "$out"
python3 "$(dirname "$0")/make-busybox-layout.py" "$out" --index "${args[@]}"
