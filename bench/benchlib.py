"""Pieces of bench/run.py: the API calls that prepare a data set, the load generators, RSS
sampling, the table, the targets and the SVG plot."""
import http.client, json, os, random, re, subprocess, threading, time, urllib.parse


class Api:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.conn = http.client.HTTPConnection(host, port, timeout=60)

    def call(self, method, path, body=None, token=None, expect=(200, 201)):
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        res = self.conn.getresponse()
        raw = res.read()
        if res.status not in expect:
            raise RuntimeError(f"{method} {path}: {res.status} {raw[:300]!r}")
        return json.loads(raw) if raw else None

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                self.call("GET", "/ready")
                return
            except (OSError, RuntimeError, http.client.HTTPException):
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                time.sleep(0.1)
        raise RuntimeError("server never became ready")


def prepare(api, concurrency, hot_stock, deep_pages):
    """Admin token, a shipping zone, one customer per virtual user, a hot set of 1,000
    products, listing paths (page 1 and a deep page per category), search words, and one
    hot variant with limited stock."""
    admin = api.call("POST", "/api/v1/auth/login", {"email": "bench-admin@example.com", "password": "bench admin password"})["access_token"]
    zone = {"name": "World", "countries": ["*"], "rates": [{"name": "Standard", "price": {"amount": 500, "currency": "EUR"}}]}
    rate = api.call("POST", "/api/v1/admin/shipping/zones", zone, token=admin)["rates"][0]["id"]
    customers = []
    for i in range(concurrency):
        s = api.call("POST", "/api/v1/auth/register", {"email": f"bench{i}-{time.time_ns()}@example.com", "password": "bench customer password"})
        customers.append(s["access_token"])

    products, path = [], "/api/v1/products?limit=100"
    while len(products) < 1000:
        page = api.call("GET", path)
        products += page["data"]
        cursor = page["pagination"]["next_cursor"]
        if not cursor:
            break
        path = "/api/v1/products?limit=100&cursor=" + urllib.parse.quote(cursor)
    hot_product = products[-1]
    hot_set = products[:-1]
    variants = [v["id"] for p in hot_set for v in p["variants"]]
    hot_variant = hot_product["variants"][0]["id"]
    if hot_stock != 1000:  # the seed gives every variant 1,000 units
        api.call("POST", f"/api/v1/admin/variants/{hot_variant}/inventory",
                 {"delta": hot_stock - 1000, "reason": "benchmark: limited stock"}, token=admin)

    tree = api.call("GET", "/api/v1/categories")["data"]
    cats, leaves = [], []
    def walk(nodes):
        for n in nodes:
            cats.append(n["slug"])
            if not n["children"]:
                leaves.append(n["slug"])
            walk(n["children"])
    walk(tree)
    page1 = [f"/api/v1/products?category={c}&limit=20" for c in cats]
    deep = []
    for c in leaves:
        path = f"/api/v1/products?category={c}&limit=20"
        for _ in range(deep_pages - 1):
            cursor = api.call("GET", path)["pagination"]["next_cursor"]
            if not cursor:
                break
            path = f"/api/v1/products?category={c}&limit=20&cursor=" + urllib.parse.quote(cursor)
        deep.append(path)
    words = sorted({w.lower() for p in products for w in re.findall(r"[A-Za-z]{4,}", p["title"])})
    search = [f"/api/v1/products?q={urllib.parse.quote(w)}&limit=20" for w in words]
    search += [f"/api/v1/products?q={urllib.parse.quote(a + ' ' + b)}&limit=20" for a, b in zip(words, reversed(words))]
    product_pages = [f"/api/v1/products/{p['slug']}" for p in hot_set]
    return {
        "variants": variants, "hot_variant": hot_variant, "hot_product": hot_product["id"], "shipping_rate": rate,
        "customers": customers, "admin": admin, "browse": product_pages * 3 + page1 + deep,
        "paths": {"hello": ["/live"], "product_cached": product_pages, "listing_page1": page1, "listing_deep": deep, "search": search},
    }


