#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 170 s: one boot of 4 guests, one power cut over rdma;
# the full tier cuts power 5 times per transport, about 25 min)
# cluster: --guests 4 --rdma --no-modules
#
# Replicated(3) across machines, and a storage node's power cut.  Guests
# 0, 1 and 2 are storage nodes (one failure domain each): cvm_target.ko
# serves device i from the guest's own disk file (/dev/vda) over tcp and
# rdma (Soft-RoCE between guests).  Guest 3 is the initiator: cvm.ko gets
# the map of the three, attaches a replicated(3) volume and fio writes it
# with crc32c verification.  Mid-run one storage guest loses power (QEMU
# killed: no sync, no shutdown); the initiator must go on, record what the
# node missed, and when the guest boots again over the same disk and
# its device is added back without formatting, resync it.  Then fio's own
# verification, a separate verify pass and a byte comparison of every
# object on the three nodes (cvm-wire) must pass.  The check tier cuts
# guest 1's power over rdma; the full tier runs tcp and rdma in turn
# (guests 1, 2, 0, ...), each on a volume of its own.
#
#	scripts/vm-cluster.sh tests/cluster/replicated_power_cut.sh
#
# CLUSTER_TRANSPORTS (default rdma, "tcp rdma" in the full tier) picks the
# transports;
# CLUSTER_ROUNDS (default 1, 5 in the full tier) how many power cuts each
# gets, on storage guests 1, 2, 0, 1, ... in turn; CLUSTER_IOPS (default
# 200) paces fio so the cut lands mid-run.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
. "$top/scripts/vm-cluster-lib.sh"
. "$top/tests/lib/check.sh"

INIT=3				# the initiator guest
ADDRS=$(guest_addr 0),$(guest_addr 1),$(guest_addr 2)
VOL_SIZE=$((32 << 20))		# 32 objects of 1 MiB
FIO_SIZE=16M
IOPS=${CLUSTER_IOPS:-200}
# Power cuts per transport: 1 in check, 5 in full (CLUSTER_ROUNDS).
ROUNDS=${CLUSTER_ROUNDS:-$([[ ${CVM_TIER:-check} == full ]] && echo 5 || echo 1)}
# Check cuts power over rdma only: initiator_crash.sh cuts a tcp storage
# node's power (boot over the same disk, resync, replicas identical), and
# outage.sh silences tcp peers with requests in flight.
TRANSPORTS=${CLUSTER_TRANSPORTS:-$([[ ${CVM_TIER:-check} == full ]] && echo "tcp rdma" || echo rdma)}

# on I 'SHELL': run SHELL in guest I with the node helpers loaded.
on() { guest_run "$1" ". tests/cluster/lib/node.sh; $2"; }
# on_wait I SECS 'SHELL': until SHELL succeeds in guest I.
on_wait() { guest_wait "$1" "$2" ". tests/cluster/lib/node.sh; $3"; }

fio_args() {
	echo "--filename=$1 --rw=randwrite --bs=4k --size=$FIO_SIZE --direct=1" \
		"--iodepth=16 --ioengine=libaio --verify=crc32c --verify_fatal=1"
}

echo "# set up: 3 storage guests, 1 initiator"
for i in 0 1 2 $INIT; do
	check "guest $i: rxe0 on eth0 is ACTIVE" on_wait $i 30 node_rdma_active
done
# The four guests set up at once; each result is checked on its own.
tmp=$(mktemp -d)
for i in 0 1 2; do
	{ on $i "node_storage_up $i format"; echo $? >"$tmp/rc$i"; } >"$tmp/out$i" 2>&1 &
done
{ on $INIT 'node_load cvm && echo 5 >/sys/module/cvm/parameters/request_timeout'
  echo $? >"$tmp/rc$INIT"; } >"$tmp/out$INIT" 2>&1 &
