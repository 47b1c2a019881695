#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The product's control path end to end: cvmadm -> cvmd -> generic netlink
# -> cvm_target.ko and cvm.ko.  Three brd devices stand in for three hosts'
# NVMe devices at 127.0.0.1:7001-7003; cvmadm describes them, starts the
# targets, attaches a replicated(3) volume and fio verifies data on it;
# ext4 survives detach and re-attach; a restarted cvmd finds the kernel in
# step with its database.  Runs INSIDE the VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/cvmadm_datapath.sh
set -u
top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
. tests/lib/check.sh
require_vm

bin=$top/build/userspace
cvmd=$bin/cvmd/cvmd
cvmadm=$bin/cvmadm/cvmadm
work=$(mktemp -d /tmp/cvm-datapath.XXXXXX)
mnt=$work/mnt
export CVM_SOCKET=$work/cvmd.sock

start_cvmd() {
	"$cvmd" --db "$work/db" --socket "$CVM_SOCKET" --pid-file "$work/pid" \
		--host storage1 2>>"$work/cvmd.log"
}
stop_cvmd() {
	local pid
	pid=$(cat "$work/pid" 2>/dev/null) || return 0
	kill "$pid"
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	return 1
}
cleanup() {
	umount "$mnt" 2>/dev/null
	stop_cvmd
	rm -rf "$work"
}
trap cleanup EXIT

# Kernel view: "epoch N" and the attached volume ids, from cvmadm's --json.
kernel_epoch() {
	"$cvmadm" --json status | python3 -c \
		'import json,sys; print(json.load(sys.stdin)["modules"]["cvm"]["map_epoch"])'
}
store_epoch() {
	"$cvmadm" --json status | python3 -c \
		'import json,sys; print(json.load(sys.stdin)["daemon"]["map_epoch"])'
}
kernel_volumes() { python3 tests/vm/lib/initiator_genl.py list | awk '{print $1, $4, $5}'; }
epochs_agree() {
	local k s
	k=$(kernel_epoch) s=$(store_epoch)
	[[ -n "$k" && "$k" == "$s" ]] || { echo "kernel epoch '$k', store epoch '$s'"; return 1; }
}
attach_epoch() {
	"$cvmadm" --json volume list | python3 -c \
		'import json,sys; print([v for v in json.load(sys.stdin) if v["name"]=="vol0"][0]["attach_epoch"])'
}
fio_verify() {
	fio --name=verify --filename=/dev/cvm0 --rw=randwrite --bs=4k --size=32M \
		--iodepth=16 --ioengine=libaio --direct=1 --verify=crc32c \
		--output-format=terse --terse-version=3 >"$work/fio.out" 2>&1 ||
		{ cat "$work/fio.out"; return 1; }
}
write_files() {
	mkdir -p "$mnt/d" &&
	for i in $(seq 8); do head -c $((i * 300000)) /dev/urandom >"$mnt/d/f$i" || return; done &&
	(cd "$mnt/d" && md5sum f* >"$work/md5") && sync
}
same_files() { (cd "$mnt/d" && md5sum -c --quiet "$work/md5"); }

mkdir -p "$mnt"
check "brd: 3 x 256 MiB" modprobe brd rd_nr=3 rd_size=$((256 << 10))
check "cvmd starts as host storage1" start_cvmd
for i in 1 2 3; do
	check "host add storage$i at 127.0.0.1:700$i" \
		"$cvmadm" host add "storage$i" --address "127.0.0.1:700$i"
	check "device add storage$i /dev/ram$((i - 1))" "$cvmadm" device add \
		"storage$i" "/dev/ram$((i - 1))" --capacity 256M
done
check "pool create replicated:3" "$cvmadm" pool create rep3 --policy replicated:3 --pg-num 64
check "volume create vol0 (128 MiB)" "$cvmadm" volume create vol0 --pool rep3 --size 128M
check "map pushed on topology change: kernel epoch = store epoch" epochs_agree

check "detach of an unattached volume refused" refuses "volume 'vol0' is not attached" \
	"$cvmadm" volume detach vol0
for i in 1 2 3; do
	check "target listen 127.0.0.1:700$i" "$cvmadm" target listen --address "127.0.0.1:700$i"
