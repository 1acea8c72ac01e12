#!/usr/bin/env python3
"""oras (the PyPI client) against a Drydock registry: HOST REPO TOKEN.

Pushes an artifact with chunked uploads, attaches a referrer through `subject`, lists the
referrers, pulls the artifact back and compares it. Prints OK or exits non-zero."""
import os, sys, tempfile
import requests
from oras.client import OrasClient
from oras.oci import Subject

host, repo, token = sys.argv[1:4]
auth = ("ci", token)
base = f"http://{host}/v2/{repo}"
os.chdir(tempfile.mkdtemp())
with open("artifact.txt", "w") as f:
    f.write("drydock artifact\n" * 1000)
with open("signature.txt", "w") as f:
    f.write("signed\n")

client = OrasClient(hostname=host, insecure=True)
client.login(username="ci", password=token, hostname=host)
client.push(target=f"{host}/{repo}:v1", files=["artifact.txt"], do_chunked=True, chunk_size=4096, quiet=True)

head = requests.head(f"{base}/manifests/v1", auth=auth,
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
head.raise_for_status()
digest = head.headers["Docker-Content-Digest"]
subject = Subject(mediaType=head.headers["Content-Type"], digest=digest, size=int(head.headers["Content-Length"]))
client.push(target=f"{host}/{repo}:signature", files=["signature.txt"], subject=subject, quiet=True)

referrers = requests.get(f"{base}/referrers/{digest}", auth=auth)
referrers.raise_for_status()
listed = referrers.json()["manifests"]
assert len(listed) == 1, f"expected one referrer, got {listed}"

out = tempfile.mkdtemp()
client.pull(target=f"{host}/{repo}:v1", outdir=out)
with open(os.path.join(out, "artifact.txt")) as f:
    assert f.read() == "drydock artifact\n" * 1000, "artifact content differs"
print("OK")
