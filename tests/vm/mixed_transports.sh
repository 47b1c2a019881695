#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 45 s)
# A map that mixes transports: device 0 over rdma (Soft-RoCE), devices 1
# and 2 over tcp, one replicated(3) volume across them.  fio writes it,
# then reads it back verifying while device 0 is removed at its target:
# its READs are answered IO_ERROR in the rdma completion (softirq), and the
# initiator retries each on the next replica from there, onto a tcp path
# whose io_work is completing other reads at the same time.  The tcp
# in-flight table must take that (its lock is irq-safe); fio must see no
# error and every byte must verify.  Runs INSIDE the test VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/mixed_transports.sh
#
# Prints "N passed, N failed"; exits 0 only if every check passed.
set -u

top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
if [[ -z "${CVM_IN_VM:-}" ]]; then
	echo "mixed_transports: run me inside the test VM: scripts/vm-run.sh $0" >&2
	exit 2
fi
. "$top/tests/lib/check.sh"
. "$top/tests/lib/cvm_vm.sh"

ig=(python3 "$top/tests/vm/lib/initiator_genl.py")
tg=(python3 "$top/tests/vm/lib/target_genl.py")
tmp=$(mktemp -d)
fio_pid=
cleanup() {
	[[ -n "$fio_pid" ]] && kill "$fio_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# Device i at ADDR[i]:700(i+1) over TRANSPORT[i].
ADDR=(10.99.0.1 127.0.0.1 127.0.0.1)
TRANSPORT=(rdma tcp tcp)
FIO=(--filename=/dev/cvm0 --bs=64k --iodepth=16 --ioengine=libaio --direct=1
     --size=24M --verify=crc32c --verify_pattern=0x5a --randrepeat=1)

check "rdma: Soft-RoCE rxe0 on eth0" cvm_rdma_up
rmmod brd 2>/dev/null
check "brd: 3 x 128 MiB" modprobe brd rd_nr=3 rd_size=$((128 << 10))
check "load cvm_target" cvm_load cvm_target
check "load cvm" cvm_load cvm
for i in 0 1 2; do
	check "target: add device $i" "${tg[@]}" add $i /dev/ram$i format
	check "target: listen ${ADDR[i]}:$((7001 + i)) (${TRANSPORT[i]})" \
		"${tg[@]}" listen "${ADDR[i]}" $((7001 + i)) --transport "${TRANSPORT[i]}"
done
check "map: device 0 over rdma, 1 and 2 over tcp" "${ig[@]}" map-set 1 \
	--addr "$(IFS=,; echo "${ADDR[*]}")" --transport "$(IFS=,; echo "${TRANSPORT[*]}")"
check "attach replicated(3)" \
	"${ig[@]}" attach 1 3 $((32 << 20))
check "3 connections" cvm_connected 3
check "fio write with crc32c" fio --name=fill --rw=randwrite --do_verify=0 "${FIO[@]}"

# The same job with --verify_only reads back what it wrote, 10 times.
fio --name=fill --rw=randwrite --verify_only --loops=10 "${FIO[@]}" \
	>"$tmp/fio" 2>&1 &
fio_pid=$!
sleep 2
check "remove device 0 at its target under the reads" "${tg[@]}" remove 0
wait "$fio_pid"
rc=$?
fio_pid=
check "every read verified, none failed" eval "[[ $rc == 0 ]] || { tail -n 20 $tmp/fio; false; }"
check "device 0 answered reads with an error over rdma (they were retried)" \
	eval "dmesg | grep -q 'READ to ${ADDR[0]}:7001 failed: status'"

check "detach" "${ig[@]}" detach 1 --force
check "unload cvm" rmmod cvm
for i in 0 1 2; do
	"${tg[@]}" unlisten "${ADDR[i]}" $((7001 + i)) --transport "${TRANSPORT[i]}" >/dev/null 2>&1
done
"${tg[@]}" remove 1 >/dev/null 2>&1
"${tg[@]}" remove 2 >/dev/null 2>&1
check "unload cvm_target" rmmod cvm_target
check "rmmod brd" rmmod brd

check_summary
