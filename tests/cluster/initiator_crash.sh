#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 200 s: one boot of 4 guests, then a storage guest's
# and the initiator's power cuts and both reboots)
# cluster: --guests 4 --no-modules
#
# An initiator crash while a replica is down.  Guests 0, 1 and 2 are
# storage nodes (cvm_target.ko, device i on the guest's /dev/vda, tcp);
# guest 3 is the initiator.  A replicated(3) volume with 1 MiB objects is
# filled with tagged blocks (tests/cluster/lib/tagged.py: 16 blocks at the
# start of each of 16 objects, each write logged on the host's 9p share
# before and after it), and left idle until the targets' write-intent bits
# are clean.  Then storage guest 1 loses power, the initiator writes
# tagged blocks of objects 0-7 with two replicas (each object's first
# degraded write BUMPs its version on devices 0 and 2 before it is
# acknowledged), and loses power itself mid-write: whatever it knew of
# device 1's missing writes is gone.  Guest 1 boots over its disk, then
# the initiator boots, loads cvm.ko and attaches the volume again (a new
# attach epoch).  Every tagged block must read as the last acknowledged
# write for it (or a later one that was in flight), although device 1 is
# first in the PG of some objects (old code: those read device 1's older
# bytes); the attach must find exactly the 8 objects that were being
# written, and after the resync all three replicas must hold the same
# bytes and the blocks still check.
#
#	scripts/vm-cluster.sh tests/cluster/initiator_crash.sh
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
. "$top/scripts/vm-cluster-lib.sh"
. "$top/tests/lib/check.sh"

INIT=3				# the initiator guest
DOWN=1				# the storage guest that is off meanwhile
ADDRS=$(guest_addr 0),$(guest_addr 1),$(guest_addr 2)
VOL=21
NOBJ=16
VOL_SIZE=$((NOBJ << 20))
LOG=/run/cvm-host/tags.log	# guest 3's share: $(_gdir 3)/tags.log
TAGGED="python3 tests/cluster/lib/tagged.py"

on() { guest_run "$1" ". tests/cluster/lib/node.sh; $2"; }
on_wait() { guest_wait "$1" "$2" ". tests/cluster/lib/node.sh; $3"; }
# host_wait SECS CMD...: poll CMD on the host until it succeeds.
host_wait() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS >= deadline)) && { echo "not true after the wait: $*"; return 1; }
		sleep 0.5
	done
}
# ok_lines: acknowledged tagged writes so far (read on the host).
ok_lines() { grep -c '^ok ' "$(_gdir $INIT)/tags.log" 2>/dev/null || echo 0; }

# intent_clean: no object of the volume has its intent bit on device 0.
intent_clean() {
	on 0 "for o in \$(seq 0 $((NOBJ - 1))); do
		\"\$NODE_WIRE\" $(guest_addr 0):\$(node_port 0) stat --device 0 \
			--volume $VOL --object \$o | grep -q ' intent 0 ' || exit 1
	done"
}

initiator_up() {
	on $INIT 'node_load cvm && echo 5 >/sys/module/cvm/parameters/request_timeout' &&
		on $INIT "node_map_set 1 tcp $ADDRS" &&
		on_wait $INIT 60 "(( \$(dmesg | grep -c ': connected\$') >= 3 ))"
}

echo "# set up: 3 storage guests, 1 initiator"
rm -f "$(_gdir $INIT)/tags.log"
for i in 0 1 2; do
	check "guest $i: format device $i on /dev/vda, listen tcp" \
		on $i "NODE_TRANSPORTS=tcp node_storage_up $i format"
done
check "initiator: cvm.ko, map epoch 1, connected to all three" initiator_up
minor=$(on $INIT "node_attach $VOL $VOL_SIZE")
check "attach replicated(3) volume $VOL (epoch 1) -> /dev/cvm$minor" \
	eval "[[ '$minor' =~ ^[0-9]+\$ ]]"
dev=/dev/cvm$minor
check "every tagged block of $NOBJ objects written once" \
	on $INIT "$TAGGED write $dev $LOG --objects $NOBJ --fill"
check "intent bits cleaned once the volume is idle (within 30 s)" \
	host_wait 30 intent_clean

echo "# storage guest $DOWN off, then the initiator crashes mid-write"
check "power off storage guest $DOWN" guest_poweroff $DOWN
before=$(ok_lines)
on $INIT "($TAGGED write $dev $LOG --objects 8 >/dev/null 2>&1 &)"
check "the initiator acknowledged 150 writes without device $DOWN" \
	host_wait 120 eval "(( \$(ok_lines) >= $before + 150 ))"
check "power off the initiator mid-write" guest_poweroff $INIT
echo "acknowledged tagged writes before the crash: $(($(ok_lines) - before))"

echo "# both come back"
# Both boot at once: initiator_up waits until cvm.ko has connected to all
# three, so device $DOWN serves before the attach scans for write intent.
check "boot storage guest $DOWN over the same disk, and the initiator" \
	guest_boot $DOWN $INIT
check "guest $DOWN: device $DOWN loads its store, listens" \
	on $DOWN "NODE_TRANSPORTS=tcp node_storage_up $DOWN"
check "initiator: cvm.ko, map epoch 1, connected to all three" initiator_up
minor=$(on $INIT "python3 tests/vm/lib/initiator_genl.py attach $VOL 3 $VOL_SIZE --object-size $((1 << 20)) --epoch 2 --name r3-$VOL")
check "attach volume $VOL again (epoch 2) -> /dev/cvm$minor" \
	eval "[[ '$minor' =~ ^[0-9]+\$ ]]"
dev=/dev/cvm$minor
check "every tagged block reads as its last acknowledged write" \
	on $INIT "$TAGGED check $dev $LOG --objects $NOBJ"
check "the attach found the 8 objects that were being written" \
	on $INIT "dmesg | grep 'volume $VOL: .* objects had write intent'; dmesg | grep -q 'volume $VOL: 8 objects had write intent'"
check "stale objects resynced (within 120 s)" \
	on_wait $INIT 120 '(( $(node_stale) == 0 ))'
check "all replicas identical" \
	on $INIT "node_replicas_identical $VOL $NOBJ $ADDRS"
check "every tagged block still reads as its last acknowledged write" \
	on $INIT "$TAGGED check $dev $LOG --objects $NOBJ"
check "detach" on $INIT "python3 tests/vm/lib/initiator_genl.py detach $VOL"
check_summary
