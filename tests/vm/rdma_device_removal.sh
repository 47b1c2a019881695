#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 55 s)
# transports: rdma
#
# The rdma transport when its RDMA device goes away and comes back: three
# targets and a replicated(3) volume over Soft-RoCE (rxe0), then
#   - `rdma link delete rxe0` under fio: the removal completes (cvm's
#     ib_client tears down every connection and listener on the device
#     instead of holding it), the initiator logs why, fio's I/O is held
#     (every replica was on that device) and fails at cvm.loss_timeout,
#     5 s here, rather than hangs;
#   - `rdma link add` again: the listeners listen again by themselves,
#     the initiator reconnects with backoff, and the data written before
#     verifies;
#   - `rmmod rdma_rxe` with idle connections (driver unload is a device
#     removal too), then back, and new writes verify.
# Runs INSIDE the test VM (scripts/vm-run.sh tests/run-in-vm.sh THIS).
set -u

top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
if [[ -z "${CVM_IN_VM:-}" ]]; then
	echo "rdma_device_removal: run me inside the test VM: scripts/vm-run.sh $0" >&2
	exit 2
fi
export CVM_TRANSPORT=rdma
ig=(python3 "$top/tests/vm/lib/initiator_genl.py")
. "$top/tests/lib/check.sh"
. "$top/tests/lib/cvm_vm.sh"

fio_verify() {
	fio --name=v --filename=/dev/cvm0 --rw=write --bs=64k --size=32M \
		--offset="$1" --direct=1 --iodepth=8 --ioengine=libaio \
		--verify=crc32c --output-format=terse "${@:2}" >/dev/null
}

# count_at_least N PATTERN: dmesg has N lines matching PATTERN within 60 s.
count_at_least() {
	local i
	for ((i = 0; i < 120; i++)); do
		(($(dmesg | grep -cE "$2") >= $1)) && return 0
		sleep 0.5
	done
	echo "fewer than $1 kernel messages matching '$2':" >&2
	dmesg | grep -E 'cvm|rxe' | tail -n 20 >&2
	return 1
}

# wait_gone PID: PID exits within 60 s.
wait_gone() {
	local i
	for ((i = 0; i < 120; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.5
	done
	return 1
}

rxe_add() {
	rdma link add rxe0 type rxe netdev eth0 || return
	count_at_least 1 'rxe0: set active'
}

echo "# set up: 3 targets over rdma, replicated(3) volume"
cvm_three_targets
# shellcheck disable=SC2046 # cvm_map_paths: several arguments
check "map epoch 1: 3 hosts over rdma" "${ig[@]}" map-set 1 $(cvm_map_paths)
check "3 connections" cvm_connected 3
check "attach replicated(3) -> cvm0" eval \
	"[[ \$(${ig[*]} attach 3 3 $((256 << 20)) --name r3) == 0 ]]"
check "write 32 MiB at 0, crc32c" fio_verify 0

echo "# rdma link delete rxe0 under I/O"
lt=/sys/module/cvm/parameters/loss_timeout
saved_lt=$(cat $lt)
check "cvm.loss_timeout 5 s" eval "echo 5 >$lt"
fio --name=r --filename=/dev/cvm0 --rw=randread --bs=4k --size=32M \
	--direct=1 --iodepth=8 --ioengine=libaio --runtime=20 --time_based \
	>/dev/null 2>&1 &
fio_pid=$!
sleep 3
dmesg -C
check "the removal completes within 60 s" timeout 60 rdma link delete rxe0
check "target: its listeners left the device" \
	count_at_least 3 'cvm_target: rdma: rxe0 removed: no longer listening'
# The target's connections need no check of their own: its removal
# callback waits until every one on the device is freed, so the removal
# completing is the proof.  Which closes them first, the target's callback
# ("RDMA device removed") or cvm.ko's (the target sees a disconnect), is a
# race between the two modules' ib_clients.
check "initiator: paths down, reconnecting" \
	count_at_least 3 'cvm: device [0-2] at .*: connection lost, reconnecting'
check "fio ends (errors, not a hang)" wait_gone $fio_pid
check "cvm.loss_timeout restored" eval "echo $saved_lt >$lt"

echo "# rdma link add rxe0"
check "rxe0 back" rxe_add
check "target: listening again on all 3 addresses" \
	count_at_least 3 'cvm_target: rdma: listening on .* again'
check "initiator: 3 paths reconnected" \
	count_at_least 3 'cvm: device [0-2] at .*: connected$'
check "the 32 MiB written before verify" fio_verify 0 --verify_only
check "write 32 MiB at 32M, crc32c" fio_verify 32M

echo "# rmmod rdma_rxe with idle connections, then back"
dmesg -C
check "rmmod rdma_rxe" timeout 60 rmmod rdma_rxe
check "initiator: paths down" \
	count_at_least 3 'cvm: device [0-2] at .*: connection lost'
check "modprobe rdma_rxe" modprobe rdma_rxe
check "rxe0 back" rxe_add
check "initiator: 3 paths reconnected" \
	count_at_least 3 'cvm: device [0-2] at .*: connected$'
check "both regions verify" fio_verify 0 --size=64M --verify_only
check "write 32 MiB at 64M, crc32c" fio_verify 64M

echo "# tear down"
check "detach" "${ig[@]}" detach 3
cvm_three_targets_down
check "rmmod cvm" rmmod cvm
check "rmmod cvm_target" rmmod cvm_target
check "rmmod rdma_rxe" rmmod rdma_rxe
# Leave the modules loaded, as the VM runner did.
cvm_load cvm_target >/dev/null 2>&1
cvm_load cvm >/dev/null 2>&1
check_summary
