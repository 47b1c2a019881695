#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 50 s over tcp; rdma in the full tier, 55 s more;
# CVM_TEARDOWN_ROUNDS, 3 here, 12 in the full tier)
# transports: tcp rdma(full)
#
# Listener and connection teardown while the connections carry I/O: fio
# writes a replicated(3) volume while, round after round, one target's
# listener is taken down (TARGET_UNLISTEN closes every connection it
# accepted, in flight or not) and brought back, and then cvm_target.ko is
# unloaded under the live connections and loaded again.  Each must finish
# (bounded waits), cvm.ko must reconnect, and the guest kernel must report
# nothing: run-in-vm.sh fails the test on any oops, BUG (a sleep under a
# spinlock is "BUG: scheduling while atomic"), warning or list corruption.
# While one target at a time goes, fio must not notice (two replicas of
# three stay); while all go, its writes fail, and that is all.
# Runs INSIDE the test VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/target_teardown.sh
#
# Prints "N passed, N failed"; exits 0 only if every check passed.
set -u

top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
if [[ -z "${CVM_IN_VM:-}" ]]; then
	echo "target_teardown: run me inside the test VM: scripts/vm-run.sh $0" >&2
	exit 2
fi
. "$top/tests/lib/check.sh"
. "$top/tests/lib/cvm_vm.sh"

ig=(python3 "$top/tests/vm/lib/initiator_genl.py")
tg=(python3 "$top/tests/vm/lib/target_genl.py")
if [[ -n "${CVM_TEARDOWN_ROUNDS:-}" ]]; then
	ROUNDS=$CVM_TEARDOWN_ROUNDS
elif [[ ${CVM_TIER:-check} == full ]]; then
	ROUNDS=12
else
	ROUNDS=3
fi
tmp=$(mktemp -d)
fio_pid=

cleanup() {
	[[ -n "$fio_pid" ]] && kill "$fio_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

connections() { dmesg | grep -c ': connected$'; }

# reload_target: cvm_target.ko out from under live connections, and back.
reload_target() {
	local i
	timeout 60 rmmod cvm_target || { echo "rmmod cvm_target failed or hung"; return 1; }
	cvm_load cvm_target || return
	for i in 0 1 2; do
		"${tg[@]}" add $i "$(cvm_disk $i)" || return
		cvm_listen $i || return
		if [[ $(cvm_transport) != tcp ]]; then
			"${tg[@]}" listen 127.0.0.1 "$(cvm_port $i)" --transport tcp || return
		fi
	done
}

cvm_three_targets
# shellcheck disable=SC2046
check "map epoch 1" "${ig[@]}" map-set 1 $(cvm_map_paths)
minor=$("${ig[@]}" attach 1 3 $((64 << 20)))
check "attach replicated(3) volume" test -n "$minor"
check "3 connections" cvm_connected 3
# start_fio: random writes of 4-256 KiB, 16 in flight, in the background.
start_fio() {
	fio --name=teardown --filename=/dev/cvm"${minor:-0}" --rw=randwrite \
		--bsrange=4k-256k --iodepth=16 --ioengine=libaio --direct=1 \
		--size=48M --time_based --runtime=600 >"$tmp/fio" 2>&1 &
	fio_pid=$!
}
stop_fio() {
	kill "$fio_pid" 2>/dev/null
	wait "$fio_pid" 2>/dev/null
	fio_pid=
}

# Two replicas of three stay up: fio must not notice.
start_fio
sleep 1
for ((r = 0; r < ROUNDS; r++)); do
	i=$((r % 3))
	n=$(connections)
	check "round $r: unlisten target $i under fio" timeout 60 bash -c \
		". tests/lib/cvm_vm.sh; cvm_unlisten $i"
	check "round $r: listen again" cvm_listen $i
	check "round $r: cvm.ko reconnected" cvm_connected $((n + 1))
done
check "fio did not notice" eval \
	'kill -0 $fio_pid || { tail -n 30 $tmp/fio; false; }'
stop_fio
# Every target goes at once: fio's writes fail until it is back.
for ((r = 0; r < 2; r++)); do
	n=$(connections)
	start_fio
	sleep 1
	check "unload cvm_target under fio and load it again ($r)" reload_target
	check "cvm.ko reconnected to all three ($r)" cvm_connected $((n + 3))
	stop_fio
done
check "detach" "${ig[@]}" detach 1 --force
check "unload cvm" rmmod cvm
cvm_three_targets_down

check_summary
