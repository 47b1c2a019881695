#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 40 s)
# transports: tcp
#
# Issue 16: a disk that keeps failing while its path is up is marked out
# and healed around with no command.  Four hosts hold a replicated(3)
# volume r0 (attached, fio writing and verifying part of it); device 4 is a
# device-mapper device over a RAM disk whose table is then swapped for dm's
# "error" target (tests/lib/dm_table.py: the VM has no dmsetup), so its
# target answers each request with IO_ERROR while its connection stays up.  cvmd reads the target's error count
# (CVM_TARGET_DEVICE_ATTR_IO_ERRORS) each round and, past io_error_limit
# failed requests within a minute, marks the device down and out
# (disk_errors.h); cvm.ko copies its PGs from the survivors and the pins
# are cut.  On the code before this test nothing counted the errors: the
# device stayed in, every write to its PGs left it stale.  Runs INSIDE the
# VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/disk_errors.sh
set -u
top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
. tests/lib/check.sh
. tests/lib/cvm_vm.sh
require_vm

bin=$top/build/userspace
cvmd=$bin/cvmd/cvmd
cvmadm=$bin/cvmadm/cvmadm
work=$(mktemp -d /tmp/cvm-disk-errors.XXXXXX)
CVMD_ARGS="--backfill-every 1"
. tests/lib/cvmd_local.sh
dm=cvm-failing
trap 'cleanup; python3 tests/lib/dm_table.py remove $dm 2>/dev/null' EXIT
fio_verify() {
	fio --name=disk --filename=/dev/cvm0 --offset=16M --size=16M \
		--rw=randwrite --bs=4k --iodepth=8 --ioengine=libaio --direct=1 \
		--verify=crc32c --verify_fatal=1 --verify_backlog=256 \
		--rate_iops=200 --runtime=15 --time_based \
		--output="$work/fio.out" >/dev/null 2>&1 ||
		{ cat "$work/fio.out"; return 1; }
}
# /dev/dm-0: device-mapper over /dev/ram3, one to one.
make_dm() {
	modprobe dm_mod && python3 tests/lib/dm_table.py create "$dm" /dev/ram3 &&
	[[ $(cat /sys/block/dm-0/dm/name) == "$dm" ]]
}

check "brd: 4 x 128 MiB" modprobe brd rd_nr=4 rd_size=$((128 << 10))
check "device-mapper: /dev/dm-0 over /dev/ram3" make_dm
check "cvmd starts" start_cvmd
for i in 1 2 3; do
	check "host storage$i with /dev/ram$((i - 1))" add_host "$i"
	check "storage$i serves its device" serve_host "$i"
done
check "host storage4 with /dev/dm-0" \
	eval "'$cvmadm' host add storage4 --address '$(ep 4)' --transport tcp &&
	      '$cvmadm' device add storage4 /dev/dm-0 --capacity 128M"
check "storage4 serves its device" serve_host 4
check "config set io_error_limit 8" "$cvmadm" config set io_error_limit 8
check "pool rep3 (pg 32)" "$cvmadm" pool create rep3 --policy replicated:3 --pg-num 32
check "volume r0 (32 MiB) in rep3" "$cvmadm" volume create r0 --pool rep3 --size 32M
check "attach r0 as /dev/cvm0" eval "[[ \$('$cvmadm' volume attach r0) == /dev/cvm0 ]]"
head -c $((16 << 20)) /dev/urandom >"$work/r0"
check "r0: 16 MiB of known data written (and 16 MiB for fio)" \
	eval "dd if='$work/r0' of=/dev/cvm0 bs=1M oflag=direct status=none &&
	      dd if=/dev/urandom of=/dev/cvm0 bs=1M seek=16 count=16 oflag=direct status=none"
check "device 4 holds PGs" eval "(( \$(pgs_on 4) > 0 ))"

echo "# device 4's disk fails while fio writes and verifies r0"
fio_verify &
fio_pid=$!
check "device 4's disk fails every request from now on" \
	python3 tests/lib/dm_table.py error "$dm"
check "marked down and out for its errors, with no command" \
	wait_for 30 '[[ $(device_field 4 in) == False && $(device_field 4 up) == False ]]'
check "cvmd logged why" grep -q "device 4 marked down and out: its disk failed" "$work/cvmd.log"
check "r0 reads back as written" same /dev/cvm0 16 "$work/r0"
check "rebuilt from the survivors: pins cut, nothing left on device 4" \
	wait_for 90 '(( $(pinned) == 0 && $(pgs_on 4) == 0 ))'
fio_rc=0
wait "$fio_pid" || fio_rc=$?
check "fio wrote and verified through the failing disk without an error" \
	eval "((fio_rc == 0)) || { cat '$work/fio.out'; false; }"
check "r0 reads back as written without device 4" same /dev/cvm0 16 "$work/r0"
check "device remove 4: it holds nothing any more" \
	eval "'$cvmadm' target device remove 4 && '$cvmadm' device remove 4"
check "volume detach r0" "$cvmadm" volume detach r0
for i in 1 2 3; do
	check "target device remove $i" "$cvmadm" target device remove "$i"
done
for i in 1 2 3 4; do
	check "target unlisten $(ep "$i")" "$cvmadm" target unlisten --address "$(ep "$i")"
done
check "cvmd stops" stop_cvmd
check "device-mapper device removed" python3 tests/lib/dm_table.py remove "$dm"
check "reload cvm.ko" eval "rmmod cvm && insmod kernel/cvm.ko"
check "rmmod brd" rmmod brd
check_summary
