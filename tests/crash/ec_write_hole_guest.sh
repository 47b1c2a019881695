#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The guest half of tests/crash/ec_write_hole.sh; runs INSIDE the test VM,
# whose virtio disks vda..vdg (host files) back seven targets:
#
#   ec_write_hole_guest.sh write K,M JOURNAL
#	format the seven stores, attach an ec(K,M) volume, fill it with
#	tagged blocks, start partial-stripe writers and, while they run,
#	reset the VM at once (sysrq b: no sync, no detach).  JOURNAL 0 turns
#	the stripe journal off (cvm.ec_journal) to show the hole it closes.
#   ec_write_hole_guest.sh check K,M ACKLOG JOURNAL
#	for each device to lose (CRASH_LOST, default 0 2 4 6), on a fresh
#	copy-on-write view of the seven
#	disks as the crash left them (dm-snapshot, the copies on brd): load
#	the stores, attach with that device lost (the journal is replayed:
#	some records must be), check every block is one a write put there
#	and not older than an acknowledged write (ACKLOG: the writers' "ack"
#	lines), bring the device back and wait for the shards it missed to
#	be rebuilt.
set -u

top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
. "$top/tests/lib/check.sh"
. "$top/tests/lib/cvm_vm.sh"
require_vm

NDEV=7
OBJ=$((1 << 20))
VOL_SIZE=$((8 << 20))
UNIT=8192		# 4k blocks are partial chunks, 8-block writes span stripes
NBLOCKS=$((VOL_SIZE / 4096))
WRITERS=16
SEED=5
VOL=21
ig=(python3 "$top/tests/vm/lib/initiator_genl.py")
tg=(python3 "$top/tests/vm/lib/target_genl.py")
tb=(python3 "$top/tests/crash/lib/tagged_blocks.py")

