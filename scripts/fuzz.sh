#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time on the committed seeds
# (docs/fuzzing.md). Usage: scripts/fuzz.sh [seconds per target, default 60] [target ...]
# Needs the nightly toolchain; installs cargo-fuzz when missing. Fails when a target finds a
# crash, a hang (an input over FUZZ_TIMEOUT s, default 10) or a memory blow-up (over 2 GiB);
# the input is left in fuzz/artifacts/<target>/. Prints executions, exec/s and coverage.
# FUZZ_SKIP_BUILD=1 runs the targets already built. FUZZ_PROFILE=dev (unoptimised, debug
# assertions) and FUZZ_SANITIZER=none (default: address) make the build much cheaper: CI's
# short runs use both; long runs keep the defaults. FUZZ_RUNS=N stops each target after N
# executions instead (then pass 0 seconds for no time bound: FUZZ_RUNS=10000000 scripts/fuzz.sh 0).
# FUZZ_NO_TRACE_COMPARES=1 builds without libFuzzer's compare tracing: several times faster on
# targets that scan long inputs byte by byte (dcap_quote's PEM scan), at some loss of guidance.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${1:-60}
shift || true
TIMEOUT=${FUZZ_TIMEOUT:-10}

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "the nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    # A debug build installs in about half the time; the wrapper's own speed does not matter.
    cargo +nightly install cargo-fuzz --locked --debug
fi

# The real Intel sample quotes ship in the dcap-qvl package (version of Cargo.lock): seeds for
# the quote and evidence targets, read where cargo unpacked it.
cargo fetch --locked >/dev/null 2>&1 || true
dcap_version=$(awk '/^name = "dcap-qvl"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
samples=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/dcap-qvl-"$dcap_version"/sample 2>/dev/null | head -n 1)
[ -n "$samples" ] || { echo "dcap-qvl $dcap_version is not unpacked (cargo fetch)" >&2; exit 1; }
extra=$(mktemp -d /tmp/sms-fuzz-seeds.XXXXXX)
trap 'rm -rf "$extra"' EXIT
mkdir -p "$extra/dcap_quote" "$extra/evidence_json"
for quote in sgx_quote tdx_quote; do
    cp "$samples/$quote" "$extra/dcap_quote/$quote"
    kind=${quote%_quote}_dcap
    printf '{"kind":"%s","quote":"%s"}' "$kind" "$(base64 -w0 "$samples/$quote")" >"$extra/evidence_json/$quote"
done

cd fuzz
mkdir -p logs
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
profile=${FUZZ_PROFILE:-release}
case "$profile" in
    release) profile_flag=--release; profile_dir=release ;;
    dev) profile_flag=--dev; profile_dir=debug ;;
    *) echo "FUZZ_PROFILE must be release or dev, got '$profile'" >&2; exit 1 ;;
esac
sanitizer=${FUZZ_SANITIZER:-address}
bin=target/$(rustc +nightly -vV | awk '/^host:/ { print $2 }')/$profile_dir
if [ -z "${FUZZ_SKIP_BUILD:-}" ]; then
    echo "== fuzz build (${#targets[@]} targets, $profile, sanitizer $sanitizer)"
    build_start=$(date +%s)
    if ! cargo +nightly fuzz build "$profile_flag" --sanitizer "$sanitizer" \
        ${FUZZ_NO_TRACE_COMPARES:+--no-trace-compares} >logs/build.txt 2>&1; then
        tail -n 40 logs/build.txt >&2
        echo "fuzz build failed" >&2
        exit 1
    fi
    echo "fuzz build: $(( $(date +%s) - build_start )) s"
fi

failed=()
printf '%-22s %12s %10s %8s %8s %8s %8s %8s\n' target executions exec/s cov ft 'rss MB' 'slow s' 'wall s' >logs/summary.txt
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    dirs=("corpus/$target" "seeds/$target")
    [ -d "$extra/$target" ] && dirs+=("$extra/$target")
    bound=("-max_total_time=$SECONDS_PER_TARGET")
    [ -n "${FUZZ_RUNS:-}" ] && bound+=("-runs=$FUZZ_RUNS")
    echo "== fuzz $target (${SECONDS_PER_TARGET} s${FUZZ_RUNS:+, $FUZZ_RUNS executions})"
    status=0
    started=$(date +%s)
    "$bin/$target" "${dirs[@]}" \
        "${bound[@]}" -timeout="$TIMEOUT" -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="artifacts/$target/" \
        >"logs/$target.log" 2>&1 || status=$?
    execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "logs/$target.log" | tail -n 1)
    rate=$(awk '/stat::average_exec_per_sec/ { print $2 }' "logs/$target.log" | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+' "logs/$target.log" | tail -n 1 | cut -d' ' -f2)
    ft=$(grep -oE 'ft: [0-9]+' "logs/$target.log" | tail -n 1 | cut -d' ' -f2)
    rss=$(awk '/stat::peak_rss_mb/ { print $2 }' "logs/$target.log" | tail -n 1)
    slow=$(awk '/stat::slowest_unit_time_sec/ { print $2 }' "logs/$target.log" | tail -n 1)
    printf '%-22s %12s %10s %8s %8s %8s %8s %8s\n' "$target" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" \
        "${rss:-?}" "${slow:-?}" "$(( $(date +%s) - started ))" | tee -a logs/summary.txt
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "logs/$target.log" | head -n 20 >&2 || true
    fi
done
cat logs/summary.txt
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found failures in: ${failed[*]} (inputs in fuzz/artifacts/, logs in fuzz/logs/)" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} passed, 0 failed"
