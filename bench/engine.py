#!/usr/bin/env python3
"""The engine at the speed of its database: online signing over HTTP beside the raw SQL
baselines, in one run, with the ratios.

    python3 bench/engine.py [--bin target/debug/gradsign] [--backend sqlite,postgres]
                            [--cases 400] [--rounds 1] [--lists]

For each backend it starts `gradsign serve` on a fresh database (PostgreSQL: database
`gradsign_bench_engine`, `sslmode=disable` on loopback; SQLite: a file in a temporary data
folder), syncs schools, employers and students through the API, and takes N online cases
through five steps each (invite, view, accept, confirm, approve) with 1 and 16 clients,
workers off (`--no-workers`) and on; then 16 clients again with the students spread over
16 schools (the confirm p99 of one school beside 16 schools). Beside it, in the same run:

* minimal: the durable work a transition cannot avoid, one UPDATE of a case and one INSERT
  of its history in one transaction (pgbench on PostgreSQL; a Python sqlite3 loop with the
  product's settings — WAL, synchronous=NORMAL, BEGIN IMMEDIATE — on SQLite);
* replay (PostgreSQL): the engine's own statements, captured from the server log
  (`log_statement = all` on the bench database) while one client signed --capture cases,
  replayed by psql, one process per client, on a copy of the database as it was before
  the capture (so every statement meets the state it met the first time).

The capture also gives the number of statements per step (BEGIN and COMMIT included).
`--lists` loads bench/load.sql (1,000,000 cases, as bench/schools.py does) and times a
state-filtered school list whose state few cases are in. Prints throughput, p50/p99 per
step and the ratios to the baselines. Needs psql and pgbench on PATH for PostgreSQL.
"""

import argparse
import base64
import glob
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

from _common import ROOT, SECRET, percentile, psql

DB = "gradsign_bench_engine"
PG_LOG = "/var/log/postgresql/postgresql-15-main.log"
STEPS = ["invite", "view", "accept", "confirm", "approve"]


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(role, party=None, school=None):
    now = int(time.time())
    claims = {"role": role, "iat": now, "exp": now + 86400, "sub": f"bench-{role}-{party or school}", "name": "压测"}
    if party:
        claims["party"] = party
    if school:
        claims["school"] = school
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


