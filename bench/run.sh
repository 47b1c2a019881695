#!/usr/bin/env bash
# `make bench`, the host side: boots one test VM that runs bench/run-in-vm.sh,
# takes the results JSON out of the VM's output (stdout is the only channel
# out of the guest: its root is a tmpfs overlay), saves it as
# bench/results/<UTC timestamp>.json and prints the tables.
#
#   BENCH_RUNTIME, BENCH_REPEAT, BENCH_PERF
#                                 passed into the VM (see bench/run-in-vm.sh)
#   BENCH_DEVICES (or DEVICES)    which devices, in order; checked here
#                                 before the VM boots
#   BENCH_VM_TIMEOUT   seconds before the VM is killed (default: from the
#                      device count, runtime and repeat count)
#   BENCH_VM_MEM       guest memory in MB (default 4096: eighteen RAM disks)
#
# The VM prints the results after every device; when it dies half-way, the
# devices measured until then are still saved (marked incomplete).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

runtime=${BENCH_RUNTIME:-5}
repeat=${BENCH_REPEAT:-3}
devices=${BENCH_DEVICES:-${DEVICES:-}}
[[ "$runtime" =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_RUNTIME wants seconds" >&2; exit 2; }
[[ "$repeat" =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_REPEAT wants a count" >&2; exit 2; }
known=$(bench/run-in-vm.sh --list)
[[ -n "$devices" ]] || devices=$known
read -r -a dev_list <<<"$devices"
for d in "${dev_list[@]}"; do
	[[ " $known " == *" $d "* ]] ||
		{ echo "bench: unknown device '$d' (known: $known)" >&2; exit 2; }
done
# Per device: up to ~90 s of set-up (a cvm cluster that does not connect
# gives up after 30 s) and preconditioning, then 6 jobs of the runtime plus
# fio's start-up under TCG; generous, since a hung guest is killed anyway
# (and usually panics first: hung tasks do after 60 s).
timeout=${BENCH_VM_TIMEOUT:-$((300 + ${#dev_list[@]} * (90 + 6 * (runtime + 10) * repeat)))}

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ "$commit" != unknown ]] && ! git diff --quiet HEAD 2>/dev/null; then
	commit+="-dirty"
fi

perf=${BENCH_PERF:-}
if [[ -n "$perf" ]] && ! bench/run-in-vm.sh --jobs | grep -qx -- "$perf"; then
	echo "bench: BENCH_PERF wants a job name (known: $(bench/run-in-vm.sh --jobs | tr '\n' ' '))" >&2
	exit 2
fi
vm_env=(BENCH_RUNTIME="$runtime" BENCH_REPEAT="$repeat" BENCH_TABLE=0
	BENCH_COMMIT="$commit" BENCH_DEVICES="${dev_list[*]}" BENCH_PERF="$perf")

mkdir -p bench/results
log=$(mktemp)
trap 'rm -f "$log"' EXIT

begin=@@CVM-BENCH-JSON-BEGIN@@
end=@@CVM-BENCH-JSON-END@@
# Show the VM's progress live, but not the JSON blocks: the last one is
# saved instead.  A read loop, not awk: mawk reads a pipe in blocks.
show_progress() {
	local line skip=0
	while IFS= read -r line; do
		case "$line" in
		"$begin") skip=1 ;;
		"$end") skip=0; echo "   (results received)" ;;
		*) ((skip)) || printf '%s\n' "$line" ;;
		esac
	done
}
set +e
scripts/vm-run.sh --timeout "$timeout" --mem "${BENCH_VM_MEM:-4096}" -- \
	env "${vm_env[@]}" bench/run-in-vm.sh 2>&1 |
	tee "$log" |
	show_progress
rc=${PIPESTATUS[0]}
set -e

# The last block that got its end marker.
json=$(awk -v b="$begin" -v e="$end" '
	$0 == b { f = 1; buf = ""; next }
	$0 == e && f { last = buf; f = 0; next }
	f { buf = buf $0 "\n" }
	END { printf "%s", last }' "$log")
if [[ -z "$json" ]]; then
	echo "bench: no results in the VM's output (vm-run.sh exit $rc)" >&2
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