wait
set_up() { cat "$tmp/out$1"; [[ $(cat "$tmp/rc$1") == 0 ]]; }
for i in 0 1 2; do
	check "guest $i: format device $i on /dev/vda, listen $(guest_addr $i) tcp+rdma" \
		set_up $i
done
check "initiator: load cvm, cvm.request_timeout = 5 s (a dead node is silent)" \
	set_up $INIT
rm -rf "$tmp"

epoch=0
runs=()
for ((r = 0; r < ROUNDS; r++)); do
	for t in $TRANSPORTS; do
		runs+=("$r $t")
	done
done
for run in "${runs[@]}"; do
	read -r round t <<<"$run"
	epoch=$((epoch + 1))
	# One volume per transport, rewritten every round (each object takes
	# a store extent; new volumes would fill the 256 MiB disks).
	vol=$([[ $t == tcp ]] && echo 11 || echo 12)
	victim=$((epoch % 3))	# 1, 2, 0, 1, ...
	t0=$SECONDS
	echo "# $t, round $((round + 1)) of $ROUNDS: volume $vol, storage guest $victim loses power mid-run"
	on $INIT 'dmesg -C'
	check "[$t] map epoch $epoch: guests 0-2 over $t" \
		on $INIT "node_map_set $epoch $t $ADDRS"
	check "[$t] initiator connected to all three" \
		on_wait $INIT 60 "(( \$(dmesg | grep -c ': connected\$') >= 3 ))"
	minor=$(on $INIT "node_attach $vol $VOL_SIZE")
	check "[$t] attach replicated(3) volume $vol -> /dev/cvm$minor" \
		eval "[[ '$minor' =~ ^[0-9]+\$ ]]"
	dev=/dev/cvm$minor
	check "[$t] fio randwrite $FIO_SIZE with verify, $IOPS IOPS" \
		on $INIT "node_fio_start fio$vol $(fio_args "$dev") --verify_backlog=512 --rate_iops=$IOPS"
	check "[$t] fio has written 400 blocks" \
		on_wait $INIT 60 "(( \$(awk '{ print \$5 }' /sys/block/cvm$minor/stat) >= 400 ))"
	check "[$t] power off storage guest $victim" guest_poweroff $victim
	check "[$t] fio still running" on $INIT "! node_fio_done fio$vol"
	check "[$t] initiator records what device $victim misses" \
		on_wait $INIT 60 '(( $(node_stale) > 0 ))'
	on $INIT 'echo "stale objects with device '$victim' off: $(node_stale)"'
	check "[$t] boot storage guest $victim again over the same disk" guest_boot $victim
	check "[$t] guest $victim: device $victim loads its store (no format), listens" \
		on $victim "node_storage_up $victim"
	check "[$t] fio ends" on_wait $INIT 300 "node_fio_done fio$vol"
	check "[$t] fio passed (writes and verify_backlog reads)" \
		on $INIT "grep -E 'WRITE:|READ:|err=' /tmp/fio$vol.out; exit \$(cat /tmp/fio$vol.rc)"
	check "[$t] stale objects resynced (stale count 0 within 120 s)" \
		on_wait $INIT 120 '(( $(node_stale) == 0 ))'
	check "[$t] separate verify pass" \
		on $INIT "fio --name=verify$vol $(fio_args "$dev") --verify_only --output=/tmp/v$vol.out"
	check "[$t] all replicas identical (cvm-wire from the initiator)" \
		on $INIT "node_replicas_identical $vol $((VOL_SIZE >> 20)) $ADDRS"
	check "[$t] detach volume $vol" \
		on $INIT "python3 tests/vm/lib/initiator_genl.py detach $vol"
	echo "# $t: $((SECONDS - t0)) s"
done
for i in 0 1 2 $INIT; do
	guest_run $i 'echo "guest '$i' ($(hostname)): $(free -m | awk "/^Mem:/ { print \$3 }") MiB used of $(free -m | awk "/^Mem:/ { print \$2 }")"'
done
check_summary