def wrk(base, paths_file, script, concurrency, warmup, duration):
    threads = str(min(2, concurrency))
    if warmup > 0:
        subprocess.run(["wrk", "-t", threads, "-c", str(concurrency), "-d", f"{max(1, round(warmup))}s", "-s", script, base, "--", paths_file],
                       check=True, capture_output=True)
    out = subprocess.run(["wrk", "-t", threads, "-c", str(concurrency), "-d", f"{max(1, round(duration))}s", "--latency", "-s", script, base, "--", paths_file],
                         check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("WRK_JSON "))
    res = json.loads(line[len("WRK_JSON "):])
    res["rps"] = res["requests"] / res["duration_s"]
    return res


def loadgen(binary, base, scenario, data_file, concurrency, warmup, duration):
    out = subprocess.run([binary, "--scenario", scenario, "--base", base, "--data", data_file, "--concurrency", str(concurrency),
                          "--warmup", str(warmup), "--duration", str(duration)], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def verify_no_oversell(api, product, variant, initial, binary, env):
    """None when the hot variant sold at most its stock and the ledger matches; else why not."""
    admin = api.call("POST", "/api/v1/auth/login", {"email": "bench-admin@example.com", "password": "bench admin password"})["access_token"]
    p = api.call("GET", f"/api/v1/admin/products/{product}", token=admin)
    v = next(v for v in p["variants"] if v["id"] == variant)
    if v["stock"] < 0:
        return f"stock went negative: {v['stock']}"
    check = subprocess.run([binary, "inventory", "verify"], env=env, capture_output=True, text=True)
    if check.returncode != 0:
        return "inventory verify: " + (check.stdout + check.stderr).strip()[-300:]
    return None


def job_drain_seconds(api, token, timeout=300):
    """Seconds from the end of a scenario until no job is queued: how far the in-process job
    worker (order confirmation emails) fell behind the load. None: not within `timeout`."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if not api.call("GET", "/api/v1/admin/jobs?status=queued&limit=1", token=token)["data"]:
            return round(time.time() - t0, 1)
        time.sleep(0.2)
    return None


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler(threading.Thread):
    """The server's peak resident memory while a scenario runs (sampled every 50 ms)."""
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0.0, True

    def run(self):
        while self.running:
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                return
            time.sleep(0.05)

    def stop(self):
        self.running = False
        self.join()
        return self.peak


def cpu_times():
    """The machine's CPU time so far, from /proc/stat: (idle incl. iowait, steal, total)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    return v[3] + v[4], v[7], sum(v)


def cpu_shares(before, after):
    """Idle and stolen shares (%) of the CPU time between two cpu_times(). Steal is time the
    hypervisor gave this VM's virtual CPUs to someone else: a run with much of it measured a
    smaller machine than the one it names, so the table shows it beside every row."""
    total = max(after[2] - before[2], 1)
    return round(100 * (after[0] - before[0]) / total, 1), round(100 * (after[1] - before[1]) / total, 1)


def drop_redis_prefix(url, prefix):
    if not url:
        return
    keys = subprocess.run(["redis-cli", "-u", url, "--scan", "--pattern", f"{prefix}:*"], capture_output=True, text=True).stdout.splitlines()
    for i in range(0, len(keys), 500):
        subprocess.run(["redis-cli", "-u", url, "DEL", *keys[i:i + 500]], capture_output=True)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


def mem_gb():
    with open("/proc/meminfo") as f:
        return round(int(f.readline().split()[1]) / 1024 / 1024, 1)


HEADER = f"{'scenario':<15} {'backend':<9} {'req/s':>9} {'orders/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7} {'peak RSS MB':>12} {'steal %':>8}"


def format_row(r):
    orders = f"{r['orders_per_s']:.0f}" if "orders_per_s" in r else "-"
    errors = f"{r['errors']}" + (f" ({r['conflicts']} 409)" if r.get("conflicts") else "")
    return (f"{r['scenario']:<15} {r['backend']:<9} {r['rps']:>9.0f} {orders:>9} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {errors:>7} {r['peak_rss_mb']:>12.1f} {r.get('cpu_steal_pct', 0):>8.1f}")


def table(rows):
    return "\n".join([HEADER] + [format_row(r) for r in rows])


def check_targets(rows):
    """The issue's targets; returns what was missed."""
    misses = []
    by = {(r["backend"], r["scenario"]): r for r in rows}
    for backend in {r["backend"] for r in rows}:
        g = lambda s: by.get((backend, s))
        hello, cached, page1, deep, checkout = g("hello"), g("product_cached"), g("listing_page1"), g("listing_deep"), g("checkout")
        if backend == "postgres":
            if hello and cached and cached["rps"] < 0.5 * hello["rps"]:
                misses.append(f"postgres product_cached {cached['rps']:.0f} req/s < 50% of hello {hello['rps']:.0f}")
            if cached and cached["p99_ms"] >= 10:
                misses.append(f"postgres product_cached p99 {cached['p99_ms']} ms >= 10 ms")
            if page1 and page1["rps"] < 5000:
                misses.append(f"postgres listing page 1 {page1['rps']:.0f} req/s < 5000")
            if checkout and (checkout["orders_per_s"] < 1000 or checkout["checkout_latency_ms"]["p99"] >= 100):
                misses.append(f"postgres checkout {checkout['orders_per_s']:.0f} orders/s, p99 {checkout['checkout_latency_ms']['p99']} ms")
        if page1 and deep and deep["p50_ms"] > 1.5 * page1["p50_ms"]:
            misses.append(f"{backend} deep page p50 {deep['p50_ms']} ms > 1.5 x page 1 {page1['p50_ms']} ms")
        if backend == "sqlite" and checkout and checkout["orders_per_s"] < 500:
            misses.append(f"sqlite checkout {checkout['orders_per_s']:.0f} orders/s < 500")
        for r in rows:
            if r["backend"] == backend and r["errors"] and r["scenario"] != "contention":
                misses.append(f"{backend} {r['scenario']}: {r['errors']} errors")
            if r["backend"] == backend and r["peak_rss_mb"] >= 150:
                misses.append(f"{backend} {r['scenario']}: peak RSS {r['peak_rss_mb']} MB >= 150")
        idle = next((r["idle_rss_mb"] for r in rows if r["backend"] == backend), 0)
        if idle >= 40:
            misses.append(f"{backend}: idle RSS {idle} MB >= 40")
    return misses


def svg_plot(rows):
    """Latency by percentile (log-log), one line per scenario and backend."""
    qs = [("p50", 50), ("p75", 75), ("p90", 90), ("p95", 95), ("p99", 99), ("p999", 99.9)]
    import math
    W, H, L, T, R, B = 900, 520, 70, 30, 250, 50
    xs = lambda q: L + (math.log10(1 / (1 - q / 100)) - math.log10(2)) / (3 - math.log10(2)) * (W - L - R)
    values = [r["latency_ms"][k] for r in rows for k, _ in qs if r["latency_ms"].get(k)]
    lo, hi = max(min(values, default=0.1), 0.01), max(values, default=1)
    lo, hi = 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))
    ys = lambda v: T + (1 - (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))) * (H - T - B)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="18" font-size="14">Latency by percentile (ms, log scale)</text>']
    for _, q in qs:
        x = xs(q)
        out.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{H - B}" stroke="#ddd"/><text x="{x:.1f}" y="{H - B + 18}" text-anchor="middle">p{q:g}</text>')
    d = lo
    while d <= hi * 1.0001:
        y = ys(d)
        out.append(f'<line x1="{L}" y1="{y:.1f}" x2="{W - R}" y2="{y:.1f}" stroke="#ddd"/><text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{d:g}</text>')
        d *= 10
    for i, r in enumerate(rows):
        c = colors[i % len(colors)]
        dash = ' stroke-dasharray="6,3"' if r["backend"] == "sqlite" else ""
        pts = " ".join(f"{xs(q):.1f},{ys(r['latency_ms'][k]):.1f}" for k, q in qs if r["latency_ms"].get(k) is not None)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2"{dash}/>')
        out.append(f'<line x1="{W - R + 15}" y1="{T + 10 + i * 18}" x2="{W - R + 40}" y2="{T + 10 + i * 18}" stroke="{c}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{W - R + 46}" y="{T + 14 + i * 18}">{r["scenario"]} ({r["backend"]})</text>')
    out.append("</svg>")
    return "\n".join(out)
