#!/usr/bin/env python3
"""Notifications/s with N daemons (scripts/pg-bench.sh): posts ORDERS orders
(one recipient each) split across the daemons' HTTP APIs in batches of 200,
then waits until the shared outbox has sent them all. Prints one JSON line."""
import json, sys, time, urllib.request, threading
https = sys.argv[1].split(",")
orders = int(sys.argv[2]); base = int(sys.argv[3]) if len(sys.argv) > 3 else 50_000_000
def post(http, batch):
    req = urllib.request.Request(f"http://{http}/v1/orders", data=json.dumps(batch).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=300) as r:
        assert r.status == 201, r.read()
def metric(http, name):
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=30) as r:
        for l in r.read().decode().splitlines():
            if l.startswith(name + " "):
                return int(float(l.split()[1]))
start_sent = metric(https[0], "edesk_outbox_sent")
def worker(i, http):
    mine = [n for n in range(orders) if n % len(https) == i]
    for k in range(0, len(mine), 200):
        batch = [{"so": str(base + n), "lang": "en" if n % 3 else "fr",
                  "lines": [{"line": "1.1", "pid": "L-ASA5516-TD-1Y", "qty": 1,
                             "images": [{"file": "asa.SPA", "md5": "9fb4c92d620d4be2a9f190e7fa6332b3"}]}],
                  "recipients": [{"email": f"user{n}@bench{n % 7}.example.com"}]}
                 for n in mine[k:k + 200]]
        post(http, batch)
t0 = time.time()
ts = [threading.Thread(target=worker, args=(i, h)) for i, h in enumerate(https)]
[t.start() for t in ts]; [t.join() for t in ts]
posted = time.time() - t0
while metric(https[0], "edesk_outbox_sent") - start_sent < orders:
    time.sleep(0.05)
took = time.time() - t0
print(json.dumps({"daemons": len(https), "orders": orders, "posted_s": round(posted, 2),
                  "sent_s": round(took, 2), "per_s": round(orders / took)}))
