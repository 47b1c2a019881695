#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 45 s per transport; the full tier writes 4x as much)
# transports: tcp rdma(full)
#
# Buffered writes must not change under the replicas' feet.  Without
# stable pages the page cache may redirty a page while it is being written
# back; every replica (and every RDMA READ) takes the page at its own
# moment, so replicas silently differ, and over tcp the payload CRC,
# computed once for all replicas, no longer matches what a later send
# carries ("payload CRC mismatch": the write is missed on that replica, or
# fails with EIO when it hit all three).  Seen on a healthy cluster with
# 64 processes doing 4 KiB random buffered writes with an fsync after
# each.  In one VM (cvm_three_targets), a replicated(3) volume:
#
#   1. the raw device: 64 fio processes, 4 KiB random buffered writes over
#      one small region (so they keep hitting pages under writeback),
#      fsync after every write;
#   2. ext4 on it, mounted: buffered writes with fsync and verification
#      from 8 processes, then unmounted and checked by e2fsck;
#
# each followed by: no I/O error, no CRC mismatch in the kernel log, no
# replica recorded stale, every object the same on all three replicas
# (cvm-wire sums).  Runs INSIDE the test VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/buffered_writes.sh
#
# CVM_BUFFERED_IOS (default 64, 256 in the full tier) writes per process.
set -u

top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
. "$top/tests/lib/check.sh"
require_vm
. "$top/tests/lib/cvm_vm.sh"

IOS=${CVM_BUFFERED_IOS:-$([[ ${CVM_TIER:-check} == full ]] && echo 256 || echo 64)}
OBJ=$((1 << 20))
VOL_SIZE=$((128 << 20))
ig=(python3 "$top/tests/vm/lib/initiator_genl.py")
tmp=$(mktemp -d)

replicas_identical() { cvm_replicas_identical 3 $((VOL_SIZE / OBJ)) $OBJ; }

no_crc_mismatch() {
	! dmesg | grep -E 'payload CRC mismatch|lost async page write|flush failed'
}

# settled WHAT: the checks after each workload.
settled() {
	check "$1: no CRC mismatch or lost page in the kernel log" no_crc_mismatch
	check "$1: no replica recorded stale" eval "[[ \$(${ig[*]} stale) == 0 ]]"
	check "$1: every object the same on all three replicas" replicas_identical
}

echo "# set up: 3 targets, replicated(3) volume, 1 MiB objects"
cvm_three_targets
# shellcheck disable=SC2046 # cvm_map_paths: several arguments
check "map epoch 1: 3 hosts x 1 device" "${ig[@]}" map-set 1 $(cvm_map_paths)
check "3 connections" cvm_connected 3
check "attach replicated(3) -> cvm0" eval \
	"[[ \$(${ig[*]} attach 3 3 $VOL_SIZE --object-size $OBJ --name r3) == 0 ]]"
check "cvm0 asks for stable pages" \
	eval "[[ \$(cat /sys/block/cvm0/queue/stable_writes) == 1 ]]"
dmesg -C

echo "# raw device: 64 processes x $IOS buffered 4 KiB writes, fsync after each"
t0=$SECONDS
check "fio: no I/O error" fio --name=buffered --filename=/dev/cvm0 \
	--rw=randwrite --bs=4k --size=4M --ioengine=psync --direct=0 \
	--fsync=1 --numjobs=64 --number_ios="$IOS" --group_reporting \
	--output="$tmp/raw.out"
grep -E 'WRITE:|err=' "$tmp/raw.out" | head -n 3
echo "raw device: $((SECONDS - t0)) s"
check "raw: the device flushed" blockdev --flushbufs /dev/cvm0
settled raw
dmesg -C

echo "# ext4: buffered writes with fsync and verification, 8 processes"
mnt=$tmp/mnt
mkdir -p "$mnt"
check "mkfs.ext4" mkfs.ext4 -q -F /dev/cvm0
check "mount" mount /dev/cvm0 "$mnt"
t0=$SECONDS
check "fio on ext4: no error, files verify" fio --name=ext4 \
	--directory="$mnt" --rw=randrw --bs=4k --size=2M --ioengine=psync \
	--direct=0 --fsync=1 --numjobs=8 --number_ios=$((IOS * 4)) \
	--verify=crc32c --verify_fatal=1 --group_reporting \
	--output="$tmp/ext4.out"
grep -E 'WRITE:|READ:|err=' "$tmp/ext4.out" | head -n 4
echo "ext4: $((SECONDS - t0)) s"
check "umount" umount "$mnt"
check "e2fsck: clean" e2fsck -fn /dev/cvm0
settled ext4

echo "# tear down"
check "detach 3" "${ig[@]}" detach 3
check "rmmod cvm" rmmod cvm
cvm_three_targets_down
rm -rf "$tmp"
cvm_load cvm >/dev/null 2>&1

check_summary
