#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 60 s per transport; the full tier's whole fio
# matrix about 40 s more)
# transports: tcp rdma(full)
#
# The replicated data path end to end in one VM: cvm_target.ko serves three
# brd devices behind three listeners (three "hosts": 127.0.0.1:7001-7003
# over tcp, 10.99.0.1-3:7001-7003 over rdma), cvm.ko gets
# a map of 3 hosts x 1 device, a replicated(1) and a replicated(3) volume
# are attached, and fio writes each with crc32c verification, then reads
# it back in a separate verify pass.  Also: a map update while fio runs,
# discard / write-zeroes, flush, and that each replica of the
# replicated(3) volume holds the data (reads with two targets gone).
# The targets grant each connection 16 requests and 4 MiB of payload in
# flight (HELLO's limits), fewer than the 32 x 1 MiB some jobs keep in
# flight: cvm.ko must hold the rest on its backlog, and no target may
# close a connection for exceeding a grant.
# Runs INSIDE the test VM, from the repository root:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/initiator_fio.sh
#
# run-in-vm.sh runs it once per transport above, with CVM_TRANSPORT set.
# CVM_FIO_SIZE (default 32M, 64M in the full tier) sizes the first jobs.
# Prints the IOPS of each job and "N passed, N failed".
set -u

top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
if [[ -z "${CVM_IN_VM:-}" ]]; then
	echo "initiator_fio: run me inside the test VM: scripts/vm-run.sh $0" >&2
	exit 2
fi

SIZE=${CVM_FIO_SIZE:-$([[ ${CVM_TIER:-check} == full ]] && echo 64M || echo 32M)}
ig=(python3 "$top/tests/vm/lib/initiator_genl.py")
. "$top/tests/lib/check.sh"
. "$top/tests/lib/cvm_vm.sh"


# fio_job NAME DEV RW [ARGS...]: run fio, print its IOPS line.
fio_job() {
	local name=$1 dev=$2 rw=$3 out
	shift 3
	out=$(fio --name="$name" --filename="$dev" --rw="$rw" --bs=4k \
		--size="$SIZE" --direct=1 --iodepth=32 --ioengine=libaio \
		--verify=crc32c --output-format=terse --terse-version=3 \
		"$@" 2>&1) || { echo "$out"; return 1; }
	# terse v3: field 8 read IOPS, field 49 write IOPS
	awk -F';' '{ printf "%-10s read %6s IOPS, write %6s IOPS\n", $3, $8, $49 }' <<<"$out" |
		tee -a "$fio_log"
}


fio_log=$(mktemp)
echo "# set up: 3 brd devices, 3 listeners, map, 2 volumes"
check "load cvm_target" cvm_load cvm_target
P=/sys/module/cvm_target/parameters
# Taken by the listeners cvm_three_targets starts next.
saved_inflight=$(cat $P/conn_max_inflight) saved_mib=$(cat $P/conn_max_data_mib)
echo 16 >$P/conn_max_inflight
echo 4 >$P/conn_max_data_mib
cvm_three_targets
# shellcheck disable=SC2046 # cvm_map_paths: several arguments
check "map epoch 1: 3 hosts x 1 device" "${ig[@]}" map-set 1 $(cvm_map_paths)
check "3 connections" cvm_connected 3
check "attach replicated(1) -> cvm0" eval \
	"[[ \$(${ig[*]} attach 1 1 $((256 << 20)) --name r1) == 0 ]]"
check "attach replicated(3) -> cvm1" eval \
	"[[ \$(${ig[*]} attach 3 3 $((256 << 20)) --name r3) == 1 ]]"

echo "# data"
for dev in cvm0 cvm1; do
	check "$dev: randwrite $SIZE, crc32c" fio_job w-$dev /dev/$dev randwrite
	check "$dev: verify pass" fio_job v-$dev /dev/$dev randwrite --verify_only
done

