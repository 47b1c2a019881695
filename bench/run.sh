#!/usr/bin/env bash
# `make bench`, the host side: boots one test VM that runs bench/run-in-vm.sh,
# takes the results JSON out of the VM's output (stdout is the only channel
# out of the guest: its root is a tmpfs overlay), saves it as
# bench/results/<UTC timestamp>.json and prints the tables.
#
#   BENCH_RUNTIME, BENCH_REPEAT, BENCH_DEVICES   passed into the VM
#                                                (see bench/run-in-vm.sh)
#   BENCH_VM_TIMEOUT   seconds before the VM is killed (default: from the
#                      runtime and repeat count, at least 1200)
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

runtime=${BENCH_RUNTIME:-10}
repeat=${BENCH_REPEAT:-1}
[[ "$runtime" =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_RUNTIME wants seconds" >&2; exit 2; }
[[ "$repeat" =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_REPEAT wants a count" >&2; exit 2; }
# 4 devices x 6 jobs, each job plus ~5 s of fio start-up under TCG, plus
# boot and set-up; generous, since a hung guest is killed anyway.
timeout=${BENCH_VM_TIMEOUT:-$((300 + 4 * 6 * (runtime + 5) * repeat * 2))}
((timeout >= 1200)) || timeout=1200

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ "$commit" != unknown ]] && ! git diff --quiet HEAD 2>/dev/null; then
	commit+="-dirty"
fi

vm_env=(BENCH_RUNTIME="$runtime" BENCH_REPEAT="$repeat" BENCH_TABLE=0
	BENCH_COMMIT="$commit")
[[ -n "${BENCH_DEVICES:-}" ]] && vm_env+=(BENCH_DEVICES="$BENCH_DEVICES")

mkdir -p bench/results
log=$(mktemp)
trap 'rm -f "$log"' EXIT

begin=@@CVM-BENCH-JSON-BEGIN@@
end=@@CVM-BENCH-JSON-END@@
# Show the VM's progress live, but not the JSON block: it is saved instead.
set +e
scripts/vm-run.sh --timeout "$timeout" -- env "${vm_env[@]}" bench/run-in-vm.sh 2>&1 |
	tee "$log" |
	awk -v b="$begin" -v e="$end" '
		$0 == b { skip = 1; print "(results JSON received)"; fflush(); next }
		$0 == e { skip = 0; next }
		!skip { print; fflush() }'
rc=${PIPESTATUS[0]}
set -e

json=$(awk -v b="$begin" -v e="$end" '$0 == e { f = 0 } f { print } $0 == b { f = 1 }' "$log")
if [[ -z "$json" ]] || ! grep -qx "$end" "$log"; then
	echo "bench: no complete results in the VM's output (vm-run.sh exit $rc)" >&2
	((rc)) && exit "$rc"
	exit 1
fi
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ).json
printf '%s\n' "$json" >"$out"
echo
python3 bench/report.py table "$out"
echo
echo "bench: results in $out"
if ((rc)); then
	echo "bench: but the VM run failed (exit $rc): see above" >&2
	exit "$rc"
fi
