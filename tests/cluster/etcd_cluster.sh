#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 4 min: one boot of 4 guests)
# cluster: --guests 4 --no-modules
#
# One cluster across machines, built with cvmadm (issue 15).  Guests 0, 1
# and 2 are storage nodes: each runs an etcd member (the three form the
# cluster store), cvm_target and a cvmd on etcd.  Guest 3 is an initiator
# running only cvm and a cvmd.  The cluster is described from guest 0, each
# storage node serves its own disk through its own cvmd, pools and volumes
# are created from guest 1, and a replicated(3) and an ec(2,1) volume are
# attached on the initiator from guest 2 (`volume attach --host g3`): the
# initiator's cvmd, following the store, brings them up, and fio writes and
# verifies both there.  Every cvmd shows the same leader and four cvmds up.
# It reports the time from an attach on guest 2 to the device on guest 3,
# and from a map change on guest 0 to the new epoch in guest 3's cvm.ko.
#
#	scripts/vm-cluster.sh tests/cluster/etcd_cluster.sh
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
. "$top/scripts/vm-cluster-lib.sh"
. "$top/tests/lib/check.sh"

INIT=3
STORE="etcd://$(guest_addr 0):2379,$(guest_addr 1):2379,$(guest_addr 2):2379/cvm"
PEERS="g0=http://$(guest_addr 0):2380,g1=http://$(guest_addr 1):2380,g2=http://$(guest_addr 2):2380"
CVMD=build/userspace/cvmd/cvmd
ADM="build/userspace/cvmadm/cvmadm --socket /run/cvm/cvmd.sock"

on() { guest_run "$1" ". tests/cluster/lib/node.sh; $2"; }
on_wait() { guest_wait "$1" "$2" ". tests/cluster/lib/node.sh; $3"; }
now_ms() { date +%s%3N; }

# TCG is slow: etcd's heartbeat and election timeouts are raised ten-fold.
etcd_start() {
	local i=$1 a
	a=$(guest_addr "$i")
	echo "rm -rf /tmp/etcd; (setsid /usr/bin/etcd --name g$i --data-dir /tmp/etcd" \
		"--listen-client-urls http://$a:2379,http://127.0.0.1:2379" \
		"--advertise-client-urls http://$a:2379 --listen-peer-urls http://$a:2380" \
		"--initial-advertise-peer-urls http://$a:2380 --initial-cluster $PEERS" \
		"--initial-cluster-token cvm-test --heartbeat-interval 500" \
		"--election-timeout 5000 </dev/null >/tmp/etcd.log 2>&1 &)"
}
cvmd_start() {
	echo "$CVMD --store $STORE --host g$1 --socket /run/cvm/cvmd.sock" \
		"--log-file /tmp/cvmd.log --lease-ttl 10"
}

echo "# etcd: a member on each storage guest"
for i in 0 1 2; do
	check "guest $i: etcd member g$i started" on $i "$(etcd_start $i)"
done
check "etcd: three healthy members" on_wait 0 120 \
	"ETCDCTL_API=3 etcdctl --endpoints=$(guest_addr 0):2379,$(guest_addr 1):2379,$(guest_addr 2):2379 endpoint health 2>&1 | grep -c 'is healthy' | grep -qx 3"

echo "# modules and a cvmd on every guest"
for i in 0 1 2; do
	check "guest $i: load cvm_target" on $i "node_load cvm_target"
done
check "guest $INIT: load cvm" on $INIT "node_load cvm"
for i in 0 1 2 $INIT; do
	check "guest $i: cvmd on etcd as host g$i" on $i "$(cvmd_start $i)"
done

echo "# the cluster, described from guest 0"
for i in 0 1 2; do
	check "host add g$i" on 0 "$ADM host add g$i --address $(guest_addr $i):$((7001 + i))"
	check "device add g$i /dev/vda" on 0 \
		"$ADM device add g$i /dev/vda --capacity \$(blockdev --getsize64 /dev/vda)"
