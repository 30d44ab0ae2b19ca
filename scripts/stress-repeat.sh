#!/usr/bin/env bash
# Repeats `edesk bench intake --clients 8 --messages 3000 --json --verify` N
# times, each on a fresh data directory with a daemon of its own, and sums up
# hangs, lost and duplicated messages and the accepted messages/s.
#
#   scripts/stress-repeat.sh [N]          (default 5)
#
# Extra bench flags can be passed in BENCH_ARGS, e.g. BENCH_ARGS="--orders 200".
# Each run's JSON goes to $OUT (default target/stress-repeat/run-K.json), the
# daemon of a failed run keeps its data directory (path in the JSON).
# Exit status: 0 when every run passed.
set -euo pipefail

n="${1:-5}"
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
out="${OUT:-$target/stress-repeat}"
mkdir -p "$out"

cargo build --release --bin edesk
bin="$target/release/edesk"

hangs=0 failed=0 lost=0 dup=0
rates=() hung_rates=()
for k in $(seq 1 "$n"); do
    json="$out/run-$k.json"
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
    if "$bin" bench intake --clients 8 --messages 3000 --json --verify ${BENCH_ARGS:-} \
        >"$json" 2>"$out/run-$k.log"; then
        status=ok
    else
        status=FAIL
        failed=$((failed + 1))
    fi
    if ! jq -e . "$json" >/dev/null 2>&1; then
        echo "run $k: no JSON report (see $out/run-$k.log)"
        continue
    fi
    stalled=$(jq -r '.stalled' "$json")
    # After a hang nothing is verified: "-" rather than a reassuring 0.
    l=$(jq -r 'if .verify then [.verify.lost, .verify_after_restart.lost // 0] | max else "-" end' "$json")
    d=$(jq -r 'if .verify then [.verify.duplicated, .verify_after_restart.duplicated // 0] | max else "-" end' "$json")
    rate=$(jq -r '.accepted_per_sec' "$json")
    if [ "$stalled" = true ]; then
        hangs=$((hangs + 1))
        hung_rates+=("$rate")
    else
        rates+=("$rate")
    fi
    [ "$l" = - ] || lost=$((lost + l))
    [ "$d" = - ] || dup=$((dup + d))
    echo "run $k: $status acknowledged=$(jq -r .acknowledged "$json")/3000 stalled=$stalled lost=$l duplicated=$d rate=${rate}/s p99=$(jq -r .latency_ms.p99 "$json")ms $(jq -r '.problems | join("; ")' "$json")"
done

# min/median/max of a list of rates, one per line on stdin.
stats() {
    sort -g | awk -v what="$1" 'NF {
        v[++n] = $1
    } END {
        if (n == 0) { printf "%s: none\n", what; exit }
        m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        printf "%s (%d runs): min %.1f, median %.1f, max %.1f\n", what, n, v[1], m, v[n]
    }'
}
echo "----"
echo "runs: $n, failed: $failed, hangs: $hangs, lost: $lost, duplicated: $dup (verified runs only)"
printf '%s\n' "${rates[@]:-}" | stats "accepted messages/s, completed runs"
if [ "$hangs" -gt 0 ]; then
    printf '%s\n' "${hung_rates[@]}" | stats "accepted messages/s until the hang"
fi
echo "reports: $out"
[ "$failed" -eq 0 ]
