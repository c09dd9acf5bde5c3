#!/usr/bin/env python3
"""PostgreSQL's own ceiling for the checkout flow: the SQL of one order, driven by pgbench (a C
client, no HTTP server, no pool pings, no background jobs) against a seeded scratch database on
this machine. What the server could reach on PostgreSQL is at most this, and less, since the
server and the load generator need CPU on the same cores.

usage: python3 bench/pg_ceiling.py [--products 100000] [--duration 15] [--clients 20] [--out bench/results] [--smoke]
--smoke: 2,000 products, 2 s a row, the debug build (run by .ci/run so the script never rots).

Three rows:
- `as_served`: the statements the server sends for one order today (create cart, 3 × (read cart,
  add line), set address + read lines, checkout: BEGIN, lock cart, read lines, reserve, insert
  order, insert batch, COMMIT), in the server's SQL. Copied from a `log_statement = 'all'`
  capture of one order (session 17; to refresh: `BENCH_PG_SQL` in run.py can set it for a
  database); 6 commits per order.
- `merged`: the least the same work could take: one statement per request (each line's checks
  and insert in one, the address and the lines' read in one, the whole checkout in one chain of
  data-modifying CTEs), still 6 commits per order.
- `merged_async`: `merged` with `synchronous_commit = off` (not a setting to ship for orders: a
  crash loses the last acknowledged ones), to show what commit flushes cost.
Every row runs after `ANALYZE`, so plans are the ones a database with statistics would choose.
PostgreSQL: BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/test) creates a scratch
database, dropped afterwards. Writes bench/results/<time>-pg-ceiling.json.
"""
import argparse, datetime, json, os, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as lib  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--products", type=int, default=100_000)
ap.add_argument("--duration", type=int, default=15)
ap.add_argument("--clients", type=int, default=20, help="pgbench connections (the server's DB_POOL_MAX is 20)")
ap.add_argument("--out", default=None)
ap.add_argument("--smoke", action="store_true")
args = ap.parse_args()
if args.smoke:
    args.products, args.duration = 2000, 2

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out_dir = args.out or os.path.join(root, "bench", "results")
os.makedirs(out_dir, exist_ok=True)
subprocess.run(["cargo", "build", "-p", "valuva"] + ([] if args.smoke else ["--release"]), cwd=root, check=True)
target = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=root, check=True,
                                   capture_output=True, text=True).stdout)["target_directory"]
binary = os.environ.get("BENCH_BINARY") or os.path.join(target, "debug" if args.smoke else "release", "valuva")

USERS, VARIANTS = 64, 2000  # as run.py: 64 customers, the variants of its hot set of ~1,000 products
ADDRESS = '{"city":"Berlin","country":"DE","line1":"1 Load St","line2":null,"name":"Bench User","phone":null,"postal_code":"10115"}'
SUMMARY = '{"currency":"EUR","lines":3,"number":1001,"status":"pending_payment","total":12711}'
ITEM = ('{"id":"01a24e9a-541c-7025-bdf6-8d85d0ae9200","variant_id":"01a24e9a-4d28-7763-901d-b64e03982977","sku":"SYN-B64D07E4D199-M",'
        '"title":"Urban Bamboo Jacket","quantity":1,"unit_price":{"amount":4403,"currency":"EUR"},"line_total":{"amount":4403,"currency":"EUR"}}')
RESPONSE = ('{"order":{"id":"01a24e9a-541b-77d7-8c0e-c4e0b7b07ad8","number":1001,"status":"pending_payment","currency":"EUR",'
            '"email":"bench@example.com","items":[' + ",".join([ITEM] * 3) + '],"subtotal":{"amount":12211,"currency":"EUR"},'
            '"shipping_total":{"amount":500,"currency":"EUR"},"total":{"amount":12711,"currency":"EUR"},"refunded_total":{"amount":0,'
            '"currency":"EUR"},"shipping_address":' + ADDRESS + ',"shipping_method":"Standard","payment_provider":"manual","carrier":null,'
            '"tracking_number":null,"expires_at":"2026-12-07T04:14:26.650228Z","created_at":"2026-12-07T03:44:26.650228Z",'
            '"updated_at":"2026-12-07T03:44:26.650228Z"},"payment":{"provider":"manual","status":"pending","client_secret":null}}')

