#!/usr/bin/env python3
"""Schools at scale: statistics, inbox pages and text search over 1,000,000 graduates and
cases in PostgreSQL, through the HTTP API and as the raw SQL the store runs, in one run.

    python3 bench/schools.py [--bin target/debug/gradsign] [--pg postgres://postgres@127.0.0.1:5432]

Creates a fresh database `gradsign_bench_schools`, starts `gradsign serve --no-workers`
on it, bulk-loads bench/load.sql, then times each query 200 times (after 20 warm-up
requests): p50 / p99 in ms, the HTTP request beside its raw SQL (psql, `\\timing`), and
prints EXPLAIN (ANALYZE, BUFFERS) of each raw query. Needs psql on PATH.
"""

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse

from _common import ROOT, SECRET, dev_token, percentile, psql

DB = "gradsign_bench_schools"
RUNS = 200
WARMUP = 20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "gradsign"))
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    ap.add_argument("--port", type=int, default=18712)
    args = ap.parse_args()
    admin_url = args.pg + "/postgres"
    url = f"{args.pg}/{DB}"
    psql(admin_url, f"DROP DATABASE IF EXISTS {DB}")
    psql(admin_url, f"CREATE DATABASE {DB}")
    data = tempfile.mkdtemp(prefix="gradsign-bench-")
    env = dict(os.environ, DATABASE_URL=url, GRADSIGN_JWT_SECRET=SECRET, GRADSIGN_DATA_DIR=data,
               GRADSIGN_LISTEN=f"127.0.0.1:{args.port}", GRADSIGN_WORKFLOWS_DIR=os.path.join(ROOT, "workflows"),
               GRADSIGN_TEMPLATES_DIR=os.path.join(ROOT, "templates"), GRADSIGN_WORKERS_DIR=os.path.join(ROOT, "workers"),
               GRADSIGN_LOG="warn")
    server = subprocess.Popen([args.bin, "serve", "--no-workers"], env=env, cwd=ROOT)
    try:
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", args.port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            sys.exit("the server did not start")
        started = time.time()
        subprocess.run(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", os.path.join(ROOT, "bench", "load.sql")],
                       check=True)
        counts = psql(url, "SELECT (SELECT count(*) FROM parties WHERE kind = 'student'), (SELECT count(*) FROM cases), "
                           "(SELECT count(*) FROM destinations)", "-t").split("|")
        print(f"loaded {counts[0].strip()} graduates, {counts[1].strip()} cases, {counts[2].strip()} destination records "
              f"in {time.time() - started:.0f} s")
        run(args, url, env)
    finally:
        server.terminate()
        server.wait()