class Server:
    """`gradsign serve` on a database, with or without workers."""

    def __init__(self, args, url, data, workers):
        self.port = args.port
        env = dict(os.environ, DATABASE_URL=url, GRADSIGN_JWT_SECRET=SECRET, GRADSIGN_DATA_DIR=data,
                   GRADSIGN_LISTEN=f"127.0.0.1:{args.port}", GRADSIGN_WORKFLOWS_DIR=os.path.join(ROOT, "workflows"),
                   GRADSIGN_TEMPLATES_DIR=os.path.join(ROOT, "templates"),
                   GRADSIGN_WORKERS_DIR=os.path.join(ROOT, "workers"), RUST_LOG="warn", GRADSIGN_LOG="warn")
        cmd = [args.bin, "serve"] + ([] if workers else ["--no-workers"])
        self.log = open(os.path.join(data, "server.log"), "ab")
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=self.log, stderr=self.log)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                # /healthz: /readyz says 503 while no worker runs (--no-workers).
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        sys.exit("the server did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method, path, tok, body=None):
        headers = {"Authorization": f"Bearer {tok}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt:
                    raise


ADMIN = token("platform_admin")


def sync(port, schools, students):
    """Schools S01…, employer E1 (takes archive and hukou), and the students (id, school)."""
    c = Client(port)
    for s in schools:
        st, body = c.call("PUT", f"/api/v1/schools/{s}", ADMIN,
                          {"name": f"压测大学{s}", "reviewer_email": f"review@{s.lower()}.example.edu.cn"})
        assert st in (200, 201), body
    st, body = c.call("PUT", "/api/v1/employers/E1", ADMIN,
                      {"name": "龙江软件有限公司", "credit_code": "91110000600037341L", "receives_archive": True,
                       "receives_hukou": True, "email": "hr@e1.example.com"})
    assert st in (200, 201), body
    for i in range(0, len(students), 2000):
        recs = [{"id": sid, "school": school, "name": "同学", "email": f"{sid.lower()}@s.example.edu.cn"}
                for sid, school in students[i:i + 2000]]
        st, body = c.call("PUT", "/api/v1/students", ADMIN, recs)
        assert st == 200 and not json.loads(body)["rejected"], body[:500]


def jobs_waiting(port):
    """Jobs due or scheduled and not yet taken, every queue together (from /metrics)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("gradsign_jobs_waiting{")))


def sign(port, students, clients):
    """Takes each student through the five steps; returns (seconds, {step: [ms]})."""
    lat = {s: [] for s in STEPS}
    lock = threading.Lock()
    queue = list(students)
    errors = []
    employer = token("employer", "E1")

    def worker():
        c = Client(port)
        mine = {s: [] for s in STEPS}
        while True:
            with lock:
                if not queue:
                    break
                sid, school = queue.pop()
            student = token("student", sid, school)
            t = time.perf_counter()
            st, body = c.call("POST", "/api/v1/cases", employer,
                              {"workflow": "online_signing", "student": sid,
                               "input": {"terms": {"position": "软件工程师", "work_place": "哈尔滨"}}})
            mine["invite"].append((time.perf_counter() - t) * 1000)
            if st != 201:
                errors.append(("invite", st, body[:300]))
                continue
            case = json.loads(body)["id"]
            for step, tok in [("view", student), ("accept", student), ("confirm", student),
                              ("approve", token("school_reviewer", None, school))]:
                t = time.perf_counter()
                st, body = c.call("POST", f"/api/v1/cases/{case}/transitions/{step}", tok, {"input": {}})
                mine[step].append((time.perf_counter() - t) * 1000)
                if st != 200:
                    errors.append((step, st, body[:300]))
                    break
        with lock:
            for s in STEPS:
                lat[s].extend(mine[s])

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        sys.exit(f"{len(errors)} requests failed, e.g. {errors[:3]}")
    return elapsed, lat


def summary(name, n, elapsed, lat):
    alls = [x for s in STEPS for x in lat[s]]
    row = {"name": name, "tps": n / elapsed, "p50": percentile(alls, 50), "p99": percentile(alls, 99)}
    for s in STEPS:
        row[s] = (percentile(lat[s], 50), percentile(lat[s], 99))
    return row


# ---- baselines ---------------------------------------------------------------------------

def minimal_pg(url, clients, n):
    psql(url, "DROP TABLE IF EXISTS bench_case, bench_history; "
              "CREATE TABLE bench_case (id int PRIMARY KEY, state text, version int, data text, updated_at bigint); "
              "CREATE TABLE bench_history (case_id int, seq bigserial, at bigint, input text, PRIMARY KEY (case_id, seq)); "
              "INSERT INTO bench_case SELECT g, 'invited', 1, repeat('x', 500), 0 FROM generate_series(1, 10000) g")
    script = tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False)
    script.write("\\set id random(1, 10000)\nBEGIN;\n"
                 "UPDATE bench_case SET state = 'viewed', version = version + 1, updated_at = :id WHERE id = :id;\n"
                 "INSERT INTO bench_history (case_id, at, input) VALUES (:id, :id, '{}');\nEND;\n")
    script.close()
    logdir = tempfile.mkdtemp(prefix="pgbench-")
    subprocess.run(["pgbench", "-n", "-f", script.name, "-c", str(clients), "-j", str(min(clients, 2)),
                    "-t", str(max(1, n // clients)), "-l", "--log-prefix", os.path.join(logdir, "l"), url],
                   check=True, capture_output=True, text=True)
    lat = []
    first, last = None, None
    for f in glob.glob(os.path.join(logdir, "l*")):
        for line in open(f):
            parts = line.split()
            lat.append(int(parts[2]) / 1000)
            end = int(parts[4]) + int(parts[5]) / 1e6
            first = min(first, end - int(parts[2]) / 1e6) if first is not None else end - int(parts[2]) / 1e6
            last = max(last, end) if last is not None else end
    shutil.rmtree(logdir)
    os.unlink(script.name)
    return {"tps": len(lat) / (last - first), "p50": percentile(lat, 50), "p99": percentile(lat, 99)}


def minimal_sqlite(clients, n):
    folder = tempfile.mkdtemp(prefix="sqlite-min-")
    path = os.path.join(folder, "m.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE bench_case (id INTEGER PRIMARY KEY, state TEXT, version INTEGER, data TEXT, updated_at INTEGER)")
    db.execute("CREATE TABLE bench_history (case_id INTEGER, seq INTEGER, at INTEGER, input TEXT, PRIMARY KEY (case_id, seq))")
    db.execute("BEGIN")
    db.executemany("INSERT INTO bench_case VALUES (?, 'invited', 1, ?, 0)", [(i, "x" * 500) for i in range(1, 10001)])
    db.execute("COMMIT")
    db.close()
    lat = []
    lock = threading.Lock()
    per = max(1, n // clients)

    def worker(k):
        conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        mine = []
        for i in range(per):
            cid = (k * per + i) % 10000 + 1
            t = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            v = conn.execute("UPDATE bench_case SET state = 'viewed', version = version + 1, updated_at = ? "
                             "WHERE id = ? RETURNING version", (i, cid)).fetchone()[0]
            conn.execute("INSERT INTO bench_history (case_id, seq, at, input) VALUES (?, ?, ?, '{}')", (cid, v, i))
            conn.execute("COMMIT")
            mine.append((time.perf_counter() - t) * 1000)
        conn.close()
        with lock:
            lat.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    shutil.rmtree(folder)
    return {"tps": len(lat) / elapsed, "p50": percentile(lat, 50), "p99": percentile(lat, 99)}


# ---- the statement log -------------------------------------------------------------------

LOG_HEAD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \w+ \[(\d+)\] (\S*)@(\S*) (LOG|DETAIL|ERROR|STATEMENT|WARNING|NOTICE|HINT|CONTEXT|FATAL):  (.*)$")


NEW_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \w+ \[\d+\]")


def read_log(offset, db):
    """The statements logged for `db` after `offset`: [(pid, sql)] with the parameters
    written in (sqlx's extended protocol logs them on a DETAIL line)."""
    with open(PG_LOG, encoding="utf-8", errors="replace") as f:
        f.seek(offset)
        text = f.read()
    entries = []
    for line in text.split("\n"):
        m = LOG_HEAD.match(line)
        if m:
            entries.append([m.group(1), m.group(3), m.group(4), m.group(5)])
        elif NEW_ENTRY.match(line):
            entries.append(["", "", "", ""])  # another process's line (checkpointer…)
        elif entries:
            entries[-1][3] += "\n" + line
    out = []
    for pid, dbname, kind, msg in entries:
        if dbname != db:
            continue
        if kind == "LOG":
            m = re.match(r"(?:statement|execute [^:]*): (.*)", msg, re.S)
            if m:
                out.append([pid, m.group(1)])
        elif kind == "DETAIL" and msg.startswith("parameters: ") and out:
            params = {}
            for pm in re.finditer(r"\$(\d+) = (NULL|'(?:[^']|'')*')", msg[len("parameters: "):], re.S):
                params[pm.group(1)] = pm.group(2)
            out[-1][1] = re.sub(r"\$(\d+)", lambda x: params.get(x.group(1), x.group(0)), out[-1][1])
    return out


def log_size():
    return os.path.getsize(PG_LOG)


def transactions(stmts):
    """Groups a process's statements into transactions (BEGIN … COMMIT/ROLLBACK)."""
    by_pid = {}
    groups = []
    for pid, sql in stmts:
        cur = by_pid.setdefault(pid, [])
        cur.append(sql)
        head = sql.strip().upper()
        if head.startswith("COMMIT") or head.startswith("ROLLBACK") or head.startswith("END"):
            groups.append(cur)
            by_pid[pid] = []
    return groups


# ---- the runs ----------------------------------------------------------------------------

def students_for(prefix, n, schools):
    return [(f"{prefix}{i:05d}", schools[i % len(schools)]) for i in range(n)]


def fresh_pg(args):
    admin = args.pg + "/postgres"
    psql(admin, f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    psql(admin, f"DROP DATABASE IF EXISTS {DB}_replay WITH (FORCE)")
    psql(admin, f"DROP DATABASE IF EXISTS {DB}_tpl WITH (FORCE)")
    psql(admin, f"CREATE DATABASE {DB}")
    return f"{args.pg}/{DB}?sslmode=disable"


def run_backend(args, backend):
    n = args.cases
    schools16 = [f"S{i:02d}" for i in range(1, 17)]
    plan = [("1 client, workers off", 1, False, ["S01"]),
            ("16 clients, workers off", 16, False, ["S01"]),
            ("1 client, workers on", 1, True, ["S01"]),
            ("16 clients, workers on", 16, True, ["S01"]),
            ("16 clients, 16 schools, off", 16, False, schools16)]
    data = tempfile.mkdtemp(prefix="gradsign-bench-engine-")
    if backend == "postgres":
        url = fresh_pg(args)
    else:
        url = f"sqlite://{data}/gradsign.db?mode=rwc"
    everyone = []
    for r in range(args.rounds):
        for k, (_, _, _, schools) in enumerate(plan):
            everyone += students_for(f"R{r}P{k}N", n, schools)
    capture_students = students_for("CAP", args.capture, ["S01"])
    server = Server(args, url, data, workers=False)
    try:
        sync(args.port, schools16, everyone + capture_students)
    finally:
        server.stop()
    results = {}
    counts = None
    if backend == "postgres":
        counts = capture_and_replay(args, url, data, capture_students, results)
    for r in range(args.rounds):
        for k, (name, clients, workers, schools) in enumerate(plan):
            server = Server(args, url, data, workers)
            try:
                # With the workers on, how the queues moved while requests came: jobs
                # left by the runs before, and those the run itself queued.
                before = jobs_waiting(args.port) if workers else None
                elapsed, lat = sign(args.port, students_for(f"R{r}P{k}N", n, schools), clients)
                after = jobs_waiting(args.port) if workers else None
            finally:
                server.stop()
            results.setdefault(name, []).append(summary(name, n * 5, elapsed, lat))
            base = f"minimal, {clients} client{'s' if clients > 1 else ''}"
            if clients in (1, 16) and not (workers or len(schools) > 1):
                b = minimal_pg(url.split("?")[0], clients, n * 5) if backend == "postgres" else minimal_sqlite(clients, n * 5)
                results.setdefault(base, []).append(b)
            jobs = f"; jobs waiting {before} -> {after}" if workers else ""
            print(f"  {backend} round {r + 1}: {name}: {n * 5 / elapsed:.0f} transitions/s{jobs}", flush=True)
    shutil.rmtree(data, ignore_errors=True)
    return results, counts


def capture_and_replay(args, url, data, students, results):
    """Signs `students` with one client while PostgreSQL logs every statement; counts
    them per step and replays them on a copy of the database as it was before."""
    admin = args.pg + "/postgres"
    psql(admin, f"CREATE DATABASE {DB}_tpl TEMPLATE {DB}")
    psql(admin, f"ALTER DATABASE {DB} SET log_statement = 'all'")
    server = Server(args, url, data, workers=False)
    counts = {s: 0 for s in STEPS + ["wake-ups"]}
    stream = []
    try:
        c = Client(args.port)
        employer = token("employer", "E1")
        for sid, school in students:
            student = token("student", sid, school)
            reviewer = token("school_reviewer", None, school)
            at = log_size()
            st, body = c.call("POST", "/api/v1/cases", employer,
                              {"workflow": "online_signing", "student": sid,
                               "input": {"terms": {"position": "软件工程师", "work_place": "哈尔滨"}}})
            assert st == 201, body
            case = json.loads(body)["id"]
            steps = [("invite", None, None)] + [(s, t, None) for s, t in
                                                [("view", student), ("accept", student), ("confirm", student),
                                                 ("approve", reviewer)]]
            mine = []
            for step, tok, _ in steps:
                if tok is not None:
                    at = log_size()
                    st, body = c.call("POST", f"/api/v1/cases/{case}/transitions/{step}", tok, {"input": {}})
                    assert st == 200, body
                time.sleep(0.05)  # the logger writes after the answer: let it catch up
                stmts = read_log(at, DB)
                # Wake-ups go after the commit, from the store's notifier (its own connection).
                woken = sum(1 for _, sql in stmts if "pg_notify" in sql)
                counts[step] += len(stmts) - woken
                counts["wake-ups"] += woken
                mine += stmts
            stream.append(mine)
    finally:
        server.stop()
        psql(admin, f"ALTER DATABASE {DB} RESET log_statement")
    counts = {s: counts[s] / len(students) for s in counts}
    steps_n = len(students) * 5
    for clients in (1, 16):
        psql(admin, f"DROP DATABASE IF EXISTS {DB}_replay WITH (FORCE)")
        psql(admin, f"CREATE DATABASE {DB}_replay TEMPLATE {DB}_tpl")
        files = []
        for k in range(clients):
            f = tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False)
            for case in stream[k::clients]:
                for _, sql in case:
                    f.write(sql.rstrip().rstrip(";") + ";\n")
            f.close()
            files.append(f.name)
        started = time.perf_counter()
        procs = [subprocess.Popen(["psql", f"{args.pg}/{DB}_replay?sslmode=disable", "-X", "-q", "-o", "/dev/null",
                                   "-f", name], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for name in files]
        errs = [p.communicate()[1] for p in procs]
        elapsed = time.perf_counter() - started
        bad = [e for e in errs if "ERROR" in e]
        if bad:
            print(f"  replay: {sum(e.count('ERROR') for e in bad)} statements failed, e.g. {bad[0][:300]}")
        for name in files:
            os.unlink(name)
        results.setdefault(f"replay, {clients} client{'s' if clients > 1 else ''}", []).append(
            {"tps": steps_n / elapsed, "p50": float("nan"), "p99": float("nan")})
    psql(admin, f"DROP DATABASE IF EXISTS {DB}_replay WITH (FORCE)")
    psql(admin, f"DROP DATABASE IF EXISTS {DB}_tpl WITH (FORCE)")
    return counts


def median_row(rows):
    rows = sorted(rows, key=lambda r: r["tps"])
    return rows[len(rows) // 2]


def report(backend, results, counts):
    print(f"\n== {backend} ==")
    if counts:
        total = sum(counts[s] for s in STEPS)
        print("statements per step (server log, BEGIN/COMMIT included): " +
              ", ".join(f"{s} {counts[s]:.1f}" for s in STEPS) + f"; a signed case {total:.0f}, "
              f"and {counts['wake-ups']:.1f} wake-up statements sent after the commits")
    print(f"{'run':34} {'trans/s':>8} {'p50 ms':>8} {'p99 ms':>8}  " + " ".join(f"{s + ' p50/p99':>16}" for s in STEPS))
    rows = {name: median_row(rs) for name, rs in results.items()}
    for name, r in rows.items():
        steps = " ".join(f"{r[s][0]:7.1f}/{r[s][1]:<8.1f}" if s in r else f"{'':16}" for s in STEPS)
        print(f"{name:34} {r['tps']:8.0f} {r['p50']:8.2f} {r['p99']:8.2f}  {steps}")
    print("ratios:")
    for clients in (1, 16):
        cl = f"{clients} client{'s' if clients > 1 else ''}"
        eng = rows.get(f"{cl}, workers off")
        for base in (f"minimal, {cl}", f"replay, {cl}"):
            if eng and base in rows:
                print(f"  engine/{base:20} = {eng['tps'] / rows[base]['tps']:.2f}x")
        on = rows.get(f"{cl}, workers on")
        if eng and on:
            print(f"  workers on/off, {cl}: throughput {on['tps'] / eng['tps']:.2f}x, p99 {on['p99'] / eng['p99']:.2f}x "
                  f"({eng['p99']:.1f} -> {on['p99']:.1f} ms)")
    one, many = rows.get("16 clients, workers off"), rows.get("16 clients, 16 schools, off")
    if one and many:
        print(f"  confirm at 16 clients: one school p50/p99 {one['confirm'][0]:.1f}/{one['confirm'][1]:.1f} ms, "
              f"16 schools {many['confirm'][0]:.1f}/{many['confirm'][1]:.1f} ms: p99 ratio "
              f"{one['confirm'][1] / many['confirm'][1]:.2f}x")


def lists(args):
    """A school's list filtered to a state few of its 10,000 cases are in, at 1,000,000."""
    url = fresh_pg(args)
    data = tempfile.mkdtemp(prefix="gradsign-bench-lists-")
    server = Server(args, url, data, workers=False)
    try:
        subprocess.run(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", os.path.join(ROOT, "bench", "load.sql")],
                       check=True)
        # A few of school B001's cases were rejected: the state to filter on.
        psql(url, "UPDATE cases SET state = 'rejected' WHERE id IN ('c00000007', 'c00004242', 'c00009999')")
        reviewer = token("school_reviewer", None, "B001")
        c = Client(args.port)
        print("\n== lists (PostgreSQL, 1,000,000 cases) ==")
        for label, path in [("state=rejected (3 of 10,000)", "/api/v1/cases?state=rejected&limit=50"),
                            ("state=rejected, waiting sort", "/api/v1/cases?state=rejected&sort=waiting&limit=50"),
                            ("page 1 (all states)", "/api/v1/cases?limit=50")]:
            ms = []
            for i in range(220):
                t = time.perf_counter()
                st, body = c.call("GET", path, reviewer)
                assert st == 200, body[:300]
                if i >= 20:
                    ms.append((time.perf_counter() - t) * 1000)
            print(f"  {label:34} p50 {percentile(ms, 50):7.2f} ms  p99 {percentile(ms, 99):7.2f} ms  (200 warm requests)")
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                                                  "debug", "gradsign"))
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    ap.add_argument("--port", type=int, default=18713)
    ap.add_argument("--backend", default="sqlite,postgres")
    ap.add_argument("--cases", type=int, default=400, help="online cases per run (each five transitions)")
    ap.add_argument("--capture", type=int, default=100, help="cases signed while PostgreSQL logs statements")
    ap.add_argument("--rounds", type=int, default=1, help="rounds; the median round is printed")
    ap.add_argument("--lists", action="store_true", help="also the state-filtered list at 1,000,000 cases")
    ap.add_argument("--lists-only", action="store_true")
    args = ap.parse_args()
    print(f"binary {args.bin}, {args.cases} cases x 5 steps a run, {args.rounds} round(s)")
    if not args.lists_only:
        for backend in args.backend.split(","):
            results, counts = run_backend(args, backend)
            report(backend, results, counts)
    if args.lists or args.lists_only:
        lists(args)


if __name__ == "__main__":
    main()
