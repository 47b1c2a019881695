#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 110 s over tcp; rdma in full: 110 s more)
# transports: tcp rdma(full)
#
# The product's control path end to end: cvmadm -> cvmd -> generic netlink
# -> cvm_target.ko and cvm.ko.  Three brd devices stand in for three hosts'
# NVMe devices at 127.0.0.1:7001-7003 over tcp, 10.99.0.1-3:7001-7003 over
# rdma (host add --transport); cvmadm describes them, starts the
# targets, attaches a replicated(3) volume and fio verifies data on it;
# one target is cut off while the volume is written, and cvmd records the
# path events cvm.ko sends (down with its stale objects, then up) where
# cvmadm shows them; ext4 survives detach and re-attach; a restarted cvmd
# finds the kernel in step with its database; `device list` shows the
# space the targets report, and it goes down after fstrim on ext4.  Over rdma it runs in the full
# tier only: what it adds to the rdma data-path tests is the transport
# name carried from `host add` to the kernel's map.  Runs INSIDE the VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/cvmadm_datapath.sh
#
# run-in-vm.sh runs it once per transport above, with CVM_TRANSPORT set.
set -u
top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
. tests/lib/check.sh
. tests/lib/cvm_vm.sh
require_vm

bin=$top/build/userspace
cvmd=$bin/cvmd/cvmd
cvmadm=$bin/cvmadm/cvmadm
work=$(mktemp -d /tmp/cvm-datapath.XXXXXX)
mnt=$work/mnt
export CVM_SOCKET=$work/cvmd.sock

start_cvmd() {
	"$cvmd" --db "$work/db" --socket "$CVM_SOCKET" --pid-file "$work/pid" \
		--host storage1 --log-file "$work/cvmd.log"
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
	fio --name=verify --filename=/dev/cvm0 --rw=randwrite --bs=4k --size=8M \
		--iodepth=16 --ioengine=libaio --direct=1 --verify=crc32c \
		--output-format=terse --terse-version=3 >"$work/fio.out" 2>&1 ||
		{ cat "$work/fio.out"; return 1; }
}
# Nothing in flight: cvm.ko's histogram (/sys/block/cvm0/cvm/latency) has
# counted every read and write the block layer completed, and cvmd's
# metrics (GET /metrics's text) carry both counts for vol0.
latency_matches() {
	local stat lat r w
	read -r -a stat </sys/block/cvm0/stat
	lat=$(cat /sys/block/cvm0/cvm/latency)
	r=$(awk '$1 == "read" { print $2 }' <<<"$lat")
	w=$(awk '$1 == "write" { print $2 }' <<<"$lat")
	[[ "$r" == "${stat[0]}" && "$w" == "${stat[4]}" && "$w" -gt 0 ]] || {
		echo "histogram: read $r write $w; block layer: read ${stat[0]} write ${stat[4]}"
		return 1
	}
	"$cvmadm" metrics >"$work/metrics" || return 1
	grep -qx "cvm_volume_request_duration_seconds_count{volume=\"vol0\",op=\"write\"} $w" "$work/metrics" &&
	grep -qx "cvm_volume_writes_total{volume=\"vol0\",device=\"cvm0\"} ${stat[4]}" "$work/metrics" &&
	grep -q '^cvm_volume_request_duration_seconds_bucket{volume="vol0",op="read",le="+Inf"} ' "$work/metrics" || {
		grep vol0 "$work/metrics" | head -20
		return 1
	}
}
# path_field DEV FIELD: a field of cvmd's record of device DEV's path
# (device list --json), "-" when cvm.ko never reported that path.
path_field() {
	"$cvmadm" --json device list | python3 -c '
import json, sys
dev = [d for d in json.load(sys.stdin) if d["id"] == int(sys.argv[1])][0]
p = dev["path_state"]
print("-" if p is None else p[sys.argv[2]])' "$1" "$2"
}
# Every device's path record, as one line of JSON.
path_states() {
	"$cvmadm" --json device list | python3 -c \
		'import json,sys; print(json.dumps([d["path_state"] for d in json.load(sys.stdin)]))'
}
# wait_path DEV STATE SECS [SINCE]: until cvmd records device DEV's path as
# STATE (from an event received at unix time SINCE or later).
wait_path() {
	local i
	for ((i = 0; i < $3 * 2; i++)); do
		[[ $(path_field "$1" state) == "$2" ]] &&
			(($(path_field "$1" since) >= ${4:-0})) && return 0
		sleep 0.5
	done
	echo "device $1 path '$(path_field "$1" state)' since $(path_field "$1" since) after $3 s; expected $2 since ${4:-0}"
	"$cvmadm" device list
	return 1
}
# The initiator's stale objects (all devices), from cvmadm status --json.
kernel_stale() {
	"$cvmadm" --json status | python3 -c \
		'import json,sys; print(json.load(sys.stdin)["modules"]["cvm"]["stale_objects"])'
}
wait_stale_zero() {
	local start=$SECONDS
	while ((SECONDS - start < $1)); do
		[[ $(kernel_stale) == 0 ]] && return 0
		sleep 0.5
	done
	echo "stale objects still $(kernel_stale) after $1 s"
	return 1
}
# While device 1 is cut off: fio writes and verifies 0-16M (paced, so it
# spans the cut), and dd keeps rewriting a known 32M pattern at 64M with
# one write always in flight, so the cut fails writes and leaves stale
# objects behind.
degraded_fio() {
	fio --name=degraded --filename=/dev/cvm0 --rw=randwrite --bs=4k --size=16M \
		--iodepth=16 --ioengine=libaio --direct=1 --verify=crc32c \
		--verify_fatal=1 --verify_backlog=512 --rate_iops=200 \
		--output="$work/degraded.out" >/dev/null 2>&1
}
dd_loop() {
	while [[ ! -e $work/dd.stop ]]; do
		dd if="$work/pattern" of=/dev/cvm0 bs=1M seek=64 oflag=direct \
			status=none || return 1
	done
}
pattern_intact() {
	cmp <(dd if=/dev/cvm0 bs=1M skip=64 count=32 iflag=direct status=none) \
		"$work/pattern"
}
write_files() {
	mkdir -p "$mnt/d" &&
	for i in $(seq 8); do head -c $((i * 300000)) /dev/urandom >"$mnt/d/f$i" || return; done &&
	(cd "$mnt/d" && md5sum f* >"$work/md5") && sync
}
same_files() { (cd "$mnt/d" && md5sum -c --quiet "$work/md5"); }
# Bytes allocated on all three devices, as their targets report it to cvmd.
used_total() {
	"$cvmadm" --json device list | python3 -c '
import json, sys
print(sum(d["usage"]["used"] for d in json.load(sys.stdin) if d["usage"]))'
}

