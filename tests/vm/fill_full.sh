#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 30 s)
# transports: tcp
#
# Issue 16: a device filled to its full ratio.  Four hosts with 64 MiB
# devices hold a thin replicated(3) volume of 128 MiB (more than they can
# hold three times), its PGs spread unevenly, so one device fills first;
# nearfull_ratio 0.3 and full_ratio 0.4, and a writer at 4 MiB/s: one
# object (one 4 MiB extent on three devices) a second, so the writer
# cannot outrun cvmd's round (the target's own limit is the backstop; at
# 12 MiB/s of 1 MiB objects, each taking a whole extent, it did in CI).  A writer
# fills the volume: past nearfull the fullest device is marked so (status
# and df warn), past full the map marks it full and cvm.ko refuses writes
# reaching it with NO_SPACE before sending any (fullness.h): the writer
# gets ENOSPC and no copy went stale.  Discarding the volume frees the
# space, the marks clear, and writes go through again.  On the code
# before this test the first device to run out refused its copies while
# the others took them: those copies went stale.  Runs INSIDE the VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/fill_full.sh
set -u
top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
. tests/lib/check.sh
. tests/lib/cvm_vm.sh
require_vm

bin=$top/build/userspace
cvmd=$bin/cvmd/cvmd
cvmadm=$bin/cvmadm/cvmadm
work=$(mktemp -d /tmp/cvm-fill-full.XXXXXX)
CVMD_ARGS="--backfill-every 1"
. tests/lib/cvmd_local.sh
full_devices() {
	"$cvmadm" --json device list | python3 -c '
import json, sys
print(" ".join(str(d["id"]) for d in json.load(sys.stdin) if d["full"]))'
}
stale_objects() {
	"$cvmadm" --json status | python3 -c '
import json, sys
print(json.load(sys.stdin)["modules"]["cvm"]["stale_objects"])'
}
fill() {
	fio --name=fill --filename=/dev/cvm0 --rw=write --bs=1M --size=128M \
		--ioengine=libaio --iodepth=2 --direct=1 --rate=4m \
		--output="$work/fio.out" >/dev/null 2>&1
}

check "brd: 4 x 64 MiB" modprobe brd rd_nr=4 rd_size=$((64 << 10))
check "cvmd starts" start_cvmd
# Before the devices: each node's cvmd reads the ratios every 10 s, and at
# once when it sees a device for the first time.
check "config set nearfull_ratio 0.3" "$cvmadm" config set nearfull_ratio 0.3
check "config set full_ratio 0.4" "$cvmadm" config set full_ratio 0.4
for i in 1 2 3 4; do
	check "host storage$i serving /dev/ram$((i - 1))" \
		eval "add_host $i 64M && serve_host $i"
done
check "config set refuses full below nearfull" \
	eval "'$cvmadm' config set full_ratio 0.2 2>&1 | grep -q 'must not exceed full_ratio'"
check "pool rep3 (pg 16)" "$cvmadm" pool create rep3 --policy replicated:3 --pg-num 16
check "volume v0 (128 MiB, thin) in rep3" \
	"$cvmadm" volume create v0 --pool rep3 --size 128M
check "attach v0 as /dev/cvm0" eval "[[ \$('$cvmadm' volume attach v0) == /dev/cvm0 ]]"

echo "# a writer fills the volume past the devices' full ratio"
fill_rc=0
fill || fill_rc=$?
check "the writer got ENOSPC" \
	eval "((fill_rc != 0)) && grep -q 'No space left on device' '$work/fio.out' || { cat '$work/fio.out'; false; }"
full=$(full_devices)
check "a device is marked full" eval "[[ -n '$full' ]]"
check "cvmd logged it" grep -q "device ${full%% *} is full" "$work/cvmd.log"
check "device list shows it" eval "'$cvmadm' device list | grep -q 'up,in,full'"
check "df warns" eval "'$cvmadm' df | grep -q 'WARNING: device ${full%% *} is full'"
check "status warns" eval "'$cvmadm' status | grep -q 'WARNING fullness'"
check "writing the whole volume again gets ENOSPC at once" \
	eval "! dd if=/dev/zero of=/dev/cvm0 bs=1M count=128 oflag=direct status=none 2>'$work/dd.err' && grep -q 'No space left' '$work/dd.err'"
check "no copy went stale" eval "(( \$(stale_objects) == 0 )) || { '$cvmadm' status; false; }"
check "used space stopped short of the devices' end" \
	eval "(( \$('$cvmadm' --json device list | python3 -c 'import json,sys; print(max(d[\"usage\"][\"used\"] for d in json.load(sys.stdin)))') < 64 << 20 ))"

echo "# discarding frees the space: writes resume"
check "blkdiscard /dev/cvm0" blkdiscard /dev/cvm0
check "the full marks clear" wait_for 20 '[[ -z $(full_devices) ]]'
check "a write goes through again" \
	dd if=/dev/urandom of=/dev/cvm0 bs=1M count=4 oflag=direct status=none
check "no copy went stale" eval "(( \$(stale_objects) == 0 ))"

check "volume detach v0" "$cvmadm" volume detach v0
for i in 1 2 3 4; do
	check "target device remove $i" "$cvmadm" target device remove "$i"
	check "target unlisten $(ep "$i")" "$cvmadm" target unlisten --address "$(ep "$i")"
done
check "cvmd stops" stop_cvmd
check "reload cvm.ko" eval "rmmod cvm && insmod kernel/cvm.ko"
check "rmmod brd" rmmod brd
check_summary
