#!/usr/bin/env python3
"""The dashboard's server time per page, with BUILDS finished builds in one project.

Seeds the project through the API only: BUILDS builds, each run by a simulated worker that
reports eight steps (half of them cached, as a rebuild does), thirty log lines and a digest.
Then signs in through the dashboard's form and loads every page ROUNDS times, one at a time,
reading the server's own `Server-Timing: app;dur=…` (time inside drydock-server) and the time the
client waited. Prints one line per page: median and p95 of both, and the answer's size.

Usage: dashboard_pages.py URL OWNER_TOKEN WORKER_TOKEN PROJECT BUILDS ROUNDS < context-digest
"""
import http.client
import json
import re
import statistics
import sys
import time
import urllib.parse

url, owner, worker_token, project, builds, rounds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
parsed = urllib.parse.urlparse(url)
conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
context = sys.stdin.readline().strip()


def call(method, path, token=None, body=None, headers=None, form=None):
    h = dict(headers or {})
    data = None
    if token:
        h["Authorization"] = "Bearer " + token
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        h["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    payload = r.read()
    return r.status, r.headers, payload


# Seed: create, claim, report and finish each build in turn.
start = time.monotonic()
ids = []
for i in range(builds):
    status, _, body = call("POST", f"/api/v1/projects/{project}/builds", owner,
                           {"contextDigest": context, "buildArgs": {"N": str(i)}, "tags": [f"app:b{i % 20}"]})
    if status != 201:
        sys.exit(f"creating build {i}: {status} {body[:300]!r}")
    ids.append(json.loads(body)["id"])
    status, _, body = call("POST", "/api/v1/workers/claim", worker_token, {"name": "seed", "platforms": ["linux/amd64"], "waitSeconds": 0})
    if status != 200:
        sys.exit(f"claiming: {status} {body[:300]!r}")
    job = json.loads(body)
    events, seq = [], 0
    for step in range(1, 9):
        instruction = f"RUN step {step} of the benchmark build"
        cached = i > 0 and step % 2 == 0
        for state in ("running", "done"):
            events.append({"sequence": seq, "kind": "step", "step": {
                "platform": "linux/amd64", "number": step, "total": 8, "instruction": instruction, "cached": cached,
                "status": state, **({"durationMs": 40 + 13 * step} if state == "done" else {})}})
            seq += 1
        for line in range(4):
            events.append({"sequence": seq, "kind": "log", "line": f"step {step} output line {line} of build {i}"})
            seq += 1
    status, _, body = call("POST", f"/api/v1/jobs/{job['jobId']}/events", job["buildToken"], {"events": events})
    if status != 204:
        sys.exit(f"reporting: {status} {body[:300]!r}")
    status, _, body = call("POST", f"/api/v1/jobs/{job['jobId']}/finish", job["buildToken"],
                           {"status": "succeeded", "digest": "sha256:" + f"{i:064x}"})
    if status != 204:
        sys.exit(f"finishing: {status} {body[:300]!r}")
print(f"seeded {builds} finished builds (8 steps, 32 log lines each) in {time.monotonic() - start:.1f} s", flush=True)

status, headers, _ = call("POST", "/signin", form={"token": owner})
cookie = re.match(r"drydock_session=([^;]+)", headers.get("Set-Cookie", ""))
if status != 303 or not cookie:
    sys.exit(f"signing in: {status}")
session = {"Cookie": "drydock_session=" + cookie.group(1)}

# The cursor of an older page of builds (the 20th of 25, or the last there is).
cursor, query = "", ""
for _ in range(19):
    _, _, body = call("GET", f"/api/v1/projects/{project}/builds?limit=25{query}", owner)
    following = json.loads(body).get("nextCursor")
    if not following:
        break
    cursor, query = following, "&cursor=" + following
pages = [
    ("overview", "/"),
    ("project", f"/projects/{project}"),
    ("project, older page", f"/projects/{project}?cursor={cursor}"),
    ("build", f"/builds/{ids[-1]}"),
    ("registry", f"/projects/{project}/registry"),
    ("usage", "/usage"),
    ("tokens", "/tokens"),
    ("members", "/members"),
]


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


for name, path in pages:  # warm up
    call("GET", path, headers=session)
print(f"{'page':<22} {'server p50':>10} {'server p95':>10} {'client p50':>10} {'client p95':>10} {'bytes':>8}")
for name, path in pages:
    server, client, size = [], [], 0
    for _ in range(rounds):
        t0 = time.monotonic()
        status, headers, body = call("GET", path, headers=session)
        client.append((time.monotonic() - t0) * 1000)
        if status != 200:
            sys.exit(f"{path}: {status}")
        server.append(float(re.search(r"dur=([\d.]+)", headers.get("Server-Timing", "dur=0")).group(1)))
        size = len(body)
    print(f"{name:<22} {statistics.median(server):>8.2f}ms {pct(server, 95):>8.2f}ms {statistics.median(client):>8.2f}ms {pct(client, 95):>8.2f}ms {size:>8}",
          flush=True)