# ep I: the data-path address of host storageI (device I, /dev/ram(I-1)).
ep() { echo "$(cvm_addr $(($1 - 1))):$(cvm_port $(($1 - 1)))"; }
ep1=$(ep 1)

mkdir -p "$mnt"
if [[ $(cvm_transport) == rdma ]]; then
	check "rdma: Soft-RoCE rxe0 on eth0, 10.99.0.1-3" cvm_rdma_up
fi
check "brd: 3 x 256 MiB" modprobe brd rd_nr=3 rd_size=$((256 << 10))
check "cvmd starts as host storage1" start_cvmd
for i in 1 2 3; do
	check "host add storage$i at $(ep $i) ($(cvm_transport))" \
		"$cvmadm" host add "storage$i" --address "$(ep $i)" \
		--transport "$(cvm_transport)"
	check "device add storage$i /dev/ram$((i - 1))" "$cvmadm" device add \
		"storage$i" "/dev/ram$((i - 1))" --capacity 256M
done
check "pool create replicated:3" "$cvmadm" pool create rep3 --policy replicated:3 --pg-num 64
check "volume create vol0 (128 MiB)" "$cvmadm" volume create vol0 --pool rep3 --size 128M
check "map pushed on topology change: kernel epoch = store epoch" epochs_agree

check "detach of an unattached volume refused" refuses "volume 'vol0' is not attached" \
	"$cvmadm" volume detach vol0
for i in 1 2 3; do
	check "target listen $(ep $i)" "$cvmadm" target listen --address "$(ep $i)"
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
# With --json a refusal is a JSON error on stdout, nothing on stderr.
attach_json_error() {
	local out rc=0
	out=$("$cvmadm" --json volume attach vol0 2>/dev/null) || rc=$?
	((rc != 0)) && grep -q '"code": "in_use"' <<<"$out" &&
		grep -q 'attached to /dev/cvm0' <<<"$out" || { echo "rc $rc: $out"; return 1; }
}
check "volume attach --json refuses with a JSON error naming the device" attach_json_error

echo "# device 1 cut off while /dev/cvm0 is written; cvmd records the path events"
for i in 1 2 3; do
	check "device $i path up (cvm.ko connected, cvmd recorded it)" wait_path "$i" up 30
done
check "status: 'path events: listening'" \
	eval "'$cvmadm' status | grep -Eq '^path events: +listening$'"
