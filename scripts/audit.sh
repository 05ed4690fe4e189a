#!/usr/bin/env bash
# The hardening audit against the release binary, on SQLite and on PostgreSQL:
# scripts/audit.py (bad input at every route, raw requests) and schemathesis (every
# check, all phases) against /openapi.json. Prints the counts of each run; exits 1 if
# any run found a 5xx or a contract failure.
#
#   cargo build --release && scripts/audit.sh
#
# Needs python3, schemathesis (pip install schemathesis==4.32.5) and, for the
# PostgreSQL run, a server at 127.0.0.1:5432 (user postgres, trust auth).
set -uo pipefail
cd "$(dirname "$0")/.."

BIN="${GRADSIGN_BIN:-${CARGO_TARGET_DIR:-target}/release/gradsign}"
EXAMPLES="${AUDIT_EXAMPLES:-50}"
[ -x "$BIN" ] || { echo "build first: cargo build --release ($BIN)" >&2; exit 2; }
SECRET="audit-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
failed=0

run() { # backend, database url (empty: SQLite in the data folder)
    local backend=$1 url=$2 dir port pid log
    dir=$(mktemp -d)
    log="$dir/server.log"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    env GRADSIGN_DATA_DIR="$dir/data" GRADSIGN_LISTEN="127.0.0.1:$port" GRADSIGN_JWT_SECRET="$SECRET" \
        GRADSIGN_WORKER_POLL_MS=100 ${url:+DATABASE_URL="$url"} "$BIN" serve >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
        sleep 0.2
    done
    echo "== $backend: scripts/audit.py"
    GRADSIGN_JWT_SECRET="$SECRET" python3 scripts/audit.py "http://127.0.0.1:$port" || failed=1
    echo "== $backend: schemathesis run --checks all -n $EXAMPLES"
    local admin
    admin=$(GRADSIGN_JWT_SECRET="$SECRET" GRADSIGN_DATA_DIR="$dir/data" "$BIN" dev-token --role platform_admin --days 1)
    schemathesis --config-file schemathesis.toml run "http://127.0.0.1:$port/openapi.json" --checks all --max-examples "$EXAMPLES" \
        --header "Authorization: Bearer $admin" --seed 16 --workers 2 --no-color 2>&1 | tail -n 25 || failed=1
    if grep -q "panicked" "$log"; then echo "$backend: the server log holds a panic" && failed=1; fi
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -rf "$dir"
}

run sqlite ""
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    db="gradsign_audit_$$"
    psql -h 127.0.0.1 -U postgres -d test -qc "CREATE DATABASE $db" >/dev/null
    run postgres "postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
    psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE $db WITH (FORCE)" >/dev/null
else
    echo "skipped: PostgreSQL is not reachable at 127.0.0.1:5432"
fi
exit $failed