# Helpers the scripts use: pgbench variables are numbers, so variant and user ids come from
# numbered tables, and JSON literals (whose ':' pgbench would read as variables) from a table.
SETUP = f"""
UPDATE variants SET stock = 100000000;
CREATE TABLE bench_v (n int PRIMARY KEY, id uuid NOT NULL);
INSERT INTO bench_v SELECT row_number() OVER (ORDER BY id), id FROM (SELECT id FROM variants ORDER BY product_id LIMIT {VARIANTS}) v;
CREATE TABLE bench_u (n int PRIMARY KEY, id uuid NOT NULL);
INSERT INTO users (id, email, password_hash, role, created_at, updated_at)
  SELECT gen_random_uuid(), 'ceiling' || g || '@example.com', 'x', 'customer', now(), now() FROM generate_series(1, {USERS}) g;
INSERT INTO bench_u SELECT row_number() OVER (ORDER BY id), id FROM users WHERE email LIKE 'ceiling%';
CREATE TABLE bench_const (k int PRIMARY KEY, v text NOT NULL);
INSERT INTO bench_const VALUES (0, $j${ADDRESS}$j$), (1, $j${SUMMARY}$j$), (2, $j${RESPONSE}$j$);
-- UUIDv7, as the server's ids: time-ordered, so inserts append to the right of each index.
CREATE FUNCTION uuid7() RETURNS uuid AS $f$
  SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING
    substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$f$ LANGUAGE sql VOLATILE;
"""


COUNTS = ("SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_lines), (SELECT count(*) FROM inventory_movements), "
          "(SELECT count(*) FROM cart_items), (SELECT count(*) FROM payments), (SELECT count(*) FROM audit_logs), "
          "(SELECT count(*) FROM outbox_events), (SELECT count(*) FROM idempotency_keys)")


def v(i):
    return f"(SELECT id FROM bench_v WHERE n = :r{i})"


def c(k):
    return f"(SELECT v FROM bench_const WHERE k = {k})"


OWNER = "id = :cid::uuid AND status = 'active' AND updated_at >= now() - interval '30 days' AND (token_hash = :th::text OR user_id = :uid::uuid)"
C_OWNER = ("c.id = :cid::uuid AND c.status = 'active' AND c.updated_at >= now() - interval '30 days' "
           "AND (c.token_hash = :th::text OR c.user_id = :uid::uuid)")
START = [f"\\set r1 random(1, {VARIANTS // 3})", f"\\set r2 random({VARIANTS // 3 + 1}, {2 * VARIANTS // 3})",
         f"\\set r3 random({2 * VARIANTS // 3 + 1}, {VARIANTS})", f"\\set u random(1, {USERS})",
         "INSERT INTO carts (id, token_hash, user_id, currency, email, shipping_address, status, created_at, updated_at, version) "
         "VALUES (uuid7(), md5(random()::text) || md5(random()::text), (SELECT id FROM bench_u WHERE n = :u), 'EUR', NULL, NULL, 'active', now(), now(), 0) "
         "RETURNING id AS cid, token_hash AS th, user_id AS uid", "\\gset"]
LINES = ("SELECT v.id AS variant_id, v.product_id, v.sku, v.price, v.currency, v.options, v.stock, v.weight_grams, p.title, "
         "p.status AS product_status, p.deleted_at AS product_deleted_at, ci.id AS item_id, ci.quantity FROM variants v "
         "JOIN products p ON v.product_id = p.id JOIN cart_items ci ON v.id = ci.variant_id WHERE ci.cart_id = :cid::uuid ORDER BY ci.id")
ORDER_COLS = ("id, user_id, cart_id, email, status, version, currency, subtotal, shipping_total, total, refunded_total, shipping_address, "
              "shipping_method, payment_provider, carrier, tracking_number, expires_at, created_at, updated_at")
LINE_COLS = "id, order_id, variant_id, sku, title, quantity, unit_price, line_total, restocked_quantity"
MOVE_COLS = "id, variant_id, delta, reserved_delta, kind, reason, stock_after, actor_id, order_id, created_at"
PAY_COLS = "id, order_id, provider, reference, amount, currency, status, refunded_amount, created_at, updated_at"
AUDIT_COLS = "id, seq, created_at, actor_id, action, entity_type, entity_id, old_values, new_values, ip, user_agent, request_id, prev_hash, hash"
KEY_COLS = "scope, key, request_hash, state, response_status, response_body, created_at"
HASH = "'80057f382c974570ed1a73fcb706ba9b41a8f2c52bec511d904c759879695082'"


