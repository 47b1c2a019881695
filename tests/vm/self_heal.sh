#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 80 s)
# transports: tcp
#
# Issue 16: a device lost for good is healed around with no command.  Four
# hosts (brd devices behind targets at 127.0.0.1:7001-7004) hold a
# replicated(3) volume r0 (attached, fio writing and verifying part of it)
# and an ec(2,1) volume e0 (detached).  Device 4's target goes away for
# good.  After down_out_interval (3 s here) the leader marks it down and
# out (down_out.h); its PGs stay pinned to their rows while cvm.ko copies
# r0's objects from the survivors and cvmd rebuilds e0's lost shards from
# the other two (backfill.h), then the pins are cut.  A second device lost
# after that loses nothing: both volumes still read back as written.  On
# the code before this test nothing marked the device out, and the
# backfill waited for the dead device forever (its listing failed).
#
# Then device 4 comes back (its RAM disk kept its old copies) and is marked
# in: placement gives it its PGs back, and it receives only what it lacks.
# The bytes its target received (CVM_TARGET_DEVICE_ATTR_COPIED) are at most
# the objects it did not hold or that were written meanwhile, and an r0
# object discarded while it was out reads back as zeroes from it.  Before
# this test every copy was sent whole again, and the discarded object's old
# bytes stayed on it, to be read after the cut-over.
# Runs INSIDE the VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/self_heal.sh
set -u
top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
. tests/lib/check.sh
. tests/lib/cvm_vm.sh
require_vm

bin=$top/build/userspace
cvmd=$bin/cvmd/cvmd
cvmadm=$bin/cvmadm/cvmadm
work=$(mktemp -d /tmp/cvm-self-heal.XXXXXX)
CVMD_ARGS="--backfill-every 1"
. tests/lib/cvmd_local.sh
# The target of device I stops serving it for good (as if powered off).
kill_device() {
	"$cvmadm" target device remove "$1" &&
	"$cvmadm" target unlisten --address "$(ep "$1")"
}
map_epoch() { "$cvmadm" --json map show | python3 -c 'import json, sys; print(json.load(sys.stdin)["epoch"])'; }
# Bytes resync and backfill wrote to device I since its target added it.
copied() {
	"$cvmadm" --json device list | python3 -c '
import json, sys
d = [d for d in json.load(sys.stdin) if d["id"] == int(sys.argv[1])][0]
print((d.get("usage") or {}).get("copied", -1))' "$1"
}
# Device 4 received at most what it lacked: objects (shards) it did not
# hold before its loss, and r0's objects fio wrote meanwhile (16 MiB on),
# whole; and at least the ones it did not hold.  What it held and nobody
# wrote meanwhile must be kept, not sent again.
received_only_lacking() {
	local got=$1 obj=$2 shard_len=$3 new_r0 new_e0 written kept lo hi
	new_r0=$(comm -13 "$work/before.r0" "$work/after.r0" | wc -l)
	new_e0=$(comm -13 "$work/before.e0" "$work/after.e0" | wc -l)
	written=$(comm -12 "$work/before.r0" "$work/after.r0" |
		awk -v o="$obj" '$1 * o >= 16 * 1048576' | wc -l)
	kept=$(($(comm -12 "$work/before.r0" "$work/after.r0" | wc -l) - written +
		$(comm -12 "$work/before.e0" "$work/after.e0" | wc -l)))
	lo=$((new_r0 * obj + new_e0 * shard_len))
	hi=$((lo + written * obj))
	echo "received $got bytes; lacked $new_r0 r0 objects and $new_e0 e0 shards," \
		"$written written meanwhile; $kept held unchanged: expected $lo..$hi"
	((kept > 0 && got >= lo && got <= hi))
}
# Device I's copy of r0's object N reads as zeroes (or is absent).
zeroes_on() {
	local off vid
	read -r vid _ < <(volume_ids r0)
	for ((off = 0; off < $3; off += 1 << 20)); do
		"$bin/tools/cvm-wire" "$(ep "$1")" read --device "$1" --volume "$vid" \
			--object "$2" --offset "$off" --length $((1 << 20)) |
			cmp -s - <(head -c $((1 << 20)) /dev/zero) || return 1
	done
}
fio_verify() {
	fio --name=heal --filename=/dev/cvm0 --offset=16M --size=16M \
		--rw=randwrite --bs=4k --iodepth=8 --ioengine=libaio --direct=1 \
		--verify=crc32c --verify_fatal=1 --verify_backlog=256 \
		--rate_iops=300 --runtime=20 --time_based \
		--output="$work/fio.out" >/dev/null 2>&1 ||
		{ cat "$work/fio.out"; return 1; }
}

