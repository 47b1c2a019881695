#!/bin/bash
# Runs integration tests INSIDE the test VM (scripts/vm-run.sh starts it):
#
#   scripts/vm-run.sh tests/run-in-vm.sh [tests/vm/NAME.sh ...]
#
# With no arguments every tests/vm/*.sh runs, in name order.  Each test is a
# script that exits 0 on success.  The kernel log is cleared before each test
# and checked after it, so an oops, BUG, WARNING or sanitizer report fails the
# test that caused it even when the script itself passed.
#
# Transports: a test that says, in its leading comment block,
#
#	# transports: tcp rdma
#
# runs once per transport named, with CVM_TRANSPORT exported (tests/lib/
# cvm_vm.sh: cvm_transport, cvm_addr); its runs are NAME[tcp], NAME[rdma],
# each passes or fails and is counted on its own.  A test without that
# line runs once, as NAME, over tcp.  A transport may name the tier its
# run belongs to, `# transports: tcp rdma(full)`: that run is left out
# below that tier (CVM_TIER: fast < check < full; scripts/test-tier.sh),
# as the tests of other tiers are left out by scripts/check.sh.
# CVM_TRANSPORTS="rdma" (a list) runs only those transports, and skips
# the tests that declare none of them.
# vm-run.sh does not pass the host's environment on; set it in the guest:
#
#	scripts/vm-run.sh env CVM_TRANSPORTS=rdma tests/run-in-vm.sh tests/vm/initiator_fio.sh
set -u
top=${CVM_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$top" || exit 1
. scripts/test-tier.sh
if [[ -z "${CVM_IN_VM:-}" ]]; then
	echo "run-in-vm: run me inside the test VM: scripts/vm-run.sh $0" >&2
	exit 2
fi
per_test_timeout=${CVM_TEST_TIMEOUT:-1200}
# The kernel log lines that fail a test: the same the host's runners use.
. scripts/vm-lib.sh
bad=$CVM_VM_BAD

# transports_of TEST: the transports TEST declares ("# transports:" in its
# leading comment block), "-" when it declares none.
transports_of() {
	local t
	t=$(sed -n '/^[^#]/q; s/^# transports:[[:space:]]*//p' "$1")
	echo "${t:--}"
}

# wanted TRANSPORT: not ruled out by CVM_TRANSPORTS.
wanted() {
	[[ -z "${CVM_TRANSPORTS:-}" || " ${CVM_TRANSPORTS//,/ } " == *" $1 "* ]]
}

# run_test TEST NAME TRANSPORT: one run, counted.
run_test() {
	local t=$1 name=$2 rc start secs
	echo "=== $name"
	dmesg -C
	start=$(date +%s)
	CVM_TRANSPORT=$3 timeout -s KILL "$per_test_timeout" bash "$t"
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
}

tests=("$@")
((${#tests[@]})) || tests=(tests/vm/*.sh)
passed=0 failed=0 failures=()
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	declared=$(transports_of "$t")
	if [[ "$declared" == - ]]; then
		if wanted tcp; then
			run_test "$t" "$name" tcp
		else
			echo "=== $name: skipped (tcp only; CVM_TRANSPORTS=$CVM_TRANSPORTS)"
		fi
		continue
	fi
	ran=0
	for tr in $declared; do
		tr_tier=check
		if [[ "$tr" == *"("*")" ]]; then
			tr_tier=${tr#*(} tr_tier=${tr_tier%)} tr=${tr%%(*}
		fi
		wanted "$tr" || continue
		if (($(_tier_rank "$tr_tier") > $(_tier_rank "${CVM_TIER:-check}"))); then
			echo "=== ${name}[$tr]: in tier $tr_tier, not ${CVM_TIER:-check}"
			ran=1
			continue
		fi
		run_test "$t" "${name}[$tr]" "$tr"
		ran=1
	done
	((ran)) ||
		echo "=== $name: skipped (transports $declared; CVM_TRANSPORTS=$CVM_TRANSPORTS)"
done
((failed)) && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
((failed == 0))
