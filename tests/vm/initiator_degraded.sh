#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 120 s per transport)
# transports: tcp rdma(full)
#
# Degraded replicated writes, stale tracking and resync, in one VM:
# cvm_target.ko serves three brd devices behind three listeners (see
# cvm_three_targets), cvm.ko attaches a replicated(3) volume, and fio writes it
# with crc32c verification while device 0's target is cut off abruptly
# (TARGET_UNLISTEN drops the listener and every connection it accepted)
# and later brought back.  fio must not notice; the initiator must record
# what device 0 missed (STATUS stale count > 0), send PATH_DOWN and
# PATH_UP events, copy the stale objects back once device 0 is reachable
# (stale count 0) and then every object must read the same bytes from all
# three targets over the wire (cvm-wire, TCP to 127.0.0.1 whatever the
# data path's transport).  Then the same with device 1 silent instead of
# gone (nothing is closed; over tcp nft drops its packets, over rdma its
# disk stops completing I/O: cvm_block in cvm_vm.sh): the request watchdog
# must drop the connection; and (over tcp) silent while nothing is sent to
# it, where only the keep-alive (cvm.keepalive) can notice: before it, such
# a path stayed up for ever.  Last, FLUSH (over tcp): a replica that cannot
# be flushed is recorded stale for what it holds unflushed, and fsync fails
# when no replica of a write could be flushed.  Runs INSIDE the test VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/initiator_degraded.sh
#
# run-in-vm.sh runs it once per transport above, with CVM_TRANSPORT set.
#
# CVM_DEGRADED_IOPS (default 400) paces fio so the cut lands mid-run.
set -u

top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
if [[ -z "${CVM_IN_VM:-}" ]]; then
	echo "initiator_degraded: run me inside the test VM: scripts/vm-run.sh $0" >&2
	exit 2
fi

IOPS=${CVM_DEGRADED_IOPS:-400}
OBJ=$((1 << 20))		# object size
VOL_SIZE=$((64 << 20))		# 64 objects
FIO_SIZE=32M
ig=(python3 "$top/tests/vm/lib/initiator_genl.py")
. "$top/tests/lib/check.sh"
. "$top/tests/lib/cvm_vm.sh"



stale() { "${ig[@]}" stale; }

# wait_stale_zero SECS: until the stale count is 0; prints the seconds taken.
wait_stale_zero() {
	local start=$SECONDS n
	while ((SECONDS - start < $1)); do
		n=$(stale) || return 1
		if ((n == 0)); then
			echo "stale count 0 after $((SECONDS - start)) s"
			return 0
		fi
		sleep 0.5
	done
	echo "stale count still $(stale) after $1 s"
	dmesg | grep cvm | tail -n 20
	return 1
}

fio_args=(--name=degraded --filename=/dev/cvm0 --rw=randwrite --bs=4k
	  --size=$FIO_SIZE --direct=1 --iodepth=16 --ioengine=libaio
	  --verify=crc32c --verify_fatal=1)

# replicas_identical: every object of the volume, on all three devices.
replicas_identical() { cvm_replicas_identical 3 $((VOL_SIZE / OBJ)) $OBJ; }

writes_done() { awk '{ print $5 }' /sys/block/cvm0/stat; }

# writes_reach N: the running fio has completed N writes on cvm0, so a
# fault injected now lands mid-run.
writes_reach() {
	local i
	for ((i = 0; i < 300; i++)); do
		(($(writes_done) - fio_w0 >= $1)) && return 0
		sleep 0.1
	done
	echo "fio completed fewer than $1 writes in 30 s"
	return 1
}

wait_for() { cvm_wait_for "$@"; }
stale_recorded() { (($(stale) > 0)); }

# fio_start NAME: randwrite + verify in the background, paced so that a
# fault injected a few seconds in lands mid-run.
fio_start() {
	fio_name=$1
	fio_t0=$SECONDS
	fio_w0=$(writes_done)
	fio "${fio_args[@]}" --rate_iops="$IOPS" --verify_backlog=512 \
		--output="$tmp/$fio_name.out" &
	fio_pid=$!
}