def as_served():
    s = list(START)
    for i in (1, 2, 3):
        s.append("SELECT c.id, c.token_hash, c.user_id, c.currency, c.email, c.shipping_address, c.status, c.created_at, c.updated_at, "
                 "c.version, v.id AS variant_id, v.product_id, v.sku, v.price, v.currency, v.options, v.stock, v.weight_grams, p.title, "
                 "p.status, p.deleted_at, ci.id AS item_id, ci.quantity FROM carts c CROSS JOIN (SELECT variant_id FROM cart_items "
                 f"WHERE cart_id = :cid::uuid UNION SELECT {v(i)}) ids LEFT JOIN variants v ON v.id = ids.variant_id LEFT JOIN products p "
                 "ON p.id = v.product_id LEFT JOIN cart_items ci ON ci.cart_id = c.id AND ci.variant_id = ids.variant_id WHERE "
                 + C_OWNER)
        s.append(f"WITH cart AS (UPDATE carts SET updated_at = now(), version = version + 1 WHERE id = :cid::uuid AND version = {i - 1} "
                 "AND status = 'active' RETURNING version), line AS (INSERT INTO cart_items (id, cart_id, variant_id, quantity, created_at) "
                 f"SELECT uuid7(), :cid::uuid, {v(i)}, 1, now() FROM cart ON CONFLICT (id) DO UPDATE SET quantity = EXCLUDED.quantity) "
                 "SELECT version FROM cart")
    s.append(f"UPDATE carts SET email = 'bench@example.com', shipping_address = {c(0)}, updated_at = now(), status = 'active', "
             f"version = version + 1 WHERE {OWNER} RETURNING *")
    s.append(LINES)
    s += ["BEGIN", f"UPDATE carts SET updated_at = now(), status = 'converted', version = version + 1 WHERE {OWNER} RETURNING *", LINES,
          "UPDATE variants SET stock = variants.stock - r.column2, reserved = variants.reserved + r.column2 FROM (VALUES "
          f"({v(1)}, 1), ({v(2)}, 1), ({v(3)}, 1)) AS r WHERE variants.id = r.column1 AND variants.stock >= r.column2 "
          "RETURNING variants.id, variants.stock",
          f"INSERT INTO orders ({ORDER_COLS}) VALUES (uuid7(), :uid::uuid, :cid::uuid, 'bench@example.com', 'pending_payment', 0, 'EUR', "
          f"12211, 500, 12711, 0, {c(0)}, 'Standard', 'manual', NULL, NULL, now() + interval '30 minutes', now(), now()) "
          f"RETURNING id AS oid, number, {ORDER_COLS.split(', ', 1)[1]}", "\\gset"]
    lines = ", ".join(f"(uuid7(), :oid::uuid, {v(i)}, 'SYN-B64D07E4D199-M', 'Urban Bamboo Jacket', 1, 4403, 4403, 0)" for i in (1, 2, 3))
    moves = ", ".join(f"(uuid7(), {v(i)}, -1, 1, 'reservation', 'checkout', 999, :uid::uuid, :oid::uuid, now())" for i in (1, 2, 3))
    s.append(f"WITH w0 AS (INSERT INTO order_lines ({LINE_COLS}) VALUES {lines}), w1 AS (INSERT INTO inventory_movements ({MOVE_COLS}) "
             f"VALUES {moves}), w2 AS (INSERT INTO payments ({PAY_COLS}) VALUES (uuid7(), :oid::uuid, 'manual', NULL, 12711, 'EUR', "
             f"'pending', 0, now(), now())), w3 AS (INSERT INTO audit_logs ({AUDIT_COLS}) VALUES (uuid7(), NULL, now(), :uid::uuid, "
             f"'ORDER', 'order', :oid::text, NULL, {c(1)}, '127.0.0.1', NULL, uuid7()::text, NULL, NULL)), w4 AS (INSERT INTO "
             f"outbox_events (id, topic, aggregate_id, payload, created_at, dispatched_at) VALUES (uuid7(), 'order.created', :oid::uuid, "
             f"{c(1)}, now(), NULL)), w5 AS (INSERT INTO idempotency_keys ({KEY_COLS}) VALUES ('checkout:' || :cid::text, uuid7()::text, "
             f"{HASH}, 'completed', 201, {c(2)}, now())) SELECT 1")
    s.append("COMMIT")
    return s


