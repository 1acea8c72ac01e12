#!/usr/bin/env bash
# Assembles a drydock-builder image for the agent's podman launcher from this machine's own
# binaries (drydock-builder, buildah, runc and the libraries they load), with no registry and no
# internet, and commits it to podman's storage:
#   examples/agent/podman-builder-image.sh [IMAGE] [DRYDOCK_BUILDER]
#   DRYDOCK_AGENT_LAUNCHER=podman DRYDOCK_AGENT_PODMAN_IMAGE=localhost/drydock-builder:latest drydock-agent
# Inside the container builds use chroot isolation (the container is the boundary); set
# DRYDOCK_BUILDER_ISOLATION=chroot in the agent's environment.
set -euo pipefail
IMAGE=${1:-localhost/drydock-builder:latest}
BUILDER=${2:-$(cd "$(dirname "$0")/../.." && swift build -c release --show-bin-path)/drydock-builder}
[[ -x $BUILDER ]] || { echo "no drydock-builder at $BUILDER (swift build -c release)" >&2; exit 1; }
command -v buildah >/dev/null || { echo "buildah is needed" >&2; exit 1; }
ROOTFS=$(mktemp -d)
trap 'rm -rf "$ROOTFS"' EXIT

# A file and every shared library it loads, at the same paths.
add() {
    local file=$1
    [[ -e $file ]] || return 0
    cp --parents -L "$file" "$ROOTFS" 2>/dev/null || true
    { ldd "$file" 2>/dev/null || true; } | { grep -oE '/[^ ]+' || true; } | while read -r lib; do
        if [[ -e $lib ]]; then cp --parents -L "$lib" "$ROOTFS"; fi
    done
}
add "$BUILDER"
add "$(command -v buildah)"
add "$(command -v runc || true)"
add /bin/busybox
for f in /etc/containers/policy.json /etc/containers/registries.conf /etc/containers/storage.conf; do add "$f"; done
cp -a --parents /usr/share/containers "$ROOTFS" 2>/dev/null || true
cp -a --parents /etc/ssl/certs "$ROOTFS" 2>/dev/null || true
mkdir -p "$ROOTFS/usr/local/bin" "$ROOTFS/bin" "$ROOTFS/tmp" "$ROOTFS/var/tmp" "$ROOTFS/var/lib/drydock-builder" "$ROOTFS/etc"
chmod 1777 "$ROOTFS/tmp" "$ROOTFS/var/tmp"
cp -L "$BUILDER" "$ROOTFS/usr/local/bin/drydock-builder"
for tool in sh rm cp mkdir cat ls; do ln -sf /bin/busybox "$ROOTFS/bin/$tool"; done
echo "root:x:0:0:root:/root:/bin/sh" >"$ROOTFS/etc/passwd"
echo "root:x:0:" >"$ROOTFS/etc/group"
[[ -f $ROOTFS/etc/containers/policy.json ]] || {
    mkdir -p "$ROOTFS/etc/containers"
    echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$ROOTFS/etc/containers/policy.json"
}

container=$(buildah from scratch)
buildah copy "$container" "$ROOTFS" / >/dev/null
buildah config --env PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin --env BUILDAH_ISOLATION=chroot \
    --entrypoint '["/usr/local/bin/drydock-builder"]' --label org.opencontainers.image.title=drydock-builder "$container"
buildah commit --quiet "$container" "$IMAGE" >/dev/null
buildah rm "$container" >/dev/null
echo "$IMAGE"
