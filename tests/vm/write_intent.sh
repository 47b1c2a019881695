#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 100 s)
#
# Which replica missed an acknowledged write is kept on the targets, not
# only in cvm.ko's memory (intent.c, cvm_wire.h "Object shard versions").
# One VM, three targets (cvm_three_targets), a replicated(3) volume over
# tcp with 1 MiB objects:
#
#   1. a write sets the object's intent bit on every replica; once the
#      object is idle the initiator clears it (CLEAN);
#   2. a write that misses device 0 (its target stopped listening) BUMPs
#      the object's version on devices 1 and 2 before it is acknowledged;
#      the volume is detached (cvm.ko forgets its stale set), device 0
#      comes back, the volume is attached again: no read is served by
#      device 0 before it was resynced (old code: reads of the objects
#      whose PG lists device 0 first returned the old bytes), and the
#      replicas converge with equal versions;
#   3. the same across a reload of cvm.ko (device 1 misses the writes);
#   4. a write that reached one replica only (what an initiator crash
#      leaves: cvm-wire writes device 2 directly while the volume is not
#      attached): at the next attach the replicas converge by themselves
#      (old code: they stayed different forever);
#   5. the pool's min_size, carried in the map: 3 holds a write that only
#      2 replicas can take (it fails after the loss timeout), the default
#      (2 of 3) acknowledges it;
#   6. a discard of a whole object frees its extent on every replica (old
#      code: zeroed, kept); half an object is zeroed and kept.
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/write_intent.sh
set -u

top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
. "$top/tests/lib/check.sh"
require_vm
. "$top/tests/lib/cvm_vm.sh"

OBJ=$((1 << 20))
NOBJ=16
VOL_SIZE=$((NOBJ * OBJ))
VOL=3
ig=(python3 "$top/tests/vm/lib/initiator_genl.py")
wire=$top/build/userspace/tools/cvm-wire
tmp=$(mktemp -d)

stale() { "${ig[@]}" stale; }
stale_zero() { (($(stale) == 0)); }
replicas_identical() { cvm_replicas_identical 3 $NOBJ $OBJ; }

# wstat D OBJECT: "intent I version V" of the object on device D.
wstat() {
	"$wire" "127.0.0.1:$(cvm_port "$1")" stat --device "$1" --volume $VOL \
		--object "$2" | sed -n 's/.* intent \([01]\) version \([0-9]*\)$/intent \1 version \2/p'
}

# no_intent_left: no object has its intent bit on any device (stops at the
# first one that has: it is polled).
no_intent_left() {
	local d o
	for d in 0 1 2; do
		for ((o = 0; o < NOBJ; o++)); do
			[[ $(wstat $d $o) == "intent 1 "* ]] && return 1
		done
	done
	return 0
}