head -c $((32 << 20)) /dev/urandom >"$work/pattern"
rm -f "$work/dd.stop"
degraded_fio &
fio_pid=$!
dd_loop &
dd_pid=$!
# The cut must land while both write: wait for 600 completed writes.
w0=$(awk '{ print $5 }' /sys/block/cvm0/stat)
for ((i = 0; i < 300; i++)); do
	(($(awk '{ print $5 }' /sys/block/cvm0/stat) - w0 >= 600)) && break
	sleep 0.1
done
epoch_before=$(store_epoch)
check "target unlisten $ep1 (device 1 cut off)" \
	"$cvmadm" target unlisten --address "$ep1"
# Asked at once: the checks below take a while under TCG, and fio may be
# done by then; what matters is that the cut came while it was writing.
check "fio was running when device 1 was cut off" kill -0 $fio_pid
check "device list: device 1 path down" wait_path 1 down 20
stale1=$(path_field 1 stale_objects)
echo "device 1: $(path_field 1 stale_objects) stale objects when its path went down"
# The event carries the stale count at the moment the path went down;
# writes still in flight to the other replicas mark theirs just after, so
# it may be 0 (the initiator's count is checked below, once they failed).
check "device list --json: device 1 down with a stale count" \
	eval "[[ '$stale1' =~ ^[0-9]+$ ]]"
check "device list: device 1 'down <age>, <n> stale'" eval "'$cvmadm' device list |
	grep -Eq '^1 .*  down [0-9][0-9a-z]*, [0-9]+ stale$'"
check "device list: devices 2 and 3 still up" \
	eval "[[ \$(path_field 2 state) == up && \$(path_field 3 state) == up ]]"
check "status: device 1 path down, target $ep1" eval "'$cvmadm' status |
	grep -Eq '^device 1 path: +down [0-9][0-9a-z]*, [0-9]+ stale, target $ep1$'"
check "a path event cuts no map epoch" eval "[[ \$(store_epoch) == $epoch_before ]]"
check "cvmd logged the lost path" grep -q "device 1: path down at $ep1" "$work/cvmd.log"
n=$(kernel_stale)
echo "initiator stale objects while device 1 is away: $n"
check "status --json: the initiator's stale objects > 0" eval "((${n:-0} > 0))"
check "target listen $ep1 (device 1 back)" \
	"$cvmadm" target listen --address "$ep1"
check "device list: device 1 path up again within 30 s" wait_path 1 up 30
check "status: device 1 path up" \
	eval "'$cvmadm' status | grep -Eq '^device 1 path: +up, target $ep1$'"
check "cvmd logged the path coming back" grep -q "device 1: path up at $ep1" "$work/cvmd.log"
wait $fio_pid
fio_rc=$?
touch "$work/dd.stop"
wait $dd_pid
dd_rc=$?
check "fio across the cut exits 0 (writes and verify_backlog reads)" eval "((fio_rc == 0))"
((fio_rc == 0)) || cat "$work/degraded.out"
check "dd rewrites across the cut succeeded" eval "((dd_rc == 0))"
check "stale objects resynced (initiator stale count 0 within 120 s)" wait_stale_zero 120
check "fio verify pass after the resync" fio --name=degraded --filename=/dev/cvm0 \
	--rw=randwrite --bs=4k --size=16M --iodepth=16 --ioengine=libaio --direct=1 \
	--verify=crc32c --verify_fatal=1 --verify_only --output="$work/verify.out"
check "the dd pattern reads back intact" pattern_intact

echo "# host rotate-key under fio; a reconnect after it authenticates with the new key"
rotate_fio() {
	fio --name=rotate --filename=/dev/cvm0 --rw=randwrite --bs=4k --size=8M \
		--offset=32M --iodepth=8 --ioengine=libaio --direct=1 \
		--verify=crc32c --verify_fatal=1 >"$work/rotate.out" 2>&1
}
rotate_fio &
rotate_pid=$!
w0=$(awk '{ print $5 }' /sys/block/cvm0/stat)
for ((i = 0; i < 300; i++)); do
	(($(awk '{ print $5 }' /sys/block/cvm0/stat) - w0 >= 200)) && break
	sleep 0.1
done
check "host rotate-key while fio writes: key id 2" \
	eval "'$cvmadm' host rotate-key | grep -q 'now uses key id 2'"
