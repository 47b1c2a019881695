#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 150 s)
# transports: tcp
#
# Issue 16: adding capacity must never make data unreadable.  Three hosts
# (brd devices behind targets at 127.0.0.1:7001-7003) hold a replicated(3)
# and an ec(2,1) volume with known data; fio writes and verifies on both
# while two more hosts with devices are added (127.0.0.1:7004-7005).  The
# map moves to new epochs whose placement sends PGs to the empty new
# devices; PGs holding data stay pinned to the devices holding it
# (kernel/common/placement.h), so every byte reads back as written and fio
# sees no error.  The data moves while fio goes on: cvm.ko copies both
# attached volumes (the EC one shard by shard) and the pins are cut under
# load; then every r0 object has three equal copies, every e0 object the
# parity ISA-L computes, and the copies no row names are removed (the
# space used is what it was).  Host storage2 is then drained under fio
# verify (`host drain`, e0 detached: cvmd copies it) and removed.  On the
# code before pins both volumes read back different where PGs moved;
# before EC backfill in cvm.ko, e0's PGs stayed pinned until its detach.
# Runs INSIDE the VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/scale_out.sh
set -u
top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
. tests/lib/check.sh
. tests/lib/cvm_vm.sh
require_vm

bin=$top/build/userspace
cvmd=$bin/cvmd/cvmd
cvmadm=$bin/cvmadm/cvmadm
work=$(mktemp -d /tmp/cvm-scale-out.XXXXXX)
. tests/lib/cvmd_local.sh
status_field() {
	"$cvmadm" --json status | python3 -c \
		"import json,sys; s=json.load(sys.stdin); print(s$1)"
}
# Until cvm.ko holds the store's newest epoch.
epochs_agree() {
	local k s i
	for ((i = 0; i < 100; i++)); do
		k=$(status_field '["modules"]["cvm"]["map_epoch"]')
		s=$(status_field '["daemon"]["map_epoch"]')
		[[ -n $k && $k == "$s" ]] && return 0
		sleep 0.1
	done
	echo "kernel epoch '$k', store epoch '$s'"
	return 1
}
# Device I's used bytes as its target reports them.
used() {
	"$cvmadm" --json device list | python3 -c '
import json, sys
d = [d for d in json.load(sys.stdin) if d["id"] == int(sys.argv[1])][0]
print(d["usage"]["used"] if d["usage"] else -1)' "$1"
}
recovery_idle() {
	"$cvmadm" recovery status | grep -q '^map epoch [0-9]*: 0 of 96 PGs moving$'
}
pinned_of() {
	"$cvmadm" --json map show | python3 -c '
import json, sys
print([p["pinned"] for p in json.load(sys.stdin)["pools"] if p["name"] == sys.argv[1]][0])' "$1"
}
# fio_verify [DEV OFFSET SIZE RUNTIME]: writes and verifies (default: r0's
# second half, 40 s).  Stopped early by SIGINT (stop_fio), it exits 128: a
# clean run still, if no job saw an error.
fio_verify() {
	local dev=${1:-/dev/cvm0} out rc=0
	out=$work/fio.${dev##*/}.out
	fio --name=scale --filename="$dev" --offset="${2:-32M}" --size="${3:-32M}" \
		--rw=randwrite --bs=4k --iodepth=8 --ioengine=libaio --direct=1 \
		--verify=crc32c --verify_fatal=1 --verify_backlog=256 \
		--rate_iops=300 --runtime="${4:-40}" --time_based \
		--output="$out" >/dev/null 2>&1 || rc=$?
	((rc == 128)) && grep -q 'err= 0' "$out" && ! grep -Eq 'err= *[1-9]' "$out" && rc=0
	((rc == 0)) || { cat "$out"; return 1; }
}
# stop_fio PID: SIGINT to the fio that fio_verify (run as PID) started.
stop_fio() { pkill -INT -P "$1" fio; }

check "brd: 5 x 128 MiB" modprobe brd rd_nr=5 rd_size=$((128 << 10))
check "cvmd starts" start_cvmd
for i in 1 2 3; do
	check "host storage$i with /dev/ram$((i - 1))" add_host "$i"
	check "storage$i serves its device" serve_host "$i"
done
check "pool rep3 (pg 64)" "$cvmadm" pool create rep3 --policy replicated:3 --pg-num 64
check "pool ec21 (pg 32)" "$cvmadm" pool create ec21 --policy ec:2,1 --pg-num 32
check "volume r0 (64 MiB) in rep3" "$cvmadm" volume create r0 --pool rep3 --size 64M
check "volume e0 (32 MiB) in ec21" "$cvmadm" volume create e0 --pool ec21 --size 32M
check "attach r0 as /dev/cvm0" eval "[[ \$('$cvmadm' volume attach r0) == /dev/cvm0 ]]"
check "attach e0 as /dev/cvm1" eval "[[ \$('$cvmadm' volume attach e0) == /dev/cvm1 ]]"
head -c $((32 << 20)) /dev/urandom >"$work/r0"
head -c $((32 << 20)) /dev/urandom >"$work/e0"
check "r0: 32 MiB of known data written (and 32 MiB for fio)" \
	eval "dd if='$work/r0' of=/dev/cvm0 bs=1M oflag=direct status=none &&
	      dd if=/dev/urandom of=/dev/cvm0 bs=1M seek=32 count=32 oflag=direct status=none"
check "e0: 32 MiB of known data written" \
	dd if="$work/e0" of=/dev/cvm1 bs=1M oflag=direct status=none
check "r0 reads back as written" same /dev/cvm0 32 "$work/r0"
check "e0 reads back as written" same /dev/cvm1 32 "$work/e0"
truncate -s 16M "$work/e0"	# fio writes the rest from here on


echo "# two hosts added while fio writes and verifies r0's and e0's second halves"
# They run until the pins are cut (at most 120 s), then are stopped.  The
# copies may take 16 MiB/s beside them (default 2 MiB/s: the test is about
# correctness under load, not pacing; the module reload at the end resets it).
echo 16384 >/sys/module/cvm/parameters/resync_min_rate
fio_verify /dev/cvm0 32M 32M 120 &
fio_pid=$!
fio_verify /dev/cvm1 16M 16M 120 &
fio_e0=$!
sleep 2
for i in 4 5; do
	check "host storage$i with /dev/ram$((i - 1)) added" add_host "$i"
	check "storage$i serves its device" serve_host "$i"
done
check "cvm.ko holds the newest epoch" epochs_agree
check "PGs holding data are pinned where their data is" eval "(( \$(pinned) > 0 ))"
check "r0 reads back as written after the map moved" same /dev/cvm0 32 "$work/r0"
check "e0 reads back as written after the map moved" same /dev/cvm1 16 "$work/e0"
echo "# both stay attached and written: cvm.ko copies their PGs (backfill.c, ec_io.c)"
check "both pools' pins are cut while fio writes r0 and e0" \
	wait_for 90 '(( $(pinned) == 0 ))'
check "the new devices hold data now" \
	eval "(( \$(used 4) > 0 && \$(used 5) > 0 ))"
check "fio was still running when the pins were cut" \
	eval "kill -0 $fio_pid && kill -0 $fio_e0"
stop_fio "$fio_pid"
stop_fio "$fio_e0"
fio_rc=0
wait "$fio_pid" || fio_rc=$?
check "fio wrote and verified r0 through the change without an error" \
	eval "((fio_rc == 0)) || { cat '$work/fio.cvm0.out'; false; }"
fio_rc=0
wait "$fio_e0" || fio_rc=$?
check "fio wrote and verified e0 through the change without an error" \
	eval "((fio_rc == 0)) || { cat '$work/fio.cvm1.out'; false; }"
check "r0 reads back as written from its new devices" same /dev/cvm0 32 "$work/r0"
check "e0 reads back as written from its new devices" same /dev/cvm1 16 "$work/e0"
check "cvm.ko holds the epoch that cut them" epochs_agree
# (Space is no measure now: e0's EC journal has an object on each device
# that held one of its slots since.)
check "old copies removed: 16 r0 objects x 3 and 8 e0 objects x 3 shards held" \
	wait_for 60 '(( $(shards_total r0 1 2 3 4 5) == 48 && $(shards_total e0 1 2 3 4 5) == 24 ))'
check "recovery status: nothing moving, nothing left to remove" \
	wait_for 10 recovery_idle
check "every r0 object has three equal copies" replicas_equal r0 64 3 1 2 3 4 5
check "every e0 object has the parity ISA-L computes" parity_isal e0 32 2 1 1 2 3 4 5

echo "# host storage2 drained under fio verify (r0 attached, e0 detached), then removed"
check "volume detach e0" "$cvmadm" volume detach e0
fio_verify &
fio_pid=$!
sleep 2
check "host drain storage2: the map places nothing on it" \
	"$cvmadm" host drain storage2 --timeout 90
check "fio was still running when the drain ended" kill -0 "$fio_pid"
stop_fio "$fio_pid"	# the drain is what it was there for
fio_rc=0
wait "$fio_pid" || fio_rc=$?
check "fio wrote and verified through the drain without an error" \
	eval "((fio_rc == 0)) || { cat '$work/fio.cvm0.out'; false; }"
check "r0 reads back as written" same /dev/cvm0 32 "$work/r0"
check "target device remove 2" "$cvmadm" target device remove 2
check "target unlisten $(ep 2)" "$cvmadm" target unlisten --address "$(ep 2)"
check "device remove 2" "$cvmadm" device remove 2
check "host remove storage2" "$cvmadm" host remove storage2
check "r0 reads back as written without storage2" same /dev/cvm0 32 "$work/r0"
check "attach e0 again" eval "[[ \$('$cvmadm' volume attach e0) == /dev/cvm1 ]]"
check "e0 reads back as written without storage2" same /dev/cvm1 16 "$work/e0"
check "volume detach r0" "$cvmadm" volume detach r0
check "volume detach e0" "$cvmadm" volume detach e0
for i in 1 3 4 5; do
	check "target device remove $i" "$cvmadm" target device remove "$i"
	check "target unlisten $(ep "$i")" "$cvmadm" target unlisten --address "$(ep "$i")"
done
check "cvmd stops" stop_cvmd
check "reload cvm.ko" eval "rmmod cvm && insmod kernel/cvm.ko"
check "rmmod brd" rmmod brd
check_summary