done
check "host add g$INIT (the initiator)" on 0 \
	"$ADM host add g$INIT --address $(guest_addr $INIT):7000"
for i in 0 1 2; do
	check "guest $i serves its own disk: target listen, target device add $((i + 1))" \
		on $i "$ADM target listen --address $(guest_addr $i):$((7001 + i)) &&
			$ADM target device add $((i + 1)) --format"
done

echo "# pools and volumes, from guest 1"
check "pool create rep3" on 1 "$ADM pool create rep3 --policy replicated:3 --pg-num 32"
check "pool create ec21" on 1 "$ADM pool create ec21 --policy ec:2,1 --pg-num 32"
check "volume create r0 (rep3, 32 MiB)" on 1 "$ADM volume create r0 --pool rep3 --size 32M"
check "volume create e0 (ec21, 32 MiB)" on 1 "$ADM volume create e0 --pool ec21 --size 32M"

echo "# attached on the initiator from guest 2"
t0=$(now_ms)
check "volume attach r0 --host g$INIT (from guest 2)" on 2 "$ADM volume attach r0 --host g$INIT"
check "guest $INIT: its cvmd brings up r0 as /dev/cvm0" on_wait $INIT 120 "test -b /dev/cvm0"
attach_ms=$(($(now_ms) - t0))
check "volume attach e0 --host g$INIT (from guest 2)" on 2 "$ADM volume attach e0 --host g$INIT"
check "guest $INIT: e0 as /dev/cvm1" on_wait $INIT 120 "test -b /dev/cvm1"
echo "attach from guest 2 to the device on guest $INIT: $attach_ms ms (polled every 0.5 s from the host)"

for d in 0 1; do
	check "guest $INIT: fio randwrite 16M with crc32c verify on /dev/cvm$d" \
		on $INIT "fio --name=v$d --filename=/dev/cvm$d --rw=randwrite --bs=4k --size=16M \
			--direct=1 --iodepth=8 --ioengine=libaio --verify=crc32c --verify_fatal=1 \
			--output=/tmp/fio$d.out && grep -E 'WRITE:|READ:' /tmp/fio$d.out"
done

echo "# health, seen from every node"
leader=$(on 1 "$ADM status --json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["daemon"]["cluster"]["leader"])' 2>/dev/null)
check "a leader is elected ('$leader')" eval "[[ '$leader' =~ ^g[0-3]\$ ]]"
for i in 0 1 2 $INIT; do
	check "guest $i: status names leader $leader and 4 cvmds up" on $i \
		"$ADM status --json | python3 -c 'import json,sys; c = json.load(sys.stdin)[\"daemon\"][\"cluster\"]; sys.exit(not (c[\"leader\"] == \"$leader\" and len(c[\"nodes\"]) == 4))'"
done
check "status: 3 healthy etcd members" on $INIT \
	"test \$($ADM status | grep -c ': healthy, etcd') -eq 3"
on 2 "$ADM status; $ADM host list"

echo "# a map change on guest 0 reaches guest $INIT's kernel"
epoch() { on $INIT "$ADM status --json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["modules"]["cvm"]["map_epoch"])'; }
before=$(epoch)
t0=$(now_ms)
check "pool create rep2 (a new epoch) on guest 0" on 0 "$ADM pool create rep2 --policy replicated:2 --pg-num 16"
check "guest $INIT: cvm.ko has a newer map epoch than $before" on_wait $INIT 60 \
	"(( \$($ADM status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"modules\"][\"cvm\"][\"map_epoch\"])') > $before ))"
echo "map change on guest 0 to the epoch in guest $INIT's cvm.ko: $(($(now_ms) - t0)) ms (polled every 0.5 s from the host)"

for i in 0 1 2 $INIT; do
	on $i "grep -E 'warning|error' /tmp/cvmd.log | tail -n 5"
done
check_summary