check "fio was running during the rotation" kill -0 $rotate_pid
wait $rotate_pid
rotate_rc=$?
check "fio across the rotation exits 0 (writes and crc32c verify)" eval "((rotate_rc == 0))"
((rotate_rc == 0)) || cat "$work/rotate.out"
# Every target now holds only the new key: device 2's path comes back only
# if cvm.ko authenticates with it.
since=$(date +%s)
check "target unlisten $(ep 2)" "$cvmadm" target unlisten --address "$(ep 2)"
check "device 2 path down" wait_path 2 down 20
check "target listen $(ep 2)" "$cvmadm" target listen --address "$(ep 2)"
check "device 2 path up again: cvm.ko authenticated with key id 2" wait_path 2 up 30 "$since"
check "the old key id 1 is gone from the secret file" \
	eval "! grep -q '\"key_id\": 1' '$work/db/host.secret'"

check "fio: 4k randwrite 8M iodepth 16, crc32c verify" fio_verify
check "cvm.ko's latency histogram counts what the block layer completed; cvmadm metrics shows it" \
	latency_matches
# 4 KiB blocks: a 128 MiB ext4 of 1 KiB blocks has 8 MiB groups, each
# starting with its own 2 MiB of inode table, so few whole objects are free.
check "mkfs.ext4 -b 4096 /dev/cvm0" mkfs.ext4 -q -F -b 4096 /dev/cvm0
check "mount" mount /dev/cvm0 "$mnt"
check "write 8 files, md5sum" write_files
# Discard frees whole extents, and cvmadm shows it: a 64 MiB file takes
# about 16 objects on each of 3 devices, fstrim after rm gives them back.
used0=$(used_total)
check "write a 64 MiB file (fsync)" dd if=/dev/urandom of="$mnt/big" bs=1M count=64 \
	conv=fsync status=none
used1=$(used_total)
echo "used on the 3 devices: $((used0 >> 20)) MiB before, $((used1 >> 20)) MiB with the file"
check "device list: used grew by >= 3 x 40 MiB" eval "((used1 - used0 >= 3 * (40 << 20)))"
check "device list: USED column shows '<size> (<n>%)'" eval "'$cvmadm' device list |
	grep -Eq '^1 .* [0-9.]+ [KMGT]?i?B \([0-9]+%\) '"
check "rm the file, fstrim the mount" eval "rm '$mnt/big' && sync && fstrim '$mnt'"
used2=$(used_total)
echo "used after fstrim: $((used2 >> 20)) MiB"
check "device list: used went down by >= 3 x 40 MiB after fstrim" \
	eval "((used1 - used2 >= 3 * (40 << 20)))"
check "the files are intact after fstrim" same_files
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
paths_before=$(path_states)
check "cvmd stops" stop_cvmd
check "cvmd restarts: re-pushes its state" start_cvmd
check "path records survive the restart" eval '[[ $(path_states) == "$paths_before" ]]'
check "kernel volumes unchanged after restart" eval "[[ \"\$(kernel_volumes)\" == \"$before\" ]]"
check "map epoch: kernel = store after restart" epochs_agree
check "a topology change is pushed to the kernel" "$cvmadm" host add spare --address 127.0.0.1:7010
check "map epoch: kernel = store after host add" epochs_agree

# cvm.ko loses its state (module reload); a restarted cvmd puts it back.
check "cvmd stops" stop_cvmd
check "detach in the kernel behind cvmd's back" python3 tests/vm/lib/initiator_genl.py detach 1
check "rmmod cvm + insmod (kernel forgets the map)" \
	eval "rmmod cvm && insmod kernel/cvm.ko"
reload_at=$(date +%s)
check "cvmd restarts: re-pushes map, re-attaches vol0" start_cvmd
for i in 1 2 3; do
	check "device $i path up again: recorded after the reload" \
		wait_path "$i" up 30 "$reload_at"
done
check "map epoch: kernel = store after reload" epochs_agree
check "vol0 re-attached as /dev/cvm0" eval "[[ \$(kernel_volumes | awk '{print \$3}') == vol0 ]]"
check "attach epoch bumped to 3 by the re-attach" eval "[[ \$(attach_epoch) == 3 ]]"
check "data still there after re-attach" eval "mount /dev/cvm0 '$mnt' && same_files && umount '$mnt'"

check "volume detach vol0" "$cvmadm" volume detach vol0
check "detach again refused: not attached" refuses "volume 'vol0' is not attached" \
	"$cvmadm" volume detach vol0
for i in 1 2 3; do
	check "target device remove $i" "$cvmadm" target device remove "$i"
	check "target unlisten $(ep $i)" "$cvmadm" target unlisten --address "$(ep $i)"
done
check "cvmd stops" stop_cvmd
# The tests after this one start from a cvm.ko without a map.
check "reload cvm.ko" eval "rmmod cvm && insmod kernel/cvm.ko"
check "rmmod brd" rmmod brd
[[ -s $work/cvmd.log ]] && grep -E "warn|error|reconcile" "$work/cvmd.log" | tail -n 20
check_summary
