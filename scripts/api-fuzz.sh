#!/usr/bin/env bash
# API fuzzing (docs/fuzzing.md): starts `sms server --dev` on a free loopback port, runs
# schemathesis (pinned, installed from PyPI in a venv under ~/.cache) against its
# /openapi.json, stops the server. Fails on a 5xx, a response that violates the document, or a
# response slower than 10 s. Usage: scripts/api-fuzz.sh [examples per operation, default 20]
# Bounded: at most API_FUZZ_MAX_TIME seconds of generation (default 120).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${1:-20}
MAX_TIME=${API_FUZZ_MAX_TIME:-120}
VENV=${SMS_SCHEMATHESIS_VENV:-$HOME/.cache/sms-schemathesis-$SCHEMATHESIS_VERSION}

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --workspace --locked --quiet
DATA=$(mktemp -d /tmp/sms-api-fuzz.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SMS_LOG=warn target/debug/sms server --dev --data-dir "$DATA" --listen "127.0.0.1:$PORT" \
    >"$DATA/server.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$DATA/server.log" >&2; exit 1; }
    sleep 0.2
done

echo "== schemathesis $SCHEMATHESIS_VERSION against http://127.0.0.1:$PORT/openapi.json"
start=$(date +%s)
status=0
# A hard bound above schemathesis' own budget: a hang fails the run. Run from the temporary
# directory: schemathesis writes its cache in the current directory.
(cd "$DATA" && timeout --kill-after=10 $((MAX_TIME + 120)) "$VENV/bin/schemathesis" --no-color run \
    "http://127.0.0.1:$PORT/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$EXAMPLES" --max-time "$MAX_TIME" --workers 1 --seed 17 \
    --request-timeout 10 --max-response-time 10 --generation-database none) \
    || status=$?
echo "schemathesis: $(( $(date +%s) - start )) s, exit $status"
if ! kill -0 "$SERVER" 2>/dev/null; then
    echo "the server died during the run:" >&2
    tail -n 50 "$DATA/server.log" >&2
    exit 1
fi
exit "$status"
