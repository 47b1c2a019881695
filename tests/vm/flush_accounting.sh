#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 45 s)
#
# What a FLUSH may count as durable, and what a refused replica holds.  A
# write without FUA is in its replicas' volatile caches until a FLUSH;
# cvm.ko remembers per object which replicas took it (flush.c).  Three
# defects of that accounting, each a case here, in one VM
# (cvm_three_targets with dm-linear disks, CVM_DM_DISKS=1), a
# replicated(3) volume over tcp:
#
#   1. a target that restarted (its volatile cache lost, as after a power
#      cut) and was reconnected answers the next FLUSH OK: that must not
#      make writes its previous instance acknowledged durable there, so
#      they are recorded stale on it and resynced; a target that was only
#      cut off (a network outage: same instance, its cache intact) is
#      flushed as usual after the reconnect, nothing recorded; when every
#      replica of a write restarted, fsync fails once (EIO);
#   2. a FUA write to one range of an object must not drop the record of
#      an earlier unflushed write to another range of it;
#   3. a replica whose disk refuses a write (IO_ERROR) while the others
#      applied it holds an old copy: it must be recorded stale (and the
#      write succeeds on the others), never read, and resynced once its
#      disk works again.
#
# Each case ends with every object the same on all three replicas.  Runs
# INSIDE the test VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/flush_accounting.sh
set -u

top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
. "$top/tests/lib/check.sh"
require_vm
. "$top/tests/lib/cvm_vm.sh"
export CVM_DM_DISKS=1

OBJ=$((1 << 20))
VOL_SIZE=$((32 << 20))
ig=(python3 "$top/tests/vm/lib/initiator_genl.py")
tg=(python3 "$top/tests/vm/lib/target_genl.py")
wire=$top/build/userspace/tools/cvm-wire
tmp=$(mktemp -d)

stale() { "${ig[@]}" stale; }

replicas_identical() { cvm_replicas_identical 3 $((VOL_SIZE / OBJ)) $OBJ; }

wait_for() { cvm_wait_for "$@"; }
stale_zero() { (($(stale) == 0)); }
# FLUSH requests cvm0 completed (diskstats field 16).
flushes() { awk '{ print $16 }' /sys/block/cvm0/stat; }

fsync_dev() {
	python3 -c 'import os
fd = os.open("/dev/cvm0", os.O_WRONLY)
os.fsync(fd)'
}

# reconnect_device0: cut device 0's target off and let cvm.ko reconnect
# (a network outage: the target and its cache stay).
reconnect_device0() {
	local n
	n=$(dmesg | grep -c ': connected$')
	cvm_unlisten 0 && cvm_listen 0 && cvm_connected $((n + 1))
}

# restart_device D: device D's target restarts (it serves a new instance
# of the device: whatever its cache held is gone, for all cvm.ko knows).
restart_device() {
	local n
	n=$(dmesg | grep -c ': connected$')
	cvm_unlisten "$1" && "${tg[@]}" remove "$1" &&
		"${tg[@]}" add "$1" "$(cvm_disk "$1")" && cvm_listen "$1" &&
		cvm_connected $((n + 1))
}
restart_device0() { restart_device 0; }

converged() {
	check "$1: stale objects resynced (within 60 s)" wait_for 60 stale_zero
	check "$1: every object the same on all three replicas" replicas_identical
}

echo "# set up: 3 targets on dm-linear disks, replicated(3), 1 MiB objects"
cvm_three_targets
# shellcheck disable=SC2046 # cvm_map_paths: several arguments
check "map epoch 1: 3 hosts x 1 device" "${ig[@]}" map-set 1 $(cvm_map_paths)
check "3 connections" cvm_connected 3
check "attach replicated(3) -> cvm0" eval \
	"[[ \$(${ig[*]} attach 3 3 $VOL_SIZE --object-size $OBJ --name r3) == 0 ]]"
check "cvm0 has a volatile cache and FUA" eval \
	"[[ \$(cat /sys/block/cvm0/queue/write_cache) == 'write back' && \$(cat /sys/block/cvm0/queue/fua) == 1 ]]"
head -c $((8 << 20)) /dev/urandom >"$tmp/data"
check "fill 8 MiB, flushed" dd if="$tmp/data" of=/dev/cvm0 bs=1M \
	oflag=direct conv=fsync status=none