done
check "target listen on an unknown address refused" refuses "no host has address" \
	"$cvmadm" target listen --address 127.0.0.1:7999
check "target device add 4 (unknown) refused" refuses "device 4 does not exist" \
	"$cvmadm" target device add 4
check "target device add without --format refused with the kernel's reason" \
	refuses "refused by cvm_target" "$cvmadm" target device add 1
for i in 1 2 3; do
	check "target device add $i --format" "$cvmadm" target device add "$i" --format
done
check "target device add 1 again refused (already served)" refuses "exists" \
	"$cvmadm" target device add 1 --format
check "volume attach vol0 prints /dev/cvm0" \
	eval "[[ \$('$cvmadm' volume attach vol0) == /dev/cvm0 ]]"
check "attach again refused: attached to /dev/cvm0 already" \
	refuses "volume 'vol0' is attached to /dev/cvm0 already" "$cvmadm" volume attach vol0
check "attach epoch 1 recorded" eval "[[ \$(attach_epoch) == 1 ]]"
check "volume attach --json names the device" \
	refuses "attached to /dev/cvm0" "$cvmadm" --json volume attach vol0

check "fio: 4k randwrite 32M iodepth 16, crc32c verify" fio_verify
check "mkfs.ext4 /dev/cvm0" mkfs.ext4 -q -F /dev/cvm0
check "mount" mount /dev/cvm0 "$mnt"
check "write 8 files, md5sum" write_files
check "detach while mounted refused (busy)" refuses "busy|open" "$cvmadm" volume detach vol0
check "umount" umount "$mnt"
check "volume detach vol0" "$cvmadm" volume detach vol0
check "kernel has no volume after detach" eval "[[ -z \$(kernel_volumes) ]]"
check "volume attach vol0 again" eval "[[ \$('$cvmadm' volume attach vol0) == /dev/cvm0 ]]"
check "attach epoch bumped to 2 (fencing)" eval "[[ \$(attach_epoch) == 2 ]]"
check "mount again" mount /dev/cvm0 "$mnt"
check "md5sums identical after detach + attach" same_files
check "umount" umount "$mnt"

before=$(kernel_volumes)
check "cvmd stops" stop_cvmd
check "cvmd restarts: re-pushes its state" start_cvmd
check "kernel volumes unchanged after restart" eval "[[ \"\$(kernel_volumes)\" == \"$before\" ]]"
check "map epoch: kernel = store after restart" epochs_agree
check "a topology change is pushed to the kernel" "$cvmadm" host add spare --address 127.0.0.1:7010
check "map epoch: kernel = store after host add" epochs_agree

# cvm.ko loses its state (module reload); a restarted cvmd puts it back.
check "cvmd stops" stop_cvmd
check "detach in the kernel behind cvmd's back" python3 tests/vm/lib/initiator_genl.py detach 1
check "rmmod cvm + insmod (kernel forgets the map)" \
	eval "rmmod cvm && insmod kernel/cvm.ko"
check "cvmd restarts: re-pushes map, re-attaches vol0" start_cvmd
check "map epoch: kernel = store after reload" epochs_agree
check "vol0 re-attached as /dev/cvm0" eval "[[ \$(kernel_volumes | awk '{print \$3}') == vol0 ]]"
check "attach epoch bumped to 3 by the re-attach" eval "[[ \$(attach_epoch) == 3 ]]"
check "data still there after re-attach" eval "mount /dev/cvm0 '$mnt' && same_files && umount '$mnt'"

check "volume detach vol0" "$cvmadm" volume detach vol0
check "detach again refused: not attached" refuses "volume 'vol0' is not attached" \
	"$cvmadm" volume detach vol0
for i in 1 2 3; do
	check "target device remove $i" "$cvmadm" target device remove "$i"
	check "target unlisten 127.0.0.1:700$i" "$cvmadm" target unlisten --address "127.0.0.1:700$i"
done
check "cvmd stops" stop_cvmd
# The tests after this one start from a cvm.ko without a map.
check "reload cvm.ko" eval "rmmod cvm && insmod kernel/cvm.ko"
check "rmmod brd" rmmod brd
[[ -s $work/cvmd.log ]] && grep -E "warn|error|reconcile" "$work/cvmd.log" | tail -n 20
check_summary
