#!/usr/bin/env bash
# `make check`: every suite, then one closing line `N passed, N failed`
# summing them all.  Suites: GoogleTest (CTest), KUnit on UML, kernel style
# (checkpatch, sparse), the integration tests inside the test VM, and the
# crash tests (tests/crash: the host boots the VM more than once).
# Run after `make all`.  A suite that cannot run counts as failed, never as
# skipped.
set -uo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$TOP"
BUILD=${BUILD:-build}
LOGDIR=$BUILD/check
mkdir -p "$LOGDIR"

total_pass=0 total_fail=0 summary=()

# count SUITE PASSED FAILED
count() {
	total_pass=$((total_pass + $2))
	total_fail=$((total_fail + $3))
	summary+=("$(printf '%-12s %4d passed, %d failed' "$1" "$2" "$3")")
}

# The last `N passed, N failed` line a suite printed.
closing_counts() {
	grep -Eo '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1 |
		sed -E 's/([0-9]+) passed, ([0-9]+) failed/\1 \2/'
}

run_suite() {
	local name=$1 log=$LOGDIR/$1.log rc counts
	shift
	echo "==== $name: $*"
	local start=$SECONDS
	"$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	counts=$(closing_counts "$log")
	if [[ -z "$counts" ]]; then
		echo "==== $name: no result line (exit $rc): counted as one failure"
		count "$name" 0 1
	else
		# shellcheck disable=SC2086
		count "$name" $counts
		if ((rc != 0)) && [[ "${counts#* }" == 0 ]]; then
			echo "==== $name: exit $rc with no failed test: counted as one failure"
			count "$name-exit" 0 1
		fi
	fi
	echo "==== $name: $((SECONDS - start))s"
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

run_suite unit unit_tests
run_suite kunit scripts/kunit.sh
run_suite style scripts/kernel-style.sh
run_suite vm scripts/vm-run.sh --timeout 4500 tests/run-in-vm.sh
# Two boots over the same disk files: an initiator crash, then recovery.
run_suite crash tests/crash/ec_write_hole.sh

echo
echo "==== summary"
printf '%s\n' "${summary[@]}"
echo "$total_pass passed, $total_fail failed"
((total_fail == 0))
