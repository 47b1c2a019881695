#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 80 s: three small clusters, no cvm modules)
#
# The test cluster harness itself (scripts/vm-cluster.sh), on the HOST:
#  1. two guests: each has its own name and address and reaches the other
#     over the switch; a disk file keeps what was written across a power
#     cut; a WARNING on a guest's console that the scenario never looked
#     at fails the run, naming the guest and showing its console;
#  2. a guest that panics fails the command that was running and the run;
#  3. a command that never ends is stopped by guest_run's timeout, and a
#     scenario that never ends by the run's --timeout, with every QEMU and
#     the switch gone afterwards.
# Prints `N passed, N failed`.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
. "$top/tests/lib/check.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# cluster LOG ARGS...: run vm-cluster.sh, its output in LOG; its status.
cluster() {
	local log=$1
	shift
	local rc
	scripts/vm-cluster.sh --no-modules "$@" >"$log" 2>&1
	rc=$?
	# A failed run keeps its directory; these fail on purpose.
	sed -n 's/^vm-cluster: run directory kept: //p' "$log" | xargs -r rm -rf
	return $rc
}
said() { grep -Eq -- "$2" "$1" || { tail -n 30 "$1"; return 1; }; }

cat >"$work/two.sh" <<'EOF'
. scripts/vm-cluster-lib.sh
. tests/lib/check.sh
check "names and addresses" guest_run 1 \
	'[[ $(hostname) == cvm-g1 ]] && ip -br addr show eth0 | grep -q 10.99.1.2/24'
guest_run 0 'python3 -c "
import socket
s = socket.socket(); s.bind((\"10.99.1.1\", 9000)); s.listen()
c, a = s.accept(); c.sendall(a[0].encode())" >/tmp/srv.out 2>&1 &'
check "guest 1 reaches guest 0 over the switch" guest_wait 1 30 \
	'[[ $(python3 -c "import socket; print(socket.create_connection((\"cvm-g0\", 9000), 2).recv(64).decode())") == 10.99.1.2 ]]'
check "write a pattern to guest 0's disk" guest_run 0 \
	'printf cvm-harness-%s 42 | dd of=/dev/vda conv=fsync status=none'
check "power cut" guest_poweroff 0
check "boot again" guest_boot 0
check "the disk kept it" guest_run 0 \
	'[[ $(head -c 15 /dev/vda) == cvm-harness-42 ]]'
guest_run 1 'echo "<4>WARNING: CPU: 0 PID: 1 at harness self-test" >/dev/kmsg'
check_summary
EOF
cluster "$work/two.log" --guests 2 "$work/two.sh"
rc=$?
grep -E '^(ok|FAIL)' "$work/two.log"
check "two guests: every scenario check passed" said "$work/two.log" '^[1-9][0-9]* passed, 0 failed'
check "two guests: a WARNING nobody checked fails the run (exit $rc)" eval "((rc == 126))"
check "two guests: the report names guest 1 and shows its console" \
	said "$work/two.log" 'guest 1 \(cvm-g1\) kernel reported a problem'

cat >"$work/panic.sh" <<'EOF'
. scripts/vm-cluster-lib.sh
guest_run 0 'echo c >/proc/sysrq-trigger; sleep 60'
echo "guest_run status $?"
EOF
cluster "$work/panic.log" --guests 1 "$work/panic.sh"
rc=$?
check "panic: guest_run says the guest died (125)" said "$work/panic.log" 'guest_run status 125'
check "panic: the console is shown" said "$work/panic.log" 'Kernel panic|sysrq: Trigger a crash'
check "panic: the run fails (exit $rc)" eval "((rc != 0))"

cat >"$work/hang.sh" <<'EOF'
. scripts/vm-cluster-lib.sh
guest_run 0 --timeout 3 'sleep 600'
echo "guest_run status $?"
sleep 600
EOF
t0=$SECONDS
cluster "$work/hang.log" --guests 1 --timeout 20 "$work/hang.sh"
rc=$?
check "hang: guest_run stops waiting after its timeout (124)" said "$work/hang.log" 'guest_run status 124'
check "hang: the run stops at --timeout (exit $rc, $((SECONDS - t0)) s)" eval "((rc == 124))"
check "hang: no QEMU or switch of the run is left" \
	eval "! pgrep -f 'build/cluster/run\.' >/dev/null"
check_summary