# versions_agree: every object has one version on all three devices.
versions_agree() {
	local o
	for ((o = 0; o < NOBJ; o++)); do
		local v0 v1 v2
		v0=$(wstat 0 $o) v1=$(wstat 1 $o) v2=$(wstat 2 $o)
		if [[ ${v0#* * } != "${v1#* * }" || ${v0#* * } != "${v2#* * }" ]]; then
			echo "object $o: $v0 / $v1 / $v2"
			return 1
		fi
	done
}

attach() {
	[[ $("${ig[@]}" attach $VOL 3 $VOL_SIZE --object-size $OBJ --epoch "$1" \
		--name r3) == 0 ]]
}
detach() { "${ig[@]}" detach $VOL; }
# write_all FILE: the whole volume, O_DIRECT, acknowledged.
write_all() {
	dd if="$1" of=/dev/cvm0 bs=1M oflag=direct status=none
}
reads_back() {
	cmp "$1" <(dd if=/dev/cvm0 bs=1M iflag=direct status=none)
}

echo "# set up: 3 targets, replicated(3), 1 MiB objects"
cvm_three_targets
# shellcheck disable=SC2046 # cvm_map_paths: several arguments
check "map epoch 1: 3 hosts x 1 device" "${ig[@]}" map-set 1 $(cvm_map_paths)
check "3 connections" cvm_connected 3
check "attach replicated(3) epoch 1 -> cvm0" attach 1
for p in a b c d; do
	head -c $VOL_SIZE /dev/urandom >"$tmp/$p"
done

echo "# 1. intent bits: set by writes, cleared once the object is idle"
check "write $NOBJ MiB" write_all "$tmp/a"
check "object 0 has its intent bit on device 0" \
	eval "[[ \$(wstat 0 0) == 'intent 1 version 0' ]]"
check "every intent bit cleared within 20 s of the last write" \
	cvm_wait_for 20 no_intent_left

echo "# 2. a write device 0 missed, across a detach"
check "device 0's target stops listening" cvm_unlisten 0
check "write $NOBJ MiB (device 0 misses it)" write_all "$tmp/b"
check "cvm.ko records device 0 stale" eval "(($(stale) > 0))"
# Pieces of one dd block in flight at once may each BUMP it.
check "device 1 holds object 0 at a version above 0 (BUMPed before the ack)" \
	eval "wstat 1 0; [[ \$(wstat 1 0) =~ ^intent\ 1\ version\ [1-9] ]]"
check "detach (cvm.ko forgets its stale set)" detach
check "device 0's target listens again" cvm_listen 0
check "cvm.ko dropped the detached volume's stale set" cvm_wait_for 30 stale_zero
dmesg -C
check "attach epoch 2" attach 2
check "every block reads as last written (none from device 0)" \
	reads_back "$tmp/b"
check "the scan found the records" \
	eval "dmesg | grep -q 'objects had write intent, [1-9][0-9]* replicas recorded stale'"
check "stale objects resynced (within 60 s)" cvm_wait_for 60 stale_zero
check "every object the same on all three replicas" replicas_identical
check "versions agree on all three" versions_agree
check "intent bits cleared (within 20 s)" cvm_wait_for 20 no_intent_left

echo "# 3. a write device 1 missed, across a reload of cvm.ko"
check "device 1's target stops listening" cvm_unlisten 1
check "write $NOBJ MiB (device 1 misses it)" write_all "$tmp/c"
check "cvm.ko records device 1 stale" eval "(($(stale) > 0))"
check "unload cvm.ko" rmmod cvm
check "device 1's target listens again" cvm_listen 1
check "load cvm.ko" cvm_load cvm
dmesg -C
# shellcheck disable=SC2046 # cvm_map_paths: several arguments
check "map epoch 1 again" "${ig[@]}" map-set 1 $(cvm_map_paths)
check "3 connections" cvm_connected 3
check "attach epoch 3" attach 3
check "every block reads as last written (none from device 1)" \
	reads_back "$tmp/c"
check "stale objects resynced (within 60 s)" cvm_wait_for 60 stale_zero
check "every object the same on all three replicas" replicas_identical
check "versions agree on all three" versions_agree

echo "# 4. a write that reached one replica only (an initiator crash)"
check "intent bits cleared (within 20 s)" cvm_wait_for 20 no_intent_left
check "detach" detach
head -c $OBJ "$tmp/d" >"$tmp/d1"
check "object 5 written on device 2 only (cvm-wire, epoch 3)" \
	"$wire" "127.0.0.1:$(cvm_port 2)" write --device 2 --volume $VOL \
	--object 5 --length $OBJ --file "$tmp/d1" --attach-epoch 3 --fua
check "replicas of object 5 differ now" eval "! replicas_identical >/dev/null"
dmesg -C
check "attach epoch 4" attach 4
check "object 5 reads as one of the two copies" eval \
	"dd if=/dev/cvm0 bs=1M skip=5 count=1 iflag=direct status=none >'$tmp/r5' &&
	 { cmp -s '$tmp/r5' '$tmp/d1' || cmp -s '$tmp/r5' <(dd if='$tmp/c' bs=1M skip=5 count=1 status=none); }"
check "the scan settled object 5" \
	eval "dmesg | grep -q '1 objects had write intent, 2 replicas recorded stale'"
check "stale objects resynced (within 60 s)" cvm_wait_for 60 stale_zero
check "every object the same on all three replicas" replicas_identical
check "object 5 reads the same again" eval \
	"cmp '$tmp/r5' <(dd if=/dev/cvm0 bs=1M skip=5 count=1 iflag=direct status=none)"

echo "# 5. the pool's min_size (in the map) governs the write quorum"
# shellcheck disable=SC2046 # cvm_map_paths: several arguments
check "map epoch 2: pool 3 min_size 3" "${ig[@]}" map-set 2 --min-size 3 \
	$(cvm_map_paths)
check "device 0's target stops listening" cvm_unlisten 0
echo 3 >/sys/module/cvm/parameters/loss_timeout
check "a write with 2 of 3 replicas is held, then fails (loss_timeout 3 s)" \
	eval "! dd if='$tmp/a' of=/dev/cvm0 bs=1M count=1 oflag=direct status=none 2>/dev/null"
echo 600 >/sys/module/cvm/parameters/loss_timeout
# shellcheck disable=SC2046 # cvm_map_paths: several arguments
check "map epoch 3: min_size back to the default (2 of 3)" "${ig[@]}" \
	map-set 3 $(cvm_map_paths)
check "the same write succeeds on 2 of 3" write_all "$tmp/a"
check "device 0's target listens again" cvm_listen 0
check "stale objects resynced (within 60 s)" cvm_wait_for 60 stale_zero
check "every object the same on all three replicas" replicas_identical

echo "# 6. a discard of whole objects frees their extents"
# has_extent D O: device D holds object O (STAT answers; NOT_FOUND else).
has_extent() {
	"$wire" "127.0.0.1:$(cvm_port "$1")" stat --device "$1" --volume $VOL \
		--object "$2" >/dev/null 2>&1
}
none_of_0_7() {
	local d o
	for d in 0 1 2; do
		for o in 0 1 2 3 4 5 6 7; do
			has_extent $d $o && { echo "device $d still holds object $o"; return 1; }
		done
	done
	return 0
}
check "every device holds objects 0-7 before" eval \
	"has_extent 0 0 && has_extent 1 7 && has_extent 2 3"
check "blkdiscard objects 0-7 (8 MiB)" blkdiscard -o 0 -l $((8 * OBJ)) /dev/cvm0
check "no device holds an extent of objects 0-7 now" none_of_0_7
check "they read as zeroes" eval \
	"cmp <(dd if=/dev/cvm0 bs=1M count=8 iflag=direct status=none) <(head -c $((8 * OBJ)) /dev/zero)"
check "blkdiscard of half of object 8 keeps its extent" eval \
	"blkdiscard -o $((8 * OBJ)) -l $((OBJ / 2)) /dev/cvm0 && has_extent 0 8 && has_extent 1 8"
check "objects 8-15 read as written (the discarded half as zeroes)" eval \
	"cmp <(dd if=/dev/cvm0 bs=1M skip=8 iflag=direct status=none) <(head -c $((OBJ / 2)) /dev/zero; tail -c +$((8 * OBJ + OBJ / 2 + 1)) '$tmp/a')"
check "every object the same on all three replicas" replicas_identical

check "detach" detach
check "unload cvm.ko (the next test starts from map epoch 1)" rmmod cvm
cvm_three_targets_down
rm -rf "$tmp"
check_summary
