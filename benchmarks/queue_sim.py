#!/usr/bin/env python3
"""The job queue under simulated workers, through the API only (no buildah).

Queues JOBS builds in one organization's project (or spread over ORGS organizations), then
runs WORKERS simulated builders that each claim, heartbeat, report a log line and finish every
job they get, as drydock-builder does (coroutines on one event loop, uvloop's when installed, one
connection each). Checks that no job was handed out twice and none was
lost, and prints one JSON line: jobs per second while draining, creation rate, and p50/p99 of
claim and heartbeat latency.

Usage: queue_sim.py URL WORKER_TOKEN JOBS WORKERS PROJECT:TOKEN [PROJECT:TOKEN ...]
(one PROJECT:TOKEN per organization; builds are spread over them round-robin).
"""
import asyncio
import gc
import http.client
import re
import json
import sys
import threading
import time
import urllib.parse

url, worker_token, jobs, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
projects = [p.split(":", 1) for p in sys.argv[5:]]
parsed = urllib.parse.urlparse(url)
PLATFORM = "linux/amd64"
DIGEST = "sha256:" + "ab" * 32


class Conn:
    """One keep-alive connection per thread, reopened if the server closes it."""

    def __init__(self):
        self.c = None

    def request(self, method, path, token, body=None):
        for attempt in range(3):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
                headers = {"Authorization": "Bearer " + token}
                data = None
                if body is not None:
                    data = json.dumps(body).encode()
                    headers["Content-Type"] = "application/json"
                self.c.request(method, path, body=data, headers=headers)
                r = self.c.getresponse()
                payload = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.c.close()
                    self.c = None
                return r.status, payload
            except (http.client.HTTPException, ConnectionError, OSError):
                if self.c is not None:
                    self.c.close()
                self.c = None
                if attempt == 2:
                    raise
                time.sleep(0.05)


def pct(values, p):
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


# Queue the builds (the project's context is uploaded by the caller), 8 threads.
context = sys.stdin.readline().strip()
created, create_errors, lock = [], [], threading.Lock()
per_thread = [list(range(i, jobs, 8)) for i in range(8)]


def create(indexes):
    conn = Conn()
    for i in indexes:
        project, token = projects[i % len(projects)]
        status, body = conn.request("POST", f"/api/v1/projects/{project}/builds", token, {"contextDigest": context, "platforms": [PLATFORM]})
        with lock:
            (created if status == 201 else create_errors).append(json.loads(body)["id"] if status == 201 else (status, body[:200]))


start = time.monotonic()
threads = [threading.Thread(target=create, args=(part,)) for part in per_thread]
for t in threads:
    t.start()
for t in threads:
    t.join()
create_seconds = time.monotonic() - start
if create_errors:
    sys.exit(f"{len(create_errors)} creations failed, first: {create_errors[0]}")

# The workers: coroutines on one asyncio loop, each with its own keep-alive connection. (Fifty
# Python threads, as this used to run, queue for the interpreter lock: their measured latencies
# then included up to tens of milliseconds of the generator's own waiting.)
class AsyncConn:
    """One keep-alive HTTP/1.1 connection, reopened if the server closes it."""

    def __init__(self):
        self.reader = self.writer = None

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method, path, token, body=None):
        for attempt in range(3):
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(parsed.hostname, parsed.port)
                data = json.dumps(body).encode() if body is not None else b""
                head = f"{method} {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nAuthorization: Bearer {token}\r\nContent-Length: {len(data)}\r\n"
                if body is not None:
                    head += "Content-Type: application/json\r\n"
                self.writer.write(head.encode() + b"\r\n" + data)
                lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                if "content-length" in headers:
                    payload = await self.reader.readexactly(int(headers["content-length"]))
                elif headers.get("transfer-encoding", "").lower() == "chunked":
                    payload = b""
                    while True:
                        size = int((await self.reader.readline()).strip().split(b";")[0], 16)
                        chunk = await self.reader.readexactly(size + 2)
                        if size == 0:
                            break
                        payload += chunk[:-2]
                else:
                    payload = b""
                if headers.get("connection", "").lower() == "close":
                    self.close()
                return status, payload
            except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
                self.close()
                if attempt == 2:
                    raise
                await asyncio.sleep(0.05)


claims, heartbeats, claimed_jobs, errors = [], [], [], []
done = [0]


async def worker(n):
    conn = AsyncConn()
    name = f"sim-{n}"
    idle = 0
    clock = time.monotonic
    while True:
        t0 = clock()
        status, body = await conn.request("POST", "/api/v1/workers/claim", worker_token, {"name": name, "platforms": [PLATFORM], "waitSeconds": 0})
        elapsed = clock() - t0
        if status == 204:
            idle += 1
            if done[0] >= jobs or idle > 200:
                conn.close()
                return
            await asyncio.sleep(0.01)
            continue
        if status != 200:
            errors.append(("claim", status, body[:200]))
            await asyncio.sleep(0.05)
            continue
        idle = 0
        job = json.loads(body)
        token = job["buildToken"]
        claims.append(elapsed)
        claim_starts.append(t0)
        claimed_jobs.append(job["jobId"])
        t1 = clock()
        status, body = await conn.request("POST", f"/api/v1/jobs/{job['jobId']}/heartbeat", token)
        heartbeats.append(clock() - t1)
        if status != 200:
            errors.append(("heartbeat", status, body[:200]))
        status, body = await conn.request("POST", f"/api/v1/jobs/{job['jobId']}/events", token,
                                          {"events": [{"sequence": 0, "kind": "log", "line": "simulated step"}]})
        if status != 204:
            errors.append(("events", status, body[:200]))
        status, body = await conn.request("POST", f"/api/v1/jobs/{job['jobId']}/finish", token, {"status": "succeeded", "digest": DIGEST})
        if status != 204:
            errors.append(("finish", status, body[:200]))
        done[0] += 1


