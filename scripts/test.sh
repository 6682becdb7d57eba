#!/usr/bin/env bash
# Runs the whole test suite with every real component it needs:
#   - the local chain tools (anvil + the iExec PoCo artifacts) via tools/chain/setup.sh,
#   - a throwaway PostgreSQL 15 cluster (stopped and removed on exit).
# Extra arguments go to `cargo nextest run` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x tools/chain/setup.sh ]; then
    tools/chain/setup.sh
fi

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
if [ -z "${SMS_TEST_POSTGRES_URL:-}" ]; then
    [ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL server binaries not found (set PG_BIN)" >&2; exit 1; }
    PG_DIR=$(mktemp -d /tmp/sms-pg.XXXXXX)
    chown -R postgres "$PG_DIR" 2>/dev/null || true
    run_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
    run_pg "'$PG_BIN/initdb' -D '$PG_DIR/data' -A trust -U sms --no-sync >/dev/null"
    PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    run_pg "'$PG_BIN/pg_ctl' -D '$PG_DIR/data' -l '$PG_DIR/log' -w -o \"-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on\" start >/dev/null"
    trap 'run_pg "\"$PG_BIN/pg_ctl\" -D \"$PG_DIR/data\" -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$PG_DIR"' EXIT
    export SMS_TEST_POSTGRES_URL="postgres://sms@127.0.0.1:$PG_PORT/postgres"
fi

if [ "$#" -eq 0 ]; then set -- --workspace; fi
cargo nextest run --no-fail-fast "$@"