# fio_settle: after the fault is undone, fio must pass, the stale objects
# must be resynced, a separate verify pass must pass and every replica
# must hold the same bytes.
fio_settle() {
	local rc
	wait $fio_pid
	rc=$?
	echo "fio: ended at $((SECONDS - fio_t0))s, rc $rc"
	check "fio exits 0 (writes and verify_backlog reads)" eval "((rc == 0))"
	((rc == 0)) || cat "$tmp/$fio_name.out"
	grep -E "WRITE:|READ:|err=" "$tmp/$fio_name.out"
	check "stale objects resynced (stale count 0 within 120 s)" \
		wait_stale_zero 120
	check "separate verify pass" fio "${fio_args[@]}" --verify_only \
		--output="$tmp/$fio_name-verify.out"
	grep -E "READ:|err=" "$tmp/$fio_name-verify.out"
	check "all replicas identical (cvm-wire)" replicas_identical
}

tmp=$(mktemp -d)
echo "# set up: 3 brd devices, 3 listeners, map, replicated(3) volume"
cvm_three_targets
"${ig[@]}" events 600 >"$tmp/events" 2>&1 &
events_pid=$!
# shellcheck disable=SC2046 # cvm_map_paths: several arguments
check "map epoch 1: 3 hosts x 1 device" "${ig[@]}" map-set 1 $(cvm_map_paths)
check "3 connections" cvm_connected 3
check "attach replicated(3), 1 MiB objects -> cvm0" eval \
	"[[ \$(${ig[*]} attach 3 3 $VOL_SIZE --object-size $OBJ --name r3) == 0 ]]"
check "stale count 0" eval "[[ \$(${ig[*]} stale) == 0 ]]"

echo "# fio randwrite + verify while device 0 is cut off and comes back"
fio_start cut
check "fio has written 1000 blocks" writes_reach 1000
check "target: cut device 0 off (unlisten $(cvm_addr 0):$(cvm_port 0))" \
	cvm_unlisten 0
check "writes go on: stale objects recorded within 30 s" wait_for 30 stale_recorded
check "fio still running while device 0 is away" kill -0 $fio_pid
echo "stale objects while device 0 is away: $(stale)"
check "target: device 0 back (listen $(cvm_addr 0):$(cvm_port 0))" \
	cvm_listen 0
check "reconnected" cvm_connected 4
fio_settle
check "events: PATH_DOWN for device 0" grep -q "^path-down 0 " "$tmp/events"
check "events: PATH_UP for device 0" grep -q "^path-up 0 " "$tmp/events"
cat "$tmp/events"
dmesg | grep -E "resynced|stale" | tail -n 5

timeout_param=/sys/module/cvm/parameters/request_timeout
loss_param=/sys/module/cvm/parameters/loss_timeout
saved_loss=$(cat $loss_param)
keepalive_param=/sys/module/cvm/parameters/keepalive
saved_keepalive=$(cat $keepalive_param 2>/dev/null || echo 5)
# Device 1 stops answering without closing (cvm_block).
silent_device() {
	echo "# device 1 stops answering without closing ($(cvm_block_how))"
	# Nothing closes the connection, so only cvm.ko's request watchdog
	# (cvm.request_timeout) can notice; writes must then go on without it.
	check "cvm.request_timeout = 3 s" eval "echo 3 >$timeout_param"
	dmesg -C
	fio_start silent
	check "fio has written 1000 blocks" writes_reach 1000
	check "silence device 1: $(cvm_block_how)" cvm_block 1
	check "the watchdog drops device 1's connection (within 30 s)" \
		wait_for 30 eval "dmesg | grep -q 'device 1 at .*got no reply in 3 s'"
	check "fio still running while device 1 is silent" kill -0 $fio_pid
	# The requests the watchdog failed over mark their objects a moment
	# after the connection is dropped.
	check "stale objects recorded (within 30 s)" wait_for 30 stale_recorded
	echo "stale objects while device 1 is silent: $(stale)"
	check "device 1 answers again" cvm_unblock
	check "reconnected" cvm_connected 1
	fio_settle
}