async def drain():
    await asyncio.gather(*(worker(n) for n in range(workers)))


def server_histograms():
    """The server's request-duration histograms of claims and heartbeats (cumulative buckets
    and counts), from /metrics: the server's own view, without the load generator's lag."""
    c = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    except (http.client.HTTPException, OSError):
        return {}
    finally:
        c.close()
    found = {}
    for line in text.splitlines():
        if not line.startswith("http_server_request_duration") or 'POST' not in line:
            continue
        kind = "claim" if "/workers/claim" in line else "heartbeat" if "/heartbeat" in line else None
        if kind is None:
            continue
        name, value = line.rsplit(" ", 1)
        le = re.search(r'le="([^"]+)"', name)
        key = float(le.group(1)) if le else ("count" if name.split("{")[0].endswith("_count") else None)
        if key is not None:
            found.setdefault(kind, {})[key] = found.get(kind, {}).get(key, 0) + float(value)
    return found


def server_view(before, after, kind):
    """The share answered within 50 ms and the bucket holding the 99th percentile, as the
    server measured them during the drain (None if its /metrics did not say)."""
    b, a = before.get(kind, {}), after.get(kind, {})
    total = a.get("count", 0) - b.get("count", 0)
    if total <= 0:
        return None, None
    bounds = sorted(k for k in a if k != "count")
    within = {k: a[k] - b.get(k, 0) for k in bounds}
    share = within.get(0.05)
    p99 = next((k for k in bounds if within[k] >= 0.99 * total), None)
    return (round(100 * share / total, 2) if share is not None else None), (round(p99 * 1000) if p99 not in (None, float("inf")) else None)


claim_starts = []
# Python's cyclic garbage collector pauses the generator's one thread when it runs a full
# collection; measured, that came at the same moment of every drain (about 1.8 s in) and added
# 50-100 ms to every answer then in flight. The drain makes no reference cycles worth
# collecting, so what exists now is frozen and collection is off until the drain ends.
gc.collect()
gc.freeze()
gc.disable()
metrics_before = server_histograms()
start = time.monotonic()
# uvloop (PyPI; queue.sh installs it when it can) spends less of the shared cores on the
# generator's own event loop than asyncio's; without it, asyncio's.
try:
    import uvloop
except ImportError:
    uvloop = None
loop_name = "uvloop" if uvloop else "asyncio"
(uvloop.run if uvloop else asyncio.run)(drain())
drain_seconds = time.monotonic() - start
gc.enable()
metrics_after = server_histograms()
server_claim_within, server_claim_p99 = server_view(metrics_before, metrics_after, "claim")
server_hb_within, server_hb_p99 = server_view(metrics_before, metrics_after, "heartbeat")

# Every build succeeded exactly once (builds the caller made before do not count).
created_ids = set(created)
conn = Conn()
succeeded = 0
for project, token in projects:
    cursor = ""
    while True:
        status, body = conn.request("GET", f"/api/v1/projects/{project}/builds?status=succeeded&limit=200{cursor}", token)
        page = json.loads(body)
        succeeded += sum(1 for item in page["items"] if item["id"] in created_ids)
        if not page.get("nextCursor"):
            break
        cursor = "&cursor=" + urllib.parse.quote(page["nextCursor"])

# What became of the others, if any.
others = {}
if succeeded < jobs:
    for project, token in projects:
        for status in ("queued", "running", "failed", "canceled"):
            _, body = conn.request("GET", f"/api/v1/projects/{project}/builds?status={status}&limit=200", token)
            items = json.loads(body)["items"]
            if items:
                others[status] = others.get(status, 0) + len(items)
                print(f"{status}: {len(items)}+ e.g. {items[0].get('error', '')[:300]}", file=sys.stderr)

result = {
    "jobs": jobs, "workers": workers, "organizations": len(projects), "loop": loop_name,
    "create_per_s": round(jobs / create_seconds, 1),
    "jobs_per_s": round(len(claimed_jobs) / drain_seconds, 1),
    "claim_p50_ms": round(pct(claims, 50) * 1000, 1), "claim_p99_ms": round(pct(claims, 99) * 1000, 1),
    # Claims sent after the drain's first second (the first has all workers claiming at once).
    "claim_p99_after_1s_ms": round(pct([c for c, t in zip(claims, claim_starts) if t - start >= 1], 99) * 1000, 1),
    "heartbeat_p50_ms": round(pct(heartbeats, 50) * 1000, 1), "heartbeat_p99_ms": round(pct(heartbeats, 99) * 1000, 1),
    # As the server measured them (one replica's, behind a balancer): share within 50 ms, and
    # the histogram bucket (upper bound, ms) that holds the 99th percentile.
    "server_claim_within_50ms_pct": server_claim_within, "server_claim_p99_bucket_ms": server_claim_p99,
    "server_heartbeat_within_50ms_pct": server_hb_within, "server_heartbeat_p99_bucket_ms": server_hb_p99,
    "claimed": len(claimed_jobs), "claimed_twice": len(claimed_jobs) - len(set(claimed_jobs)),
    "succeeded": succeeded, "lost": jobs - succeeded, "errors": len(errors), "not_succeeded": others,
}
print(json.dumps(result))
if errors:
    print("first errors:", errors[:3], file=sys.stderr)
if result["claimed_twice"] or result["lost"] or errors:
    sys.exit(1)
