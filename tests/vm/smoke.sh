#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: fast (about 20 s)
#
# The smoke test of make check-fast: the whole data path once, briefly.
# Three brd targets over tcp (cvm_three_targets), a replicated(3) volume,
# 8 MiB of fio writes with crc32c verification and a separate verify
# pass, detach, and both modules unloaded and loaded again.  Runs INSIDE
# the test VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/smoke.sh
set -u
top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
. "$top/tests/lib/check.sh"
. "$top/tests/lib/cvm_vm.sh"
require_vm
ig=(python3 "$top/tests/vm/lib/initiator_genl.py")

fio_smoke() {
	fio --name=smoke --filename=/dev/cvm0 --rw=randwrite --bs=4k --size=8M \
		--direct=1 --iodepth=16 --ioengine=libaio --verify=crc32c \
		--verify_fatal=1 "$@" --output=/tmp/smoke.out ||
		{ cat /tmp/smoke.out; return 1; }
}

cvm_three_targets
# shellcheck disable=SC2046 # cvm_map_paths: several arguments
check "map epoch 1: 3 hosts x 1 device" "${ig[@]}" map-set 1 $(cvm_map_paths)
check "3 connections" cvm_connected 3
check "attach replicated(3) -> cvm0" eval \
	"[[ \$(${ig[*]} attach 3 3 $((16 << 20)) --name smoke) == 0 ]]"
check "fio randwrite 8 MiB, crc32c" fio_smoke
check "separate verify pass" fio_smoke --verify_only
check "detach" "${ig[@]}" detach 3
cvm_three_targets_down
check "rmmod cvm cvm_target" rmmod cvm cvm_target
check "load both again" eval "cvm_load cvm_target && cvm_load cvm"
check_summary
