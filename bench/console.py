#!/usr/bin/env python3
"""The console's pages with 10,000 cases in the school (PostgreSQL): p50 / p99 per page.

    python3 bench/console.py [--bin target/debug/gradsign] [--pg postgres://postgres@127.0.0.1:5432]

Creates a fresh database `gradsign_bench_console`, starts `gradsign serve --no-workers` on
it, bulk-loads bench/console_load.sql (one school, 10,000 graduates and cases, 30,000
history rows), signs in through the console's own form, then requests each page 200 times
after 20 warm-up requests on one keep-alive connection. The time is the client's, on
loopback: the server's time plus a fraction of a millisecond of socket work.
"""

import argparse
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

from _common import ROOT, SECRET, dev_token, percentile, psql

DB = "gradsign_bench_console"
RUNS = 200
WARMUP = 20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "gradsign"))
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    ap.add_argument("--port", type=int, default=0, help="default: a free port")
    args = ap.parse_args()
    if not args.port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            args.port = s.getsockname()[1]
    url = f"{args.pg}/{DB}"
    psql(args.pg + "/postgres", f"DROP DATABASE IF EXISTS {DB}")
    psql(args.pg + "/postgres", f"CREATE DATABASE {DB}")
    data = tempfile.mkdtemp(prefix="gradsign-bench-console-")
    env = dict(os.environ, DATABASE_URL=url, GRADSIGN_JWT_SECRET=SECRET, GRADSIGN_DATA_DIR=data,
               GRADSIGN_LISTEN=f"127.0.0.1:{args.port}", GRADSIGN_WORKFLOWS_DIR=os.path.join(ROOT, "workflows"),
               GRADSIGN_TEMPLATES_DIR=os.path.join(ROOT, "templates"), GRADSIGN_WORKERS_DIR=os.path.join(ROOT, "workers"),
               GRADSIGN_VERIFY_PER_MINUTE="100000", RUST_LOG="warn")
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
        # The server migrates and publishes its workflows as it starts.
        for _ in range(600):
            try:
                if psql(url, "SELECT count(*) > 0 FROM workflow_active", "-t").strip() == "t":
                    break
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.1)
        subprocess.run(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f",
                        os.path.join(ROOT, "bench", "console_load.sql")], check=True)
        print(psql(url, "SELECT (SELECT count(*) FROM cases WHERE school_id = 'B001') AS cases, "
                        "(SELECT count(*) FROM history) AS history", "-t").strip(), "(cases | history rows)")
        run(args, env)
    finally:
        server.terminate()
        server.wait()


def run(args, env):
    reviewer = dev_token(args.bin, env, "school_reviewer", "B001")
    school_admin = dev_token(args.bin, env, "school_admin", "B001")
    admin = dev_token(args.bin, env, "platform_admin")
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)

    def get(path, tok, accept="text/html"):
        headers = {"Accept": accept}
        if tok and path.startswith("/api/"):
            headers["Authorization"] = f"Bearer {tok}"
        elif tok:
            headers["Cookie"] = f"gradsign_session={tok}"
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()

    # The 21st inbox page: the cursor of page 20's last row.
    status, body = get("/console/inbox", reviewer)
    assert status == 200, body[:300]
    after = None
    path = "/console/inbox"
    for _ in range(20):
        status, body = get(path, reviewer)
        text = body.decode()
        marker = 'href="/console/inbox?after='
        if marker not in text:
            break
        after = text.split(marker, 1)[1].split('"', 1)[0]
        path = f"/console/inbox?after={after}"
    q = urllib.parse.quote
    pages = [
        ("inbox, page 1", "/console/inbox", reviewer),
        ("inbox, page 21 (cursor)", path, reviewer),
        ("inbox, search 同学1234", f"/console/inbox?q={q('同学1234')}", reviewer),
        ("inbox, college filter", f"/console/inbox?college={q('学院3')}", reviewer),
        ("case page", "/console/cases/c00001234", reviewer),
        ("statistics (school admin)", "/console/statistics", school_admin),
        ("overdue (school admin)", "/console/overdue", school_admin),
        ("mail log (platform admin)", "/console/mail", admin),
        ("queues (platform admin)", "/console/queues", admin),
        ("definitions list", "/console/definitions", admin),
        ("definition + graph + source", "/console/definitions/destination_registration", admin),
        ("verify page (no such number)", "/verify/2026-B001-000001-A?code=ABCDEF", None),
        ("sign-in page", "/console/signin", None),
        # The JSON API's answers to the same reads, for the console's own share.
        ("API: inbox's list (same query)", "/api/v1/cases?state=submitted&sort=waiting&limit=51", reviewer),
        ("API: the case", "/api/v1/cases/c00001234", reviewer),
        ("API: statistics by college", "/api/v1/statistics/destinations?group_by=college", school_admin),
    ]
    print(f"\n{'page':34} {'p50 ms':>8} {'p99 ms':>8} {'bytes':>8}   ({RUNS} runs each, {WARMUP} warm-up)")
    for name, path, tok in pages:
        times = []
        size = 0
        for i in range(WARMUP + RUNS):
            t = time.perf_counter()
            status, body = get(path, tok)
            elapsed = (time.perf_counter() - t) * 1000
            if status != 200:
                sys.exit(f"{name}: {status} {body[:300]!r}")
            size = len(body)
            if i >= WARMUP:
                times.append(elapsed)
        print(f"{name:34} {percentile(times, 50):8.2f} {percentile(times, 99):8.2f} {size:8d}")


if __name__ == "__main__":
    main()