# Device 1 goes silent while nothing is sent to it: only the keep-alive
# (cvm.keepalive) can notice.  Before it, an idle path to a powered-off
# node stayed up for ever, so the device was never marked out.
silent_idle_device() {
	echo "# device 1 goes silent while idle ($(cvm_block_how))"
	check "cvm.request_timeout = 3 s, cvm.keepalive = 1 s" \
		eval "echo 3 >$timeout_param && echo 1 >$keepalive_param"
	dmesg -C
	check "silence device 1 with no I/O running: $(cvm_block_how)" cvm_block 1
	check "the keep-alive gets no reply: connection dropped (within 15 s)" \
		wait_for 15 eval "dmesg | grep -q 'device 1 at .*got no reply in 3 s'"
	check "device 1 answers again" cvm_unblock
	check "reconnected" cvm_connected 1
	check "cvm.keepalive back to $saved_keepalive s" \
		eval "echo $saved_keepalive >$keepalive_param"
}

# FLUSH with a silent replica: fsync must not fail for it, nor lie.
fsync_dev() {
	python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.fsync(fd)' /dev/cvm0
}
refuses_fsync() { ! fsync_dev; }
flush_silent_replicas() {
	echo "# FLUSH with a silent replica: fsync must not fail for it, nor lie"
	# Writes without FUA sit in the replicas' volatile caches until a FLUSH.
	# A replica that cannot be flushed gets those objects recorded as stale
	# (flush.c); if no replica that took a write can be flushed, fsync fails.
	head -c $((4 << 20)) /dev/urandom >"$tmp/pattern"
	check "write 4 MiB without FUA" \
		dd if="$tmp/pattern" of=/dev/cvm0 bs=1M oflag=direct status=none
	dmesg -C
	check "silence device 2: $(cvm_block_how)" cvm_block 2
	t0=$SECONDS
	check "fsync succeeds with device 2 silent" fsync_dev
	echo "fsync took $((SECONDS - t0)) s (the watchdog's 3 s)"
	check "device 2 recorded stale for what it could not flush" \
		eval "dmesg | grep -q 'flush missed a replica, [1-9][0-9]* objects recorded as stale'"
	check "stale objects recorded" eval "(($(stale) > 0))"
	check "device 2 answers again" cvm_unblock
	check "reconnected" cvm_connected 1
	check "stale objects resynced (stale count 0 within 120 s)" wait_stale_zero 120
	check "data reads back" cmp -n $((4 << 20)) "$tmp/pattern" /dev/cvm0
	check "all replicas identical (cvm-wire)" replicas_identical

	check "write 4 MiB without FUA again" \
		dd if="$tmp/pattern" of=/dev/cvm0 bs=1M seek=8 oflag=direct status=none
	# No replica that holds them can be flushed: the FLUSH is held
	# (tests/vm/outage.sh) until cvm.loss_timeout, here 5 s, then fails.
	check "cvm.loss_timeout = 5 s" eval "echo 5 >$loss_param"
	check "silence every device" eval "cvm_block 0 && cvm_block 1 && cvm_block 2"
	check "fsync fails after the loss timeout: the writes are durable nowhere yet" refuses_fsync
	check "dmesg names it" eval "dmesg | grep -q 'flush waits: the replicas of [1-9][0-9]* objects are unreachable' && dmesg | grep -q 'gave up after 5 s'"
	check "every device answers again" cvm_unblock
	check "cvm.loss_timeout back to $saved_loss s" eval "echo $saved_loss >$loss_param"
	check "fsync succeeds once they are back (held until reconnected)" fsync_dev
	check "data reads back" eval "cmp -n $((4 << 20)) '$tmp/pattern' <(dd if=/dev/cvm0 bs=1M skip=8 count=4 iflag=direct status=none)"
	check "cvm.request_timeout back to 30 s" eval "echo 30 >$timeout_param"
}

silent_device
# Over rdma the silence is a hung disk, and a disk without a volatile cache
# (brd, and dm-linear on it) completes a FLUSH before the driver sees it
# (submit_bio_noacct), suspended or not: the target rightly answers it.
if [[ $(cvm_transport) == tcp ]]; then
	silent_idle_device
	flush_silent_replicas
else
	echo "# skipped over $(cvm_transport): idle and FLUSH with silent replicas"
	echo "# (need a silent network, which rxe's loopback has not: see cvm_block)"
fi

echo "# tear down"
kill $events_pid 2>/dev/null
wait $events_pid 2>/dev/null
check "detach 3" "${ig[@]}" detach 3
check "rmmod cvm" rmmod cvm
cvm_three_targets_down
rm -rf "$tmp"
# Leave the modules loaded, as the VM runner did.
cvm_load cvm >/dev/null 2>&1

check_summary