# 192 MiB: with two devices lost, the two left hold every copy and stay
# below nearfull (which would hold the backfill back).
check "brd: 4 x 192 MiB" modprobe brd rd_nr=4 rd_size=$((192 << 10))
check "cvmd starts" start_cvmd
for i in 1 2 3 4; do
	check "host storage$i with /dev/ram$((i - 1))" add_host "$i" 192M
	check "storage$i serves its device" serve_host "$i"
done
check "config set down_out_interval 3" "$cvmadm" config set down_out_interval 3
check "config get shows it" eval "'$cvmadm' config get down_out_interval | grep -q '^down_out_interval = 3 '"
check "config set refuses a bad value" \
	eval "'$cvmadm' config set down_out_interval soon 2>&1 | grep -q 'must be 0 (never)'"
check "pool rep3 (pg 32)" "$cvmadm" pool create rep3 --policy replicated:3 --pg-num 32
check "pool ec21 (pg 16)" "$cvmadm" pool create ec21 --policy ec:2,1 --pg-num 16
check "volume r0 (32 MiB) in rep3" "$cvmadm" volume create r0 --pool rep3 --size 32M
check "volume e0 (16 MiB, 1 MiB objects) in ec21" \
	"$cvmadm" volume create e0 --pool ec21 --size 16M --object-size 1M
check "attach r0 as /dev/cvm0" eval "[[ \$('$cvmadm' volume attach r0) == /dev/cvm0 ]]"
check "attach e0 as /dev/cvm1" eval "[[ \$('$cvmadm' volume attach e0) == /dev/cvm1 ]]"
head -c $((16 << 20)) /dev/urandom >"$work/r0"
head -c $((16 << 20)) /dev/urandom >"$work/e0"
check "r0: 16 MiB of known data written (and 16 MiB for fio)" \
	eval "dd if='$work/r0' of=/dev/cvm0 bs=1M oflag=direct status=none &&
	      dd if=/dev/urandom of=/dev/cvm0 bs=1M seek=16 count=16 oflag=direct status=none"
check "e0: 16 MiB of known data written" \
	dd if="$work/e0" of=/dev/cvm1 bs=1M oflag=direct status=none
check "volume detach e0" "$cvmadm" volume detach e0
check "device 4 holds PGs" eval "(( \$(pgs_on 4) > 0 ))"
list 4 r0 >"$work/before.r0"
list 4 e0 >"$work/before.e0"
check "device 4 holds r0 objects and e0 shards" \
	eval "[[ -s '$work/before.r0' && -s '$work/before.e0' ]]"

echo "# device 4 is lost for good while fio writes and verifies r0"
fio_verify &
fio_pid=$!
check "device 4's target goes away" kill_device 4
check "marked down and out after down_out_interval, with no command" \
	wait_for 30 '[[ $(device_field 4 in) == False && $(device_field 4 up) == False ]]'
check "cvmd logged why" grep -q "device 4 marked down and out" "$work/cvmd.log"
check "r0 reads back as written while device 4's PGs move" same /dev/cvm0 16 "$work/r0"
check "rebuilt from the survivors: pins cut, nothing left on device 4" \
	wait_for 90 '(( $(pinned) == 0 && $(pgs_on 4) == 0 ))'
check "cvmd rebuilt e0's lost shards from the other two" \
	grep -Eq "backfill: .* moved to their devices .* [1-9][0-9]* rebuilt" "$work/cvmd.log"
check "e0's parity is ISA-L's on every object" parity_isal e0 16 2 1 1 2 3
check "cvmd logged the recovery's start, degraded PGs first, and its end" \
	wait_for 10 'grep -Eq "recovery started: [0-9]+ PGs to move, [1-9][0-9]* of them degraded" "$work/cvmd.log" &&
		     grep -q "recovery done: " "$work/cvmd.log"'