def merged():
    s = list(START)
    view = LINES.replace(" ORDER BY ci.id", "")
    for i in (1, 2, 3):
        # The cart's owner check, stamp and version, the variant's checks, the insert and the
        # cart's lines for the response, in one statement.
        s.append(f"WITH cart AS (UPDATE carts SET updated_at = now(), version = version + 1 WHERE {OWNER} RETURNING id), "
                 "nv AS (SELECT v.id, v.product_id, v.sku, v.price, v.currency, v.options, v.stock, v.weight_grams, p.title, p.status, "
                 f"p.deleted_at FROM variants v JOIN products p ON p.id = v.product_id WHERE v.id = {v(i)} AND p.status = 'active' "
                 "AND p.deleted_at IS NULL AND v.stock >= 1), line AS (INSERT INTO cart_items (id, cart_id, variant_id, quantity, "
                 "created_at) SELECT uuid7(), cart.id, nv.id, 1, now() FROM cart, nv RETURNING id, variant_id, quantity) "
                 f"{view} UNION ALL SELECT nv.*, line.id, line.quantity FROM line JOIN nv ON nv.id = line.variant_id")
    s.append(f"WITH cart AS (UPDATE carts SET email = 'bench@example.com', shipping_address = {c(0)}, updated_at = now(), "
             f"version = version + 1 WHERE {OWNER} RETURNING *) SELECT cart.*, l.* FROM cart LEFT JOIN ({view}) l ON true")
    s.append(f"WITH cart AS (UPDATE carts SET updated_at = now(), status = 'converted', version = version + 1 WHERE {OWNER} RETURNING *), "
             "lines AS (SELECT ci.quantity, v.id AS variant_id, v.sku, v.price, p.title FROM cart JOIN cart_items ci ON ci.cart_id = cart.id "
             "JOIN variants v ON v.id = ci.variant_id JOIN products p ON p.id = v.product_id), "
             "res AS (UPDATE variants SET stock = variants.stock - l.quantity, reserved = variants.reserved + l.quantity FROM lines l "
             "WHERE variants.id = l.variant_id AND variants.stock >= l.quantity RETURNING variants.id, variants.stock), "
             f"ord AS (INSERT INTO orders ({ORDER_COLS}) SELECT uuid7(), cart.user_id, cart.id, cart.email, 'pending_payment', 0, "
             "cart.currency, 12211, 500, 12711, 0, cart.shipping_address, 'Standard', 'manual', NULL, NULL, now() + interval '30 minutes', "
             "now(), now() FROM cart RETURNING *), "
             f"w0 AS (INSERT INTO order_lines ({LINE_COLS}) SELECT uuid7(), ord.id, l.variant_id, l.sku, l.title, l.quantity, l.price, "
             "l.price * l.quantity, 0 FROM ord, lines l), "
             f"w1 AS (INSERT INTO inventory_movements ({MOVE_COLS}) SELECT uuid7(), res.id, -1, 1, 'reservation', 'checkout', res.stock, "
             "ord.user_id, ord.id, now() FROM ord, res), "
             f"w2 AS (INSERT INTO payments ({PAY_COLS}) SELECT uuid7(), ord.id, 'manual', NULL, ord.total, ord.currency, 'pending', 0, "
             "now(), now() FROM ord), "
             f"w3 AS (INSERT INTO audit_logs ({AUDIT_COLS}) SELECT uuid7(), NULL, now(), ord.user_id, 'ORDER', 'order', ord.id::text, NULL, "
             f"{c(1)}, '127.0.0.1', NULL, uuid7()::text, NULL, NULL FROM ord), "
             "w4 AS (INSERT INTO outbox_events (id, topic, aggregate_id, payload, created_at, dispatched_at) SELECT uuid7(), "
             f"'order.created', ord.id, {c(1)}, now(), NULL FROM ord), "
             f"w5 AS (INSERT INTO idempotency_keys ({KEY_COLS}) SELECT 'checkout:' || ord.cart_id::text, uuid7()::text, {HASH}, "
             f"'completed', 201, {c(2)}, now() FROM ord) "
             "SELECT ord.*, (SELECT count(*) FROM res) AS reserved FROM ord")
    return s


