#!/usr/bin/env python3
"""Bulk-seed a fresh database and compare the latency of page 1 and a deep page of
GET /api/v1/products?limit=20 (keyset pagination: the deep page should cost what page 1 costs).

usage: python3 bench/deep_page.py [sqlite|postgres] [--products 1000000] [--page 5000]
Loopback only. PostgreSQL: uses BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/test)
to create and drop a scratch database.
"""
import argparse, http.client, json, os, shutil, statistics, subprocess, sys, tempfile, time, urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("backend", choices=["sqlite", "postgres"], nargs="?", default="sqlite")
ap.add_argument("--products", type=int, default=1_000_000)
ap.add_argument("--page", type=int, default=5000)
ap.add_argument("--samples", type=int, default=300)
ap.add_argument("--port", type=int, default=18080)
ap.add_argument("--database-url", help="measure an already seeded database instead of seeding a new one")
args = ap.parse_args()

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(root, "target")
binary = os.environ.get("VALUVA_BIN") or os.path.join(target, "release", "valuva")
if not os.path.exists(binary):
    subprocess.run(["cargo", "build", "--release"], cwd=root, check=True)

work = tempfile.mkdtemp(prefix="valuva-bench-")
env = dict(os.environ, PORT=str(args.port), HOST="127.0.0.1", LOG_LEVEL="warn", SEED_ON_STARTUP="false",
           JWT_SECRET="bench-secret-bench-secret-bench-secret", EMAIL_OUTBOX_DIR=os.path.join(work, "outbox"))
pg_admin = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/test")
dbname = f"valuva_bench_{int(time.time())}"
if args.database_url:
    env["DATABASE_URL"] = args.database_url
elif args.backend == "sqlite":
    env["DATABASE_URL"] = f"sqlite://{work}/bench.db"
else:
    subprocess.run(["psql", pg_admin, "-qc", f"CREATE DATABASE {dbname}"], check=True)
    env["DATABASE_URL"] = pg_admin.rsplit("/", 1)[0] + "/" + dbname

server = None
try:
    subprocess.run([binary, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    if not args.database_url:
        t0 = time.time()
        out = subprocess.run([binary, "seed", "--products", str(args.products), "--batch", "1000"], env=env, check=True, capture_output=True, text=True)
        print(out.stdout.strip().splitlines()[-1])
        print(f"seed wall time: {time.time() - t0:.1f} s")

    server = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn = None
    for _ in range(100):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", args.port)
            conn.request("GET", "/ready"); conn.getresponse().read(); break
        except OSError:
            time.sleep(0.1)

    def get(path):
        start = time.perf_counter()
        conn.request("GET", path)
        res = conn.getresponse(); body = res.read()
        assert res.status == 200, (res.status, body[:200])
        return time.perf_counter() - start, body

    first = "/api/v1/products?limit=20"
    path, walk_start = first, time.time()
    for _ in range(args.page - 1):
        _, body = get(path)
        cursor = json.loads(body)["pagination"]["next_cursor"]
        path = first + "&cursor=" + urllib.parse.quote(cursor)
    print(f"walked to page {args.page} in {time.time() - walk_start:.1f} s")

    def sample(p):
        for _ in range(20):
            get(p)  # warm-up
        return sorted(get(p)[0] * 1000 for _ in range(args.samples))

    for name, p in [("page 1", first), (f"page {args.page}", path)]:
        ms = sample(p)
        print(f"{args.backend} {name:>10}: p50 {statistics.median(ms):.2f} ms  p95 {ms[int(len(ms) * 0.95)]:.2f} ms  ({args.samples} sequential requests)")
finally:
    if server:
        server.terminate(); server.wait()
    if args.backend == "postgres" and not args.database_url:
        subprocess.run(["psql", pg_admin, "-qc", f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)"])
    shutil.rmtree(work, ignore_errors=True)
