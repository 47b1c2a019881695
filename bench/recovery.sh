#!/usr/bin/env bash
# `make bench`'s recovery run, the host side: boots one test VM running
# bench/recovery-in-vm.sh, prints its report and saves its JSON as
# bench/results/<UTC timestamp>-recovery.json.
#
#   BENCH_RUNTIME  seconds per fio run (default 10)
#   BENCH_REC_MIB  volume size in MiB (default 128)
#   BENCH_RESYNC_MIN_RATE  cvm.resync_min_rate for the run (KiB/s)
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
scripts/vm-run.sh --timeout 1500 --mem 4096 -- \
	env BENCH_RUNTIME="${BENCH_RUNTIME:-10}" BENCH_REC_MIB="${BENCH_REC_MIB:-128}" \
	BENCH_COMMIT="$commit" BENCH_RESYNC_MIN_RATE="${BENCH_RESYNC_MIN_RATE:-}" \
	bench/recovery-in-vm.sh 2>&1 | tee "$log" |
	grep -v '^@@CVM-BENCH-JSON' | grep -v '^{"kind": "recovery"'
rc=${PIPESTATUS[0]}
set -e
json=$(awk '$0 == "@@CVM-BENCH-JSON-BEGIN@@" { f = 1; next }
	$0 == "@@CVM-BENCH-JSON-END@@" { f = 0; next } f' "$log")
if [[ -z "$json" ]]; then
	echo "bench: no recovery results in the VM's output (vm-run.sh exit $rc)" >&2
	exit $((rc ? rc : 1))
fi
mkdir -p bench/results
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-recovery.json
printf '%s\n' "$json" >"$out"
echo "bench: recovery results in $out"
exit "$rc"