def psql(url, sql):
    subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", url, "-qc", sql], check=True)


def run(name, script, url, work, pgoptions=""):
    path = os.path.join(work, f"{name}.sql")
    # pgbench ends an SQL command at ';', or at a following \gset.
    lines = [line if line.startswith("\\") or nxt == "\\gset" else line + ";" for line, nxt in zip(script, script[1:] + [""])]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    psql(url, "ANALYZE")
    conn = url.replace("postgres://", "postgresql://") + "?sslmode=disable"
    env = dict(os.environ, PGOPTIONS=pgoptions)
    counts = lambda: [int(x) for x in subprocess.run(["psql", url, "-Atc", COUNTS], check=True, capture_output=True, text=True).stdout.split("|")]
    rows_before = counts()
    before = lib.cpu_times()
    out = subprocess.run(["pgbench", "-n", "-M", "prepared", "-c", str(args.clients), "-j", "2", "-T", str(args.duration),
                          "--max-tries=20", "-f", path, conn], env=env, capture_output=True, text=True)
    idle, steal = lib.cpu_shares(before, lib.cpu_times())
    if out.returncode != 0:
        sys.exit(f"pgbench failed for {name}:\n{out.stderr}")
    # Every order must have done all of its work: a statement that matched nothing would make
    # the run look fast.
    done = [a - b for a, b in zip(counts(), rows_before)]
    processed = int(next(line for line in out.stdout.splitlines() if "actually processed" in line).split(": ")[1].split("/")[0])
    if done != [processed, 3 * processed, 3 * processed, 3 * processed, processed, processed, processed, processed]:
        sys.exit(f"{name}: {processed} orders processed, but rows written per table: {done}")
    stats = dict(line.split(" = ", 1) for line in out.stdout.splitlines() if " = " in line)
    failed = next((line for line in out.stdout.splitlines() if line.startswith("number of failed")), "")
    statements = sum(1 for line in script if not line.startswith("\\"))
    return {"script": name, "statements": statements, "commits": 6, "orders_per_s": round(float(stats["tps"].split()[0]), 1),
            "latency_avg_ms": float(stats["latency average"].split()[0]), "failed": failed.split(": ", 1)[-1],
            "cpu_busy_pct": round(100 - idle, 1), "cpu_steal_pct": steal, "synchronous_commit": "off" not in pgoptions}


admin = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/test")
dbname = f"valuva_ceiling_{os.getpid()}_{int(time.time())}"
url = admin.rsplit("/", 1)[0] + "/" + dbname
psql(admin, f"CREATE DATABASE {dbname}")
rows = []
try:
    env = dict(os.environ, DATABASE_URL=url + "?sslmode=disable", JWT_SECRET="bench-secret-bench-secret-bench-secret")
    subprocess.run([binary, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([binary, "seed", "--products", str(args.products), "--batch", "1000"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    psql(url, SETUP)
    with tempfile.TemporaryDirectory() as work:
        for name, script, opts in [("as_served", as_served(), ""), ("merged", merged(), ""),
                                   ("merged_async", merged(), "-c synchronous_commit=off")]:
            rows.append(run(name, script, url, work, opts))
            r = rows[-1]
            print(f"{name:<13} {r['statements']:>2} statements  {r['orders_per_s']:>7.1f} orders/s  avg {r['latency_avg_ms']:>6.1f} ms  "
                  f"failed {r['failed']}  CPU busy {r['cpu_busy_pct']}%  steal {r['cpu_steal_pct']}%", flush=True)
finally:
    psql(admin, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")

stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
report = {"time": stamp, "machine": {"cpu": lib.cpu_model(), "cores": os.cpu_count(), "mem_gb": lib.mem_gb()},
          "settings": {"products": args.products, "duration_s": args.duration, "clients": args.clients, "binary": binary}, "rows": rows}
path = os.path.join(out_dir, f"{stamp}-pg-ceiling.json")
with open(path, "w") as f:
    json.dump(report, f, indent=1)
print(f"wrote {path}")