echo "# 1. FLUSH after an outage of device 0, then after its restart"
check "write 4 MiB without FUA" dd if="$tmp/data" of=/dev/cvm0 bs=1M \
	count=4 seek=8 oflag=direct status=none
check "device 0's target is cut off and reconnects" reconnect_device0
dmesg -C
check "fsync succeeds" fsync_dev
check "nothing recorded stale (the same instance holds the writes)" \
	eval "! dmesg | grep 'flush missed a replica' && (($(stale) == 0))"
check "write 4 MiB without FUA" dd if="$tmp/data" of=/dev/cvm0 bs=1M \
	count=4 seek=8 oflag=direct status=none
check "device 0's target restarts (its cache may be gone)" restart_device0
dmesg -C
check "fsync succeeds (devices 1 and 2 hold the writes)" fsync_dev
check "the writes are recorded stale on device 0, not flushed there" \
	eval "dmesg | grep -q 'flush missed a replica, [1-9][0-9]* objects recorded as stale'"
echo "stale objects: $(stale)"
converged "1"
check "the writes read back" eval "cmp -n $((4 << 20)) '$tmp/data' <(dd if=/dev/cvm0 bs=1M skip=8 count=4 iflag=direct status=none)"

echo "# 2. a FUA write keeps the record of an earlier write to the object"
check "write 512 KiB without FUA at 16 MiB" dd if="$tmp/data" \
	of=/dev/cvm0 bs=512K count=1 seek=32 oflag=direct status=none
flushes0=$(flushes)
# Async O_DSYNC direct I/O: REQ_FUA and no FLUSH after it (a synchronous
# one, as dd's, is followed by a FLUSH that settles everything).
check "write 4 KiB with FUA at 16.5 MiB (libaio, O_DSYNC)" fio \
	--name=fua --filename=/dev/cvm0 --rw=write --bs=4k --size=4k \
	--offset=$(((16 << 20) + (512 << 10))) --ioengine=libaio --direct=1 \
	--sync=dsync --iodepth=1 --output=/dev/null
check "no FLUSH was sent for it" eval "(($(flushes) == flushes0))"
check "device 0's target restarts" restart_device0
dmesg -C
check "fsync succeeds" fsync_dev
check "the unflushed write is recorded stale on device 0" \
	eval "dmesg | grep -q 'flush missed a replica, [1-9][0-9]* objects recorded as stale'"
converged "2"

echo "# 3. a replica whose disk refuses a write"
check "fsync: nothing unflushed" fsync_dev
check "device 0's disk fails every I/O (dm error)" cvm_disk_fail 0
head -c 4096 /dev/urandom >"$tmp/block"
check "a 4 KiB write succeeds on the other two" dd if="$tmp/block" \
	of=/dev/cvm0 bs=4k seek=5 oflag=direct status=none
check "device 0 recorded stale for it" eval "(($(stale) > 0))"
check "the write reads back (never from device 0)" eval \
	"cmp '$tmp/block' <(dd if=/dev/cvm0 bs=4k skip=5 count=1 iflag=direct status=none)"
check "device 0's disk works again" cvm_disk_heal 0
converged "3"
check "the write reads back from device 0 itself" eval \
	"'$wire' 127.0.0.1:$(cvm_port 0) read --device 0 --volume 3 --object 0 --offset 20480 --length 4096 --out '$tmp/dev0' && cmp '$tmp/block' '$tmp/dev0'"

echo "# 4. every replica restarted: the unflushed writes are durable nowhere"
check "write 1 MiB without FUA" dd if="$tmp/data" of=/dev/cvm0 bs=1M \
	count=1 seek=2 oflag=direct status=none
for d in 0 1 2; do
	check "device $d's target restarts" restart_device $d
done
dmesg -C
check "fsync fails (EIO)" eval "! fsync_dev"
check "dmesg names it" eval \
	"dmesg | grep -q 'flush failed, [1-9][0-9]* objects are durable on no replica'"
check "reported once: the next fsync succeeds" fsync_dev

echo "# tear down"
check "detach 3" "${ig[@]}" detach 3
check "rmmod cvm" rmmod cvm
cvm_three_targets_down
rm -rf "$tmp"
cvm_load cvm >/dev/null 2>&1

check_summary
