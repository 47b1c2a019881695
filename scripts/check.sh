#!/usr/bin/env bash
# The test tiers, each closing with one line `N passed, N failed` summing
# every suite it ran:
#
#   scripts/check.sh fast    unit, style, KUnit and a VM smoke test: for
#                            iteration (make check-fast, under 10 minutes)
#   scripts/check.sh check   what CI runs (make check, under 30 minutes):
#                            for every capability its essential cases, each
#                            failure mode once, short
#   scripts/check.sh full    every test with its long variants (make
#                            check-full, run by hand, quoted in notes)
#
# Suites, cheapest first: the build, GoogleTest (CTest), kernel style
# (checkpatch, sparse, clang-format), KUnit on UML, the integration tests
# inside one test VM (tests/vm), the cross-machine scenarios on a cluster
# of VMs (tests/cluster, scripts/vm-cluster.sh), and the crash tests
# (tests/crash: the host boots the VM more than once).
#
# Each test file names its tier in its leading comments, `# tier: fast`,
# `# tier: check` or `# tier: full`, with what it costs; a tier runs the
# tests of its own tier and of the tiers below it (fast < check < full).
# Tests see CVM_TIER and run their long variants only under full.  The
# summary gives each suite's time and each VM test's and scenario's.  A
# suite that cannot run counts as failed, never as skipped.
set -uo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$TOP"
BUILD=${BUILD:-build}
LOGDIR=$BUILD/check
mkdir -p "$LOGDIR"
. scripts/test-tier.sh

tier=${1:-check}
case "$tier" in
fast | check | full) ;;
*) echo "check.sh: tier must be fast, check or full, not '$tier'" >&2; exit 2 ;;
esac
export CVM_TIER=$tier

total_pass=0 total_fail=0 summary=() details=()
t_all=$SECONDS

# count SUITE PASSED FAILED SECONDS
count() {
	total_pass=$((total_pass + $2))
	total_fail=$((total_fail + $3))
	summary+=("$(printf '%-10s %5ss  %4d passed, %d failed' "$1" "$4" "$2" "$3")")
}

# The last `N passed, N failed` line a suite printed.
closing_counts() {
	grep -Eo '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1 |
		sed -E 's/([0-9]+) passed, ([0-9]+) failed/\1 \2/'
}

run_suite() {
	local name=$1 log=$LOGDIR/$1.log rc counts secs
	shift
	echo "==== $name: $*"
	local start=$SECONDS
	"$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	secs=$((SECONDS - start))
	counts=$(closing_counts "$log")
	if [[ -z "$counts" ]]; then
		echo "==== $name: no result line (exit $rc): counted as one failure"
		count "$name" 0 1 "$secs"
	else
		# shellcheck disable=SC2086
		count "$name" $counts "$secs"
		if ((rc != 0)) && [[ "${counts#* }" == 0 ]]; then
			echo "==== $name: exit $rc with no failed test: counted as one failure"
			count "$name-exit" 0 1 0
		fi
	fi
	# Per-test times: run-in-vm.sh's and cluster_scenarios' result lines.
	while IFS= read -r l; do
		details+=("  $l")
	done < <(grep -E '^--- (PASS|FAIL) ' "$log" | sed 's/^--- //')
	echo "==== $name: ${secs}s"
}

build() {
	if make -s all >"$LOGDIR/build.out" 2>&1; then
		echo "1 passed, 0 failed"
	else
		tail -n 40 "$LOGDIR/build.out"
		echo "0 passed, 1 failed"
		return 1
	fi
}

# GoogleTest under CTest; CTest's own summary becomes our closing line.
unit_tests() {
	local out rc
	out=$(ctest --test-dir "$BUILD/userspace" --output-on-failure -j 2 2>&1)
	rc=$?
	echo "$out"
	echo "$out" | sed -nE 's/^[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\2 \1/p' |
		tail -n 1 | { read -r total fail && echo "$((total - fail)) passed, $fail failed"; }
	return $rc
}

# The VM tests of this tier, in one VM.
vm_tests() {
	local tests=() t
	for t in tests/vm/*.sh; do
		in_tier "$t" && tests+=("$t")
	done
	scripts/vm-run.sh --quiet --timeout 4500 \
		env CVM_TIER="$tier" tests/run-in-vm.sh "${tests[@]}"
}

# The harness's own tests (tests/harness, on the host), then each
# cross-machine scenario of this tier on a cluster of its own (its
# `# cluster:` line gives the cluster's shape).
cluster_scenarios() {
	local t passed=0 failed=0 start rc name
	for t in tests/harness/*.sh tests/cluster/*.sh; do
		in_tier "$t" || continue
		name=$(basename "$t" .sh)
		echo "=== $name"
		start=$SECONDS
		if [[ $t == tests/harness/* ]]; then
			timeout -k 10 600 bash "$t"
		else
			scripts/vm-cluster.sh --timeout "$([[ $tier == full ]] && echo 3600 || echo 1200)" "$t"
		fi
		rc=$?
		if ((rc == 0)); then
			echo "--- PASS $name ($((SECONDS - start))s)"
			passed=$((passed + 1))
		else
			echo "--- FAIL $name (exit $rc, $((SECONDS - start))s)"
			failed=$((failed + 1))
		fi
	done
	echo "$passed passed, $failed failed"
	((failed == 0))
}

# The crash tests: check runs one device loss per crash image, full all.
crash_tests() {
	local lost="0 6"
	[[ $tier == full ]] && lost="0 1 2 3 4 5 6"
	CRASH_LOST=$lost tests/crash/ec_write_hole.sh
}

run_suite build build
if ((total_fail)); then
	echo "==== the build failed: nothing else runs"
else
	run_suite unit unit_tests
	run_suite style scripts/kernel-style.sh
	run_suite kunit scripts/kunit.sh
	run_suite vm vm_tests
	if [[ $tier != fast ]]; then
		run_suite cluster cluster_scenarios
		run_suite crash crash_tests
	fi
fi

echo
echo "==== summary: make check tier '$tier', $((SECONDS - t_all))s"
printf '%s\n' "${summary[@]}"
if ((${#details[@]})); then
	echo "per test:"
	printf '%s\n' "${details[@]}"
fi
echo "$total_pass passed, $total_fail failed"
((total_fail == 0))
