#!/usr/bin/env python3
"""quota_load.py - many clients against one tenant's TPM / RPM limits.

C client threads (default 200) send non-streamed /v1/completions requests
with P random prompt token ids and exactly N output tokens (ignore_eos),
so every request costs exactly P + N tokens (its reservation is also
P + N: the window counts what it will use). A refused request (429) waits
the server's retry-after-ms (plus up to 100 ms of jitter, so that the
clients do not all return at the same millisecond) and tries again.
Writes one line per answer to --out: send_ms recv_ms status total_tokens
replica (wall-clock milliseconds), for bench_quota_cluster.sh to count.

usage: quota_load.py --url http://127.0.0.1:PORT --key KEY [-c 200]
                     [-d SECONDS] [--prompt 20] [--max 80] --out FILE
"""
import argparse, http.client, json, random, threading, time, urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--key", required=True)
ap.add_argument("-c", type=int, default=200)
ap.add_argument("-d", type=float, default=90)
ap.add_argument("--prompt", type=int, default=20)
ap.add_argument("--max", type=int, default=80)
ap.add_argument("--out", required=True)
a = ap.parse_args()
u = urllib.parse.urlparse(a.url)
stop_at = time.time() + a.d
lines, lock = [], threading.Lock()


def client(i):
    rnd = random.Random(i)
    conn = None
    while time.time() < stop_at:
        body = json.dumps({"prompt": [rnd.randrange(3, 250) for _ in range(a.prompt)],
                           "max_tokens": a.max, "ignore_eos": True, "temperature": 0})
        t0 = time.time()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
            conn.request("POST", "/v1/completions", body,
                         {"authorization": "Bearer " + a.key, "content-type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            status, hdr = r.status, r
        except Exception:
            conn = None
            with lock:
                lines.append("%d %d 0 0 -" % (t0 * 1000, time.time() * 1000))
            time.sleep(0.1)
            continue
        t1 = time.time()
        tok = 0
        if status == 200:
            try:
                us = json.loads(data)["usage"]
                tok = us["prompt_tokens"] + us["completion_tokens"]
            except Exception:
                pass
        with lock:
            lines.append("%d %d %d %d %s" % (t0 * 1000, t1 * 1000, status, tok,
                                              hdr.getheader("x-nuage-replica") or "-"))
        if status == 429:
            ms = hdr.getheader("retry-after-ms")
            wait = (int(ms) if ms and ms.isdigit() else 1000) / 1000.0
            time.sleep(min(wait, max(0.0, stop_at - time.time())) + rnd.random() * 0.1)
        elif status != 200:
            time.sleep(0.05)


th = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(a.c)]
for t in th:
    t.start()
for t in th:
    t.join(timeout=a.d + 70)
with open(a.out, "w") as f:
    f.write("\n".join(lines) + "\n")