phase=${1:?phase: write or check}
layout=${2:?layout K,M}
k=${layout%,*} m=${layout#*,}

wait_conns() {
	local i
	for ((i = 0; i < 100; i++)); do
		cvm_connected "$1" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	cvm_connected "$1"
}

wait_stale_zero() {
	local i
	for ((i = 0; i < 240; i++)); do
		(($("${ig[@]}" stale) == 0)) && return 0
		sleep 0.5
	done
	echo "stale count still $("${ig[@]}" stale)"
	return 1
}

up() { "${tg[@]}" listen 127.0.0.1 "$(cvm_port "$1")" --transport tcp; }
down() { "${tg[@]}" unlisten 127.0.0.1 "$(cvm_port "$1")" --transport tcp; }
attach() {
	[[ $("${ig[@]}" attach $VOL 5 $VOL_SIZE --object-size $OBJ \
		--stripe-unit $UNIT) == 0 ]]
}

disks=(/dev/vd{a,b,c,d,e,f,g})
modprobe virtio_blk
udevadm settle 2>/dev/null || sleep 1
check "$NDEV virtio disks" eval "for d in ${disks[*]}; do [[ -b \$d ]] || exit 1; done"
check "load cvm_target" cvm_load cvm_target
check "load cvm" cvm_load cvm

if [[ $phase == write ]]; then
	journal=${3:?journal 0 or 1}
	for ((i = 0; i < NDEV; i++)); do
		check "target: device $i formatted on ${disks[i]}, listening" \
			eval "${tg[*]} add $i ${disks[i]} format && up $i"
	done
	check "stripe journal $([[ $journal == 1 ]] && echo on || echo OFF)" \
		eval "echo $journal > /sys/module/cvm/parameters/ec_journal"
	check "map: $NDEV hosts, pool 5 ec($k,$m)" \
		"${ig[@]}" map-set 1 --hosts $NDEV --ec "$k,$m"
	check "$NDEV connections" wait_conns $NDEV
	check "attach ec($k,$m) volume $VOL -> cvm0" attach
	check "fill $NBLOCKS tagged blocks" "${tb[@]}" fill /dev/cvm0 $NBLOCKS $WRITERS
	check "every block intact" "${tb[@]}" check /dev/cvm0 $NBLOCKS $WRITERS $SEED
	((failed == 0)) || { check_summary; exit 1; }
	echo "# $WRITERS writers of 4k-32k (partial and whole stripes) running"
	"${tb[@]}" write /dev/cvm0 $NBLOCKS $WRITERS $SEED &
	sleep 8
	if ! kill -0 $! 2>/dev/null; then
		echo "FAIL writers stopped before the crash"
		exit 1
	fi
	echo "crash: resetting the VM with writes in flight"
	echo b >/proc/sysrq-trigger
	sleep 30
	echo "FAIL the VM did not reset"
	exit 1
fi

acklog=${3:?ack log}
journal=${4:?journal 0 or 1 (as in the write phase)}
check "ack log readable ($(grep -c '^ack' "$acklog") acks)" test -r "$acklog"
check "map: $NDEV hosts, pool 5 ec($k,$m)" \
	"${ig[@]}" map-set 1 --hosts $NDEV --ec "$k,$m"
# Copy-on-write space for the snapshots: writes of one check only.
check "brd: $NDEV x 64 MiB for snapshot copies" \
	modprobe brd rd_nr=$NDEV rd_size=$((64 << 10))
check "dm-snapshot" modprobe dm-snapshot

# snapshots_up: a fresh view of every disk as the crash left it.
snapshots_up() {
	local i
	for ((i = 0; i < NDEV; i++)); do
		dmsetup create "crash$i" --table \
			"0 $(blockdev --getsz "${disks[i]}") snapshot ${disks[i]} /dev/ram$i N 8" ||
			return 1
	done
}
# snapshot_dev I: the device node of snapshot I (devtmpfs; no udev here).
snapshot_dev() {
	echo "/dev/dm-$(dmsetup info -c --noheadings -o minor "crash$1" | tr -d ' ')"
}
snapshots_down() {
	local i
	for ((i = 0; i < NDEV; i++)); do
		dmsetup remove "crash$i" 2>/dev/null
	done
	return 0
}

# Devices to lose, one per check (CRASH_LOST; each check costs a minute or
# two under TCG): by default four of the seven, to keep make check short.
for lost in ${CRASH_LOST:-0 2 4 6}; do
	check "device $lost lost: fresh snapshots of the crashed disks" snapshots_up
	check "device $lost lost: $NDEV stores loaded from the snapshots" \
		eval "for ((i = 0; i < NDEV; i++)); do ${tg[*]} add \$i \$(snapshot_dev \$i) || exit 1; done"
	# cvm_connected counts "connected" lines in the kernel log.
	dmesg -C
	for ((i = 0; i < NDEV; i++)); do
		((i == lost)) || up $i
	done
	check "device $lost lost: $((NDEV - 1)) connections" wait_conns $((NDEV - 1))
	check "device $lost lost: attach" attach
	line=$(dmesg | grep -E "journal:" | tail -n 1 | sed 's/^\[[^]]*\] //')
	echo "     $line; stale $("${ig[@]}" stale)"
	if ((journal)); then
		check "device $lost lost: journal records replayed" \
			eval "[[ '$line' =~ journal:\ ([1-9][0-9]*)\ stripe\ writes\ replayed ]]"
	fi
	before=$failed
	check "device $lost lost: every block old or new, never a mix" \
		eval "${tb[*]} check /dev/cvm0 $NBLOCKS $WRITERS $SEED $acklog >/tmp/blocks.out 2>&1"
	sed 's/^/     /' /tmp/blocks.out | head -n 25
	((failed == before)) ||
		dmesg | grep "cvm:" | grep -Ev "peer closed|connected" | tail -n 30
	check "device $lost back" up $lost
	check "$NDEV connections" wait_conns $NDEV
	check "shards it missed rebuilt (stale 0)" wait_stale_zero
	check "detach" "${ig[@]}" detach $VOL
	for ((i = 0; i < NDEV; i++)); do
		down $i
		"${tg[@]}" remove $i
	done
	snapshots_down
done
check_summary