# The matrix: sequential and random, 4k to 1M, iodepth 1 and 32, on both
# volumes.  Each cell writes its own 8 MiB region (fresh objects, so thin
# allocation is exercised too) and fio verifies it as it goes; a second
# pass re-reads every region once all cells are written, so a cell that
# scribbled over another's region is caught.  The check tier runs the four
# cells of in_check (each pattern, block size and depth at least once per
# volume); the full tier all twelve.
echo "# fio matrix"
matrix_cells=()
in_check=" write-4k-1 randwrite-4k-32 write-64k-32 randwrite-1M-1 "
for dev in cvm0 cvm1; do
	region=64	# MiB; 12 regions of 8 MiB from here, below 256 MiB
	for rw in write randwrite; do
		for bs in 4k 64k 1M; do
			for qd in 1 32; do
				if [[ ${CVM_TIER:-check} == full ||
					$in_check == *" $rw-$bs-$qd "* ]]; then
					matrix_cells+=("$dev $rw $bs $qd ${region}M")
				fi
				region=$((region + 8))
			done
		done
	done
done
for c in "${matrix_cells[@]}"; do
	read -r dev rw bs qd off <<<"$c"
	check "$dev: $rw bs=$bs iodepth=$qd at $off, crc32c" \
		fio_job "m-$dev-$rw-$bs-qd$qd" "/dev/$dev" "$rw" --bs="$bs" \
		--iodepth="$qd" --offset="$off" --size=8M
done
for c in "${matrix_cells[@]}"; do
	read -r dev rw bs qd off <<<"$c"
	check "$dev: re-read $rw bs=$bs iodepth=$qd region" \
		fio_job "m-$dev-$rw-$bs-qd$qd" "/dev/$dev" "$rw" --bs="$bs" \
		--iodepth="$qd" --offset="$off" --size=8M --verify_only
done
check "cvm1: 64k mixed randrw with verify" \
	fio_job rw-cvm1 /dev/cvm1 randrw --bs=64k --size=32M
check "cvm1: 1 MiB writes not aligned to objects" \
	fio_job big-cvm1 /dev/cvm1 write --bs=1M --offset=1536k --size=16M
check "cvm1: map update during fio" eval \
	"fio_job upd-cvm1 /dev/cvm1 randwrite --size=16M & sleep 1; ${ig[*]} map-set 2 $(cvm_map_paths); wait \$!"
check "cvm0: flush (sync)" eval "dd if=/dev/zero of=/dev/cvm0 bs=4k count=16 oflag=direct,sync status=none"
check "cvm1: discard" blkdiscard -o 0 -l $((2 << 20)) /dev/cvm1
check "cvm1: discard across an object boundary" \
	blkdiscard -o $((2 << 20)) -l $((6 << 20)) /dev/cvm1
check "cvm1: zeroout" blkdiscard -z -o $((8 << 20)) -l $((8 << 20)) /dev/cvm1
check "cvm1: discarded and zeroed ranges read zeroes" eval \
	"cmp -n $((16 << 20)) /dev/cvm1 /dev/zero"

echo "# every replica holds the data"
check "cvm1: write a pattern" fio_job pat-cvm1 /dev/cvm1 write --bs=64k --size=8M --offset=32M
for i in 0 1; do
	check "target: unlisten $(cvm_addr $i):$(cvm_port $i)" cvm_unlisten $i
done
check "cvm1: read back with only device 2 left" \
	fio_job pat-cvm1 /dev/cvm1 write --bs=64k --size=8M --offset=32M --verify_only
for i in 0 1; do
	check "target: listen $(cvm_addr $i):$(cvm_port $i) again" cvm_listen $i
done
check "reconnected" cvm_connected 5

echo "# tear down"
check "no target closed a connection for exceeding its grant" \
	eval "! dmesg | grep 'than agreed in HELLO'"
check "detach 1" "${ig[@]}" detach 1
check "detach 3" "${ig[@]}" detach 3
check "rmmod cvm" rmmod cvm
cvm_three_targets_down
echo "$saved_inflight" >$P/conn_max_inflight
echo "$saved_mib" >$P/conn_max_data_mib
echo "# fio IOPS"
cat "$fio_log"
rm -f "$fio_log"
# Leave the modules loaded, as the VM runner did.
cvm_load cvm >/dev/null 2>&1

check_summary
