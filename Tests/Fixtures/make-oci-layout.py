#!/usr/bin/env python3
"""Writes a small OCI image layout (no base image needed): DIR LAYERS [SIZE_KB [SEED]].

Each layer is a gzipped tar holding one file of pseudo-random bytes, so layers differ and
digests are real. With SEED the bytes do not compress (the layers are as large as SIZE_KB) and
differ from any other seed's. Used by the registry tests and the registry benchmark."""
import gzip, hashlib, io, json, os, sys, tarfile

out, layers = sys.argv[1], int(sys.argv[2])
size = int(sys.argv[3]) * 1024 if len(sys.argv) > 3 else 1024
os.makedirs(f"{out}/blobs/sha256", exist_ok=True)

def put(data):
    digest = hashlib.sha256(data).hexdigest()
    with open(f"{out}/blobs/sha256/{digest}", "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)

descriptors, diff_ids = [], []
for i in range(layers):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        if len(sys.argv) > 4:
            payload = hashlib.shake_256(f"layer-{sys.argv[4]}-{i}".encode()).digest(size)
        else:
            payload = hashlib.sha512(f"layer-{i}".encode()).digest() * (size // 64 + 1)
        info = tarfile.TarInfo(f"data/layer-{i}.bin")
        info.size = size
        tar.addfile(info, io.BytesIO(payload[:size]))
    diff_ids.append("sha256:" + hashlib.sha256(raw.getvalue()).hexdigest())
    digest, length = put(gzip.compress(raw.getvalue(), mtime=0))
    descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": length})

config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
          "rootfs": {"type": "layers", "diff_ids": diff_ids}}
config_digest, config_size = put(json.dumps(config).encode())
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": descriptors}
manifest_digest, manifest_size = put(json.dumps(manifest).encode())
with open(f"{out}/index.json", "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
               "digest": manifest_digest, "size": manifest_size,
               "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)
with open(f"{out}/oci-layout", "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
print(manifest_digest)