check "status: recovery idle" eval "'$cvmadm' status | grep -Eq '^ *recovery:? +idle$'"
fio_rc=0
wait "$fio_pid" || fio_rc=$?
check "fio wrote and verified through the loss without an error" \
	eval "((fio_rc == 0)) || { cat '$work/fio.out'; false; }"
check "r0 reads back as written" same /dev/cvm0 16 "$work/r0"
check "attach e0 again" eval "[[ \$('$cvmadm' volume attach e0) == /dev/cvm1 ]]"
check "e0 reads back as written" same /dev/cvm1 16 "$work/e0"

echo "# a second device lost after the rebuild loses nothing"
check "device 3's target goes away" kill_device 3
check "device 3 is marked down and out too" \
	wait_for 20 '[[ $(device_field 3 up) == False && $(device_field 3 in) == False ]]'
check "recovery status: PGs degraded (two hosts left for three copies)" \
	wait_for 20 '"$cvmadm" recovery status | grep -Eq "^[1-9][0-9]* PGs degraded, 0 misplaced"'
check "r0 reads back as written without devices 3 and 4" same /dev/cvm0 16 "$work/r0"
check "e0 reads back as written without devices 3 and 4" same /dev/cvm1 16 "$work/e0"

echo "# device 4 comes back and is marked in: it receives only what it lacks"
read -r osize shard_len < <("$cvmadm" --json volume show e0 | python3 -c '
import json, sys
v = json.load(sys.stdin)
print(v["object_size"], (v["object_size"] + 2 * v["stripe_unit"] - 1) // (2 * v["stripe_unit"]) * v["stripe_unit"])')
robj=$("$cvmadm" --json volume show r0 | python3 -c 'import json, sys; print(json.load(sys.stdin)["object_size"])')
# An object of r0's known half that device 4 held: discarded while it is out.
gone=$(awk -v o="$robj" '$1 * o < 16 * 1048576 { print $1; exit }' "$work/before.r0")
check "discard r0 object $gone (device 4 held it) while device 4 is out" \
	blkdiscard -o $((gone * robj)) -l "$robj" /dev/cvm0
dd if=/dev/zero of="$work/r0" bs="$robj" seek="$gone" count=1 conv=notrunc status=none
check "volume detach e0 (cvmd copies it)" "$cvmadm" volume detach e0
check "device 4's target serves its old store again" \
	eval "'$cvmadm' target listen --address '$(ep 4)' && '$cvmadm' target device add 4"
back=$(map_epoch)
check "device in 4" "$cvmadm" device in 4
check "a new epoch places its PGs on it again" \
	eval "(( \$(map_epoch) > back ))"
check "backfill copies them and cuts the pins: device 4 holds its PGs" \
	wait_for 90 '(( $(pinned) == 0 && $(pgs_on 4) > 0 && $(map_epoch) > back + 1 ))'
list 4 r0 >"$work/after.r0"
list 4 e0 >"$work/after.e0"
check "device 4 received only what it lacked" \
	received_only_lacking "$(copied 4)" "$robj" "$shard_len"
received_only_lacking "$(copied 4)" "$robj" "$shard_len" | sed 's/^/# /'
check "device 4's copy of the discarded object reads as zeroes" \
	zeroes_on 4 "$gone" "$robj"
check "r0 reads back as written (object $gone discarded)" same /dev/cvm0 16 "$work/r0"
check "attach e0 again" eval "[[ \$('$cvmadm' volume attach e0) == /dev/cvm1 ]]"
check "e0 reads back as written" same /dev/cvm1 16 "$work/e0"

check "volume detach r0" "$cvmadm" volume detach r0
check "volume detach e0" "$cvmadm" volume detach e0
for i in 1 2 4; do
	check "target device remove $i" "$cvmadm" target device remove "$i"
	check "target unlisten $(ep "$i")" "$cvmadm" target unlisten --address "$(ep "$i")"
done
check "cvmd stops" stop_cvmd
check "reload cvm.ko" eval "rmmod cvm && insmod kernel/cvm.ko"
check "rmmod brd" rmmod brd
check_summary