def run(args, url, env):
    reviewer = dev_token(args.bin, env, "school_reviewer", "B001")
    admin = dev_token(args.bin, env, "platform_admin")
    now = int(time.time() * 1000)
    # Page 1,000 of the school's cases, ten a page, longest waiting first: the cursor
    # is the 9,990th row's (state_entered_at, id).
    at, cid = psql(url, "SELECT state_entered_at, id FROM cases WHERE school_id = 'B001' "
                        "ORDER BY state_entered_at, id OFFSET 9989 LIMIT 1", "-t", "-A", "-F", " ").split()
    cursor = f"{at}.{cid}"
    # The store's statements, with their values written in (the HTTP path binds them).
    stats_school = ("SELECT k, code, COUNT(*) AS n FROM (SELECT s.college AS k, (SELECT d.category_code FROM destinations d "
                    f"WHERE d.student_id = s.id AND d.approved_at <= {now} AND (d.ended_at IS NULL OR d.ended_at > {now}) "
                    "LIMIT 1) AS code FROM parties s WHERE s.kind = 'student' AND s.school_id = 'B001') g GROUP BY k, code")
    stats_province = ("SELECT s.school_id AS k, d.category_code, COUNT(*) AS n FROM parties s "
                      f"LEFT JOIN destinations d ON d.student_id = s.id AND d.approved_at <= {now} "
                      f"AND (d.ended_at IS NULL OR d.ended_at > {now}) "
                      "WHERE s.kind = 'student' GROUP BY s.school_id, d.category_code")
    list_head = ("SELECT c.id, c.workflow, c.workflow_hash, c.state, c.version, c.data, c.student_id, c.employer_id, "
                 "c.school_id, c.updated_at, c.state_entered_at, s.name AS student_name, s.student_number, s.college, "
                 "e.name AS employer_name, (SELECT MIN(t.due_at) FROM timers t WHERE t.case_id = c.id "
                 "AND t.status = 'pending' AND t.fire <> '') AS deadline FROM cases c "
                 "LEFT JOIN parties s ON s.kind = 'student' AND s.id = c.student_id "
                 "LEFT JOIN parties e ON e.kind = 'employer' AND e.id = c.employer_id ")
    inbox_1 = list_head + ("WHERE c.school_id = 'B001' AND c.state IN ('submitted') "
                           "ORDER BY c.state_entered_at, c.id LIMIT 51")
    inbox_1000 = list_head + (f"WHERE c.school_id = 'B001' AND c.state IN ('submitted', 'draft', 'approved') "
                              f"AND (c.state_entered_at > {at} OR (c.state_entered_at = {at} AND c.id > '{cid}')) "
                              "ORDER BY c.state_entered_at, c.id LIMIT 11")
    search = list_head + ("WHERE c.school_id = 'B001' AND (c.student_id IN (SELECT p.id FROM parties p WHERE p.kind = 'student' "
                          "AND (LOWER(p.name) LIKE '%同学1234%' ESCAPE '\\' OR LOWER(p.student_number) LIKE '%同学1234%' ESCAPE '\\')) "
                          "OR c.employer_id IN (SELECT p.id FROM parties p WHERE p.kind = 'employer' "
                          "AND LOWER(p.name) LIKE '%同学1234%' ESCAPE '\\')) "
                          "ORDER BY c.id LIMIT 51")
    q = urllib.parse.quote
    cases = [
        ("statistics, one school (10,000)", "/api/v1/statistics/destinations?group_by=college", reviewer, stats_school),
        ("statistics, province (1,000,000)", "/api/v1/statistics/destinations?group_by=school", admin, stats_province),
        ("inbox page 1 (submitted, waiting)", "/api/v1/cases?state=submitted&sort=waiting&limit=50", reviewer, inbox_1),
        ("inbox page 1,000 (10 a page)", f"/api/v1/cases?state=submitted,draft,approved&sort=waiting&limit=10&cursor={q(cursor)}",
         reviewer, inbox_1000),
        ("text search (name)", f"/api/v1/cases?q={q('同学1234')}&limit=50", reviewer, search),
    ]
    print(f"\n{'query':36} {'HTTP p50':>9} {'HTTP p99':>9} {'SQL p50':>9} {'SQL p99':>9}   (ms, {RUNS} runs each)")
    plans = []
    for name, path, tok, sql in cases:
        http_ms = []
        # A new connection per query: the server closes one left idle while psql runs.
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
        for i in range(WARMUP + RUNS):
            t = time.perf_counter()
            conn.request("GET", path, headers={"Authorization": f"Bearer {tok}"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                sys.exit(f"{name}: {resp.status} {body[:300]!r}")
            if i >= WARMUP:
                http_ms.append((time.perf_counter() - t) * 1000)
        # The session as the store runs it: no JIT (the server's connections), and the
        # province merged rather than hashed (the store's SET LOCAL for that statement).
        settings = "SET jit = off;\n" + ("SET enable_hashjoin = off;\n" if sql is stats_province else "")
        script = settings + "\\timing on\n" + "\n".join([f"{sql};"] * (WARMUP + RUNS)) + "\n"
        out = subprocess.run(["psql", url, "-X", "-q", "-o", "/dev/null"], input=script, capture_output=True, text=True,
                             check=True).stdout
        sql_ms = [float(m) for m in re.findall(r"Time: ([0-9.]+) ms", out)][WARMUP:]
        print(f"{name:36} {percentile(http_ms, 50):9.2f} {percentile(http_ms, 99):9.2f} "
              f"{percentile(sql_ms, 50):9.2f} {percentile(sql_ms, 99):9.2f}")
        plans.append((name, subprocess.run(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1"],
                                           input=settings + "EXPLAIN (ANALYZE, BUFFERS) " + sql + ";\n",
                                           capture_output=True, text=True, check=True).stdout))
    for name, plan in plans:
        print(f"\n--- EXPLAIN {name}\n{plan}")


if __name__ == "__main__":
    main()
