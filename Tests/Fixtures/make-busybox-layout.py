#!/usr/bin/env python3
"""Writes an OCI image layout holding a one-layer busybox image (from Debian's busybox-static),
to use as a base image where nothing can be pulled from the internet.

usage: make-busybox-layout.py DIR [ARCH]
       make-busybox-layout.py DIR --index ARCH=BUSYBOX [ARCH=BUSYBOX ...]
then:  skopeo copy [--all] oci:DIR:latest docker://HOST/<project>/busybox:latest

With --index, one image per architecture (each from that architecture's busybox-static binary,
e.g. linux/arm64=/tmp/x/arm64/bin/busybox) under one OCI image index, as a multi-platform base.
"""
import hashlib, io, json, os, subprocess, sys, tarfile

out = sys.argv[1]
host_busybox = next(p for p in ["/bin/busybox", "/usr/bin/busybox"] if os.path.exists(p))
# The applets are the same in every architecture's build of the same package version.
applets = subprocess.run([host_busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()

def blob(data):
    digest = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(out, "blobs", "sha256", digest), "wb") as f: f.write(data)
    return "sha256:" + digest, len(data)

def image(busybox, arch, variant=None):
    """Layer, config and manifest of one architecture's image; returns (digest, size)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def directory(name, mode=0o755):
            info = tarfile.TarInfo(name); info.type = tarfile.DIRTYPE; info.mode = mode; info.mtime = 0
            tar.addfile(info)
        for d in ["bin", "etc", "tmp", "root", "var", "usr", "usr/bin", "proc", "sys", "dev"]:
            directory(d, 0o1777 if d == "tmp" else 0o755)
        data = open(busybox, "rb").read()
        info = tarfile.TarInfo("bin/busybox"); info.size = len(data); info.mode = 0o755; info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
        for applet in sorted(set(applets)):
            if applet == "busybox": continue
            link = tarfile.TarInfo("bin/" + applet); link.type = tarfile.SYMTYPE; link.linkname = "busybox"; link.mtime = 0
            tar.addfile(link)
        for name, text in [("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("etc/group", "root:x:0:\n")]:
            b = text.encode(); info = tarfile.TarInfo(name); info.size = len(b); info.mode = 0o644; info.mtime = 0
            tar.addfile(info, io.BytesIO(b))
    layer = buf.getvalue()
    layer_digest, layer_size = blob(layer)
    platform = {"architecture": arch, "os": "linux"}
    if variant: platform["variant"] = variant
    config = json.dumps(dict(platform, **{
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "make-busybox-layout.py: busybox-static"}],
    }), sort_keys=True).encode()
    config_digest, config_size = blob(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
    }, sort_keys=True).encode()
    digest, size = blob(manifest)
    return digest, size, platform

if len(sys.argv) > 2 and sys.argv[2] == "--index":
    entries = []
    for spec in sys.argv[3:]:
        name, path = spec.split("=", 1)
        parts = name.split("/")
        digest, size, platform = image(path, parts[1], parts[2] if len(parts) > 2 else None)
        entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size, "platform": platform})
    top = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}, sort_keys=True).encode()
    manifest_digest, manifest_size = blob(top)
    media_type = "application/vnd.oci.image.index.v1+json"
else:
    arch = sys.argv[2] if len(sys.argv) > 2 else {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, "amd64")
    manifest_digest, manifest_size, _ = image(host_busybox, arch)
    media_type = "application/vnd.oci.image.manifest.v1+json"
with open(os.path.join(out, "oci-layout"), "w") as f: json.dump({"imageLayoutVersion": "1.0.0"}, f)
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": media_type,
               "digest": manifest_digest, "size": manifest_size, "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)
print(manifest_digest)
