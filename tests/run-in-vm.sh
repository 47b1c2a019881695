#!/bin/bash
# Runs integration tests INSIDE the test VM (scripts/vm-run.sh starts it):
#
#   scripts/vm-run.sh tests/run-in-vm.sh [tests/vm/NAME.sh ...]
#
# With no arguments every tests/vm/*.sh runs, in name order.  Each test is a
# script that exits 0 on success.  The kernel log is cleared before each test
# and checked after it, so an oops, BUG, WARNING or sanitizer report fails the
# test that caused it even when the script itself passed.
set -u
top=${CVM_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$top" || exit 1
if [[ -z "${CVM_IN_VM:-}" ]]; then
	echo "run-in-vm: run me inside the test VM: scripts/vm-run.sh $0" >&2
	exit 2
fi
per_test_timeout=${CVM_TEST_TIMEOUT:-900}
bad='Oops|BUG:|WARNING:|KASAN|UBSAN|general protection fault|kernel BUG|list_(add|del) corruption|refcount_t:|INFO: task .* blocked'

tests=("$@")
((${#tests[@]})) || tests=(tests/vm/*.sh)
passed=0 failed=0 failures=()
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	echo "=== $name"
	dmesg -C
	start=$(date +%s)
	timeout -s KILL "$per_test_timeout" bash "$t"
	rc=$?
	secs=$(($(date +%s) - start))
	if dmesg | grep -Eq "$bad"; then
		echo "--- $name: kernel reported a problem:"
		dmesg | grep -E -A 20 "$bad" | head -n 60
		((rc == 0)) && rc=99
	fi
	if ((rc == 0)); then
		echo "--- PASS $name (${secs}s)"
		passed=$((passed + 1))
	else
		((rc == 137)) && echo "--- $name: timed out after ${per_test_timeout}s"
		echo "--- FAIL $name (exit $rc, ${secs}s)"
		failed=$((failed + 1))
		failures+=("$name")
	fi
done
((failed)) && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
((failed == 0))
