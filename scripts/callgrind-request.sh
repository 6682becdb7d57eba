#!/usr/bin/env bash
# User-space instructions (callgrind Ir) per existence check: the release server
# (`sms server --dev`, rate limits off as in `sms bench`) against the bare axum handler
# (`sms-bench --serve-bare`), each under valgrind with instrumentation off until warmed up.
# Prints Ir/request for both and their ratio. Instruction counts do not depend on the load of
# the machine (throughputs do). Not part of the test suite; loopback only. BENCHMARKS.md
# ("Request path and 1,000,000 secrets") uses it.
#
#   scripts/callgrind-request.sh [seconds measured, default 15]
#
# Environment: WARMUP (seconds, default 3), CONNECTIONS (wrk -c, default 8), KEEP=<dir> keeps
# the callgrind files (for callgrind_annotate --inclusive=yes), SMS / SMS_BENCH (executables).
# Needs: a release build (`cargo build --release --workspace`), valgrind (Debian `valgrind`),
# wrk (Debian `wrk`), curl.
set -euo pipefail

DURATION="${1:-15}"
WARMUP="${WARMUP:-3}"
CONNECTIONS="${CONNECTIONS:-8}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SMS_EXE="${SMS:-$ROOT/target/release/sms}"
BENCH_EXE="${SMS_BENCH:-$ROOT/target/release/sms-bench}"

for tool in valgrind callgrind_control wrk curl; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install valgrind wrk curl)" >&2; exit 1; }
done
[[ -x "$SMS_EXE" && -x "$BENCH_EXE" ]] || { echo "missing release build: cargo build --release --workspace" >&2; exit 1; }

WORK="$(mktemp -d -t sms-callgrind-XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A clean SMS_* environment, and no rate limit: one loopback client would hit it at once.
for var in $(env | sed -n 's/^\(SMS_[A-Z_]*\)=.*/\1/p'); do unset "$var"; done
export SMS_RATE_LIMIT_IP=off SMS_RATE_LIMIT_SIGNER=off

cat >"$WORK/head.lua" <<'EOF'
wrk.method = "HEAD"
EOF

# Starts `$@` under callgrind (stdout to $WORK/$label.stdout) and prints its URL once the
# start-up line `{"url": ...}` appears (valgrind makes start-up slow: up to 120 s).
start() {
  local label="$1"; shift
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/$label.callgrind" \
    "$@" >"$WORK/$label.stdout" 2>"$WORK/$label.log" &
  PIDS+=("$!")
  echo "$!" >"$WORK/$label.pid"
  for _ in $(seq 1200); do
    local url
    url="$(sed -n 's/.*"url": *"\([^"]*\)".*/\1/p' "$WORK/$label.stdout" | head -n1)"
    if [[ -n "$url" ]]; then echo "$url"; return; fi
    sleep 0.1
  done
  echo "$label printed no URL within 120 s (log: $WORK/$label.log)" >&2
  tail -n 20 "$WORK/$label.log" >&2
  exit 1
}

# Warm-up, then `DURATION` s of HEAD `$url$path` with instrumentation on; prints
# "Ir requests Ir_per_request".
measure() {
  local label="$1" url="$2" path="$3" pid
  pid="$(cat "$WORK/$label.pid")"
  local status
  status="$(curl -s -o /dev/null -w '%{http_code}' -I "$url$path")"
  [[ "$status" == 204 ]] || { echo "$label: HEAD $path answered $status, not 204" >&2; exit 1; }
  wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" -s "$WORK/head.lua" "$url$path" >/dev/null
  callgrind_control -i on "$pid" >/dev/null
  wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$WORK/head.lua" "$url$path" >"$WORK/$label.wrk"
  callgrind_control -d "$pid" >/dev/null
  callgrind_control -i off "$pid" >/dev/null
  local requests bad ir
  requests="$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$WORK/$label.wrk")"
  bad="$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$WORK/$label.wrk")"
  [[ -z "$bad" ]] || { echo "$label: $bad answers were not 2xx" >&2; cat "$WORK/$label.wrk" >&2; exit 1; }
  # The dump holds the instructions since instrumentation went on (one file per dump).
  local dump
  dump="$(ls -t "$WORK/$label.callgrind"* | head -n1)"
  ir="$(sed -n 's/^summary: *\([0-9]*\).*/\1/p;s/^totals: *\([0-9]*\).*/\1/p' "$dump" | head -n1)"
  [[ -n "$ir" && -n "$requests" && "$requests" -gt 0 ]] || { echo "$label: no Ir or no requests" >&2; exit 1; }
  if [[ -n "${KEEP:-}" ]]; then mkdir -p "$KEEP"; cp "$dump" "$KEEP/$label.callgrind"; fi
  echo "$ir $requests $((ir / requests))"
}

stop() {
  local pid
  pid="$(cat "$WORK/$1.pid")"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

# The bare handler: a route of the same shape answering 204.
bare_url="$(start bare "$BENCH_EXE" --json --serve-bare)"
bare_path="/requesters/0x1111111111111111111111111111111111111111/secrets/bench-bare"
read -r bare_ir bare_requests bare_per < <(measure bare "$bare_url" "$bare_path")
stop bare

# The SMS: one requester secret pushed (signed by a fresh wallet), then HEAD of it.
sms_url="$(start sms "$SMS_EXE" --json server --dev --data-dir "$WORK/data" --listen 127.0.0.1:0)"
IFS=$'\t' read -r push_path push_auth push_body < <("$BENCH_EXE" --presign-pushes 1)
status="$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "authorization: $push_auth" \
  --data-binary "$push_body" "$sms_url$push_path")"
[[ "$status" == 204 ]] || { echo "push answered $status, not 204 (log: $WORK/sms.log)" >&2; exit 1; }
read -r sms_ir sms_requests sms_per < <(measure sms "$sms_url" "$push_path")
stop sms

load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
ratio="$(awk -v a="$sms_per" -v b="$bare_per" 'BEGIN { printf "%.2f", a / b }')"
printf '%-12s %14s %10s %12s\n' "" "Ir" "requests" "Ir/request"
printf '%-12s %14s %10s %12s\n' "bare" "$bare_ir" "$bare_requests" "$bare_per"
printf '%-12s %14s %10s %12s\n' "sms" "$sms_ir" "$sms_requests" "$sms_per"
echo "ratio (sms / bare): $ratio   wrk -t1 -c$CONNECTIONS, ${DURATION} s; load average $load_before -> $load_after"
