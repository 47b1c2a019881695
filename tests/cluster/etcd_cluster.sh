#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 500 s: one boot of 4 guests)
# cluster: --guests 4 --no-modules
#
# One cluster across machines, built and changed with cvmadm (issues 15
# and 16).  Four guests, each a storage node and an initiator at once:
# cvm_target serving its disk, cvm, and a cvmd on etcd (over TLS, client
# and peer certificates required: issue 17); guests 0-2 are the
# etcd members (the cluster store), guest 3 only its client.
#
#   - Joining: guest 0 adds itself (it joins at once) and the three others,
#     which join with the printed one-time tokens (`cvmadm join`).
#   - Any-node administration: pools and volumes made on guest 1; a
#     replicated(3) volume attached on guest 2 from guest 0, an ec(2,1) one
#     on guest 1 from guest 2; fio verifies both.
#   - Migration with tagged writes: guest 2 fills tagged blocks, the volume
#     moves to guest 1 (its time end to end is reported), where every
#     block reads as written.  A move is refused while the device is open;
#     --force moves it anyway, after which a write through the old host's
#     still-open device fails (fenced) and the blocks still read as written.
#   - `--wait`: a pool created on guest 0 returns once its epoch is in
#     every node's cvm.ko (the time is reported).
#   - etcd losing quorum (two members stopped): changes are refused, fio
#     with verify on a volume works meanwhile; the store comes back.
#   - The leader's guest powered off during a burst of creates from the
#     three other nodes: a new leader, every name at most once, every
#     acknowledged create there, ids unique.
#   - Permanent loss: that guest stays off.  After down_out_interval (10 s
#     here) its device is marked out with no command and its data rebuilt
#     on the three others (r0 by its host's cvm.ko, e0 by cvmd); then a
#     second device is lost and r0 and e0 still read back as written.  On
#     the code before this test the device was never marked out: the dead
#     node's last report on its own disk ("up") kept it in, and an idle
#     connection to a powered-off node never noticed it gone.
#
#	scripts/vm-cluster.sh tests/cluster/etcd_cluster.sh
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
. "$top/scripts/vm-cluster-lib.sh"
. "$top/tests/lib/check.sh"

# etcd over TLS, clients and peers, with certificates required both ways
# (issue 17): scripts/etcd-certs.sh makes a CA, a member certificate per
# etcd guest and a client certificate per cvmd; each guest finds its own
# in its share, /run/cvm-host/tls.
CERTS=/run/cvm-host/tls
tls_setup() {
	local dir i
	dir=$(mktemp -d)
	scripts/etcd-certs.sh "$dir" --server g0="$(guest_addr 0)" \
		--server g1="$(guest_addr 1)" --server g2="$(guest_addr 2)" \
		--client g0 --client g1 --client g2 --client g3 || return 1
	for i in 0 1 2 3; do
		mkdir -p "$(_gdir "$i")/tls" &&
		cp -p "$dir/ca.crt" "$dir"/*"-g$i".* "$(_gdir "$i")/tls/" || return 1
	done
	rm -rf "$dir"
}
store_of() {
	echo "etcds://$(guest_addr 0):2379,$(guest_addr 1):2379,$(guest_addr 2):2379/cvm?ca=$CERTS/ca.crt&cert=$CERTS/client-g$1.crt&key=$CERTS/client-g$1.key"
}
PEERS="g0=https://$(guest_addr 0):2380,g1=https://$(guest_addr 1):2380,g2=https://$(guest_addr 2):2380"
ENDPOINTS="$(guest_addr 0):2379,$(guest_addr 1):2379,$(guest_addr 2):2379"
CVMD=build/userspace/cvmd/cvmd
ADM="build/userspace/cvmadm/cvmadm --socket /run/cvm/cvmd.sock"
TAGGED="python3 tests/cluster/lib/tagged.py"
LOG=/run/cvm-host/tags.log	# each guest's own share: $(_gdir I)/tags.log
NOBJ=8

on() { guest_run "$1" ". tests/cluster/lib/node.sh; $2"; }
on_wait() { guest_wait "$1" "$2" ". tests/cluster/lib/node.sh; $3"; }
# A section's header, with the scenario's time so far.
section() { echo "# $* [${SECONDS} s]"; }
json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# TCG is slow: etcd's heartbeat and election timeouts are raised ten-fold.
# A restart (no `fresh`) keeps the member's data.
etcd_start() {
	local i=$1 fresh=${2:-} a
	a=$(guest_addr "$i")
	echo "${fresh:+rm -rf /tmp/etcd;} (setsid /usr/bin/etcd --name g$i --data-dir /tmp/etcd" \
		"--listen-client-urls https://$a:2379 --advertise-client-urls https://$a:2379" \
		"--listen-peer-urls https://$a:2380 --initial-advertise-peer-urls https://$a:2380" \
		"--initial-cluster $PEERS --initial-cluster-token cvm-test" \
		"--cert-file $CERTS/server-g$i.crt --key-file $CERTS/server-g$i.key" \
		"--client-cert-auth --trusted-ca-file $CERTS/ca.crt" \
		"--peer-cert-file $CERTS/server-g$i.crt --peer-key-file $CERTS/server-g$i.key" \
		"--peer-client-cert-auth --peer-trusted-ca-file $CERTS/ca.crt" \
		"--heartbeat-interval 500" \
		"--election-timeout 5000 </dev/null >>/tmp/etcd.log 2>&1 &)"
}
etcd_healthy() {
	echo "ETCDCTL_API=3 etcdctl --endpoints=$ENDPOINTS --cacert $CERTS/ca.crt" \
		"--cert $CERTS/client-g0.crt --key $CERTS/client-g0.key endpoint health 2>&1 |" \
		"grep -c 'is healthy' | grep -qx $1"
}

section "etcd, the modules and a cvmd on every guest"
check "etcd certificates: a CA, a member certificate per etcd guest, a client one per cvmd" tls_setup
for i in 0 1 2; do
	check "guest $i: etcd member g$i, cvm_target and cvm" on $i \
		"$(etcd_start $i fresh) && node_load cvm_target && node_load cvm"
done
check "guest 3: cvm_target and cvm" on 3 "node_load cvm_target && node_load cvm"
check "etcd: three healthy members" on_wait 0 120 "$(etcd_healthy 3)"
for i in 0 1 2 3; do
	check "guest $i: cvmd on etcd as host g$i" on $i \
		"$CVMD --store '$(store_of "$i")' --host g$i --socket /run/cvm/cvmd.sock \
			--log-file /tmp/cvmd.log --lease-ttl 6 --node-key /tmp/node.key"
done

section "joining: guest 0 adds every host; the others join with their tokens"
check "host add g0 on guest 0: it joins at once" on 0 \
	"$ADM host add g0 --address $(guest_addr 0):7001 | grep -q 'this node joined'"
for i in 1 2 3; do
	token=$(on 0 "$ADM host add g$i --address $(guest_addr $i):$((7001 + i)) --json" |
		json_get 'd["join_token"]')
	((i == 1)) && check "guest $i: not joined before its token" on $i \
		"$ADM status --json | grep -q '\"joined\": false'"
	check "guest $i: cvmadm join (token from host add g$i)" on $i "$ADM join $token"
done
check "guest 3: joining again is refused (its key stays)" on 3 \
	"! $ADM join $token 2>/tmp/join.err && grep -q 'already' /tmp/join.err"
for i in 0 1 2 3; do
	check "guest $i serves its disk: device add, target listen, target device add" on $i \
		"$ADM device add g$i /dev/vda --capacity \$(blockdev --getsize64 /dev/vda) >/dev/null &&
		 $ADM target listen --address $(guest_addr $i):$((7001 + i)) &&
		 $ADM target device add $((i + 1)) --format"
done

section "pools and volumes from guest 1, attached from other nodes"
check "guest 1: pools rep3 and ec21, volumes r0 and e0 (32 MiB)" on 1 \
	"$ADM pool create rep3 --policy replicated:3 --pg-num 32 &&
	 $ADM pool create ec21 --policy ec:2,1 --pg-num 32 &&
	 $ADM volume create r0 --pool rep3 --size 32M &&
	 $ADM volume create e0 --pool ec21 --size 32M"
t0=$(date +%s%3N)
check "volume attach r0 --host g2 (from guest 0)" on 0 "$ADM volume attach r0 --host g2"
check "guest 2: its cvmd brings up r0" on_wait 2 120 "test -b /dev/cvm0"
echo "attach from guest 0 to the device on guest 2: $(($(date +%s%3N) - t0)) ms (polled every 0.5 s from the host)"
check "volume attach e0 --host g1 (from guest 2)" on 2 "$ADM volume attach e0 --host g1"
check "guest 1: its cvmd brings up e0" on_wait 1 120 "test -b /dev/cvm0"
check "guest 1: fio randwrite 4M with crc32c verify on e0" on 1 \
	"fio --name=e0 --filename=/dev/cvm0 --rw=randwrite --bs=4k --size=4M \
		--direct=1 --iodepth=8 --ioengine=libaio --verify=crc32c --verify_fatal=1 \
		--output=/tmp/fio-e0.out"
check "guest 1: volume detach e0" on 1 "$ADM volume detach e0"

section "migration: tagged blocks written on guest 2, read on guest 1"
check "guest 2: $((NOBJ * 16)) tagged blocks written to r0" on 2 \
	"rm -f $LOG; $TAGGED write /dev/cvm0 $LOG --objects $NOBJ --fill"
moved=$(on 0 "$ADM volume migrate r0 --to g1 --json")
echo "$moved" | head -c 600; echo
check "volume migrate r0 --to g1 (from guest 0)" \
	eval "[[ \$(echo '$moved' | json_get 'd[\"attached_host\"]') == g1 ]]"
echo "idle volume moved g2 -> g1: $(echo "$moved" | json_get '"%.0f ms (hand-over %.0f ms)" % (d["total_ms"], d["handover_ms"])') end to end"
check "guest 2: no /dev/cvm0 any more" on 2 "! test -b /dev/cvm0"
cp "$(_gdir 2)/tags.log" "$(_gdir 1)/tags.log"
check "guest 1: every tagged block reads as written on guest 2" on 1 \
	"$TAGGED check /dev/cvm0 $LOG --objects $NOBJ"

section "an open device: refused, then --force; the old host is fenced"
check "guest 1: /dev/cvm0 held open" on 1 \
	"(setsid sh -c 'exec 3<>/dev/cvm0; sleep 600' </dev/null >/dev/null 2>&1 &); sleep 0.5"
check "migrate r0 --to g2 while open on g1: refused with the reason" on 2 \
	"$ADM volume migrate r0 --to g2 2>&1 | grep -q \"is open on host 'g1'\""
check "guest 1 keeps r0" on 1 \
	"test -b /dev/cvm0 && $ADM volume show r0 --json | grep -q '\"attached_host\": \"g1\"'"
check "migrate r0 --to g2 --force" on 2 "$ADM volume migrate r0 --to g2 --force"
check "guest 1: a write through its still-open device fails (fenced)" on 1 \
	"test -b /dev/cvm0 && ! dd if=/dev/urandom of=/dev/cvm0 bs=4k count=16 oflag=direct conv=notrunc 2>/dev/null"
check "guest 2: every tagged block still reads as written" on 2 \
	"$TAGGED check /dev/cvm0 $LOG --objects $NOBJ"
check "guest 1: the device goes once closed" on 1 \
	"pkill -f 'sleep 600'; for t in \$(seq 50); do test -b /dev/cvm0 || exit 0; sleep 0.2; done; exit 1"

section "a map change with --wait: returns once every node's cvm.ko has it"
out=$(on 0 "$ADM pool create rep3w --policy replicated:3 --pg-num 16 --wait")
echo "$out"
check "pool create --wait: the epoch is on all 4 nodes" eval "grep -q 'installed on 4 node' <<<'$out'"
check "guest 2: cvm.ko holds it" on 2 \
	"test \$($ADM status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"modules\"][\"cvm\"][\"map_epoch\"])') -ge $(echo "$out" | sed -n 's/^map epoch \([0-9]*\) installed.*/\1/p')"

section "etcd loses quorum: I/O on guest 2 goes on"
for i in 0 1; do
	check "guest $i: etcd stopped" on $i \
		"pkill -x etcd; for t in \$(seq 50); do pgrep -x etcd >/dev/null || exit 0; sleep 0.2; done; exit 1"
done
check "guest 2: the store refuses changes (no quorum)" on_wait 2 60 \
	"! $ADM volume create q0 --pool rep3w --size 4M >/dev/null 2>&1"
check "guest 2: fio randwrite 4M with crc32c verify on r0 meanwhile" on 2 \
	"fio --name=q --filename=/dev/cvm0 --rw=randwrite --bs=4k --size=4M --offset=16M \
		--direct=1 --iodepth=4 --ioengine=libaio --verify=crc32c --verify_fatal=1 \
		--output=/tmp/q.out"
for i in 0 1; do
	check "guest $i: etcd restarted" on $i "$(etcd_start $i)"
done
check "etcd: three healthy members again" on_wait 0 120 "$(etcd_healthy 3)"
check "guest 2: the store answers again" on_wait 2 60 "$ADM volume list | grep -q r0"

section "the leader's guest powered off during a burst of creates"
# For the permanent loss that follows: a silent node is noticed within
# keepalive + request_timeout (cvm.ko), and goes out down_out_interval later.
for i in 0 1 2 3; do
	check "guest $i: cvm.keepalive 2 s, cvm.request_timeout 10 s" on $i \
		"echo 2 >/sys/module/cvm/parameters/keepalive &&
		 echo 10 >/sys/module/cvm/parameters/request_timeout"
done
check "config set down_out_interval 10" on 3 "$ADM config set down_out_interval 10"
leader=$(on 1 "$ADM status --json" | json_get 'd["daemon"]["cluster"]["leader"]')
check "a leader ('$leader')" eval "[[ '$leader' =~ ^g[0-3]\$ ]]"
L=${leader#g}
others=()
for i in 0 1 2 3; do ((i == L)) || others+=("$i"); done
for i in "${others[@]}"; do
	# 12 creates each: 6 of its own names, 6 shared with the other nodes.
	on $i "(for n in \$(seq 1 6); do
		  $ADM volume create b$i-\$n --pool rep3w --size 4M >/dev/null 2>&1 && echo ok b$i-\$n || echo fail b$i-\$n
		  $ADM volume create s\$n --pool rep3w --size 4M >/dev/null 2>&1 && echo ok s\$n || echo fail s\$n
		done > /tmp/burst.out; touch /tmp/burst.done) </dev/null >/dev/null 2>&1 &"
done
sleep 2
guest_poweroff "$L"
echo "guest $L (the leader) powered off"
for i in "${others[@]}"; do
	check "guest $i: its burst ends" on_wait $i 180 "test -f /tmp/burst.done"
done
a=${others[0]}
check "a new leader among guests ${others[*]}" on_wait $a 60 \
	"$ADM status --json | python3 -c 'import json,sys; c = json.load(sys.stdin)[\"daemon\"][\"cluster\"]; sys.exit(not (c[\"leader\"] in \"${others[*]/#/g}\".split() and len(c[\"nodes\"]) == 3))'"
tmp=$(mktemp -d)
on $a "$ADM volume list --json" >"$tmp/vols.json"
for i in "${others[@]}"; do on $i "cat /tmp/burst.out"; done >"$tmp/burst"
echo "creates acknowledged: $(grep -c '^ok' "$tmp/burst"), failed: $(grep -c '^fail' "$tmp/burst")"
check "every acknowledged create is there, every name once, ids unique" \
	python3 - "$tmp/vols.json" "$tmp/burst" <<'PYCHECK'
import json, sys
vols = json.load(open(sys.argv[1]))
names = [v["name"] for v in vols]
ids = [v["id"] for v in vols]
acked = {l.split()[1] for l in open(sys.argv[2]) if l.startswith("ok ")}
missing = acked - set(names)
assert not missing, f"acknowledged but missing: {sorted(missing)}"
assert len(names) == len(set(names)), "a name twice"
assert len(ids) == len(set(ids)), "an id twice"
PYCHECK
rm -rf "$tmp"
if ((L != 2)); then
	check "guest 2: r0 still reads every tagged block" on 2 \
		"$TAGGED check /dev/cvm0 $LOG --objects $NOBJ"
	check "device $((L + 1)): its path is down as guest 2's cvm.ko sees it" on_wait 2 60 \
		"$ADM device list --json | python3 -c 'import json,sys; d = [x for x in json.load(sys.stdin) if x[\"id\"] == $((L + 1))][0]; sys.exit(d[\"path_state\"][\"initiators\"][\"g2\"][\"state\"] != \"down\")'"
	on 2 "$ADM device list"
fi

section "permanent loss: guest $L stays off; its device goes out and is rebuilt"
D=$((L + 1))	# its device
R=2		# r0's host
if ((L == 2)); then
	# r0's host is off too.  cvm.ko copies an attached volume, so its
	# copies wait for a host: --force moves it, fencing the dead one.
	R=${others[0]}
	check "r0's host is off: volume migrate r0 --to g$R --force" on $R \
		"$ADM volume migrate r0 --to g$R --force >/dev/null"
	cp "$(_gdir 2)/tags.log" "$(_gdir $R)/tags.log"
fi
for i in "${others[@]}"; do ((i == R)) || S=$i; done	# the second loss
for i in "${others[@]}"; do ((i == R || i == S)) || T=$i; done
check "device $D marked down and out after down_out_interval, with no command" \
	on_wait $R 120 "node_device_is $D up False && node_device_is $D in False"
echo "device $D out at $SECONDS s"
# logged TEXT: a surviving node's cvmd (the leader's) logged it.
logged() {
	local i
	for i in "${others[@]}"; do on $i "grep -q '$1' /tmp/cvmd.log" && return 0; done
	return 1
}
check "the leader logged why" logged "device $D marked down and out"
check "rebuilt on the others: pins cut, nothing placed on device $D" \
	on_wait $R 300 '(( $(node_pinned) == 0 && $(node_pgs_on '$D') == 0 ))'
echo "rebuilt at $SECONDS s"
check "status: recovery idle" on_wait $R 30 "$ADM status | grep -Eq '^ *recovery:? +idle\$'"
check "guest $R: r0 reads every tagged block" on $R \
	"$TAGGED check /dev/cvm0 $LOG --objects $NOBJ"

section "a second device lost after the rebuild loses nothing"
check "guest $S: its target stops serving device $((S + 1)) for good" on $S \
	"$ADM target device remove $((S + 1)) &&
	 $ADM target unlisten --address $(guest_addr $S):$((7001 + S))"
check "guest $R: r0 still reads every tagged block" on $R \
	"$TAGGED check /dev/cvm0 $LOG --objects $NOBJ"
check "guest $R: r0's fio blocks (16 MiB on) verify" on $R \
	"fio --name=q --filename=/dev/cvm0 --rw=randwrite --bs=4k --size=4M --offset=16M \
		--direct=1 --iodepth=4 --ioengine=libaio --verify=crc32c --verify_fatal=1 \
		--verify_only --output=/tmp/q-verify.out"
check "guest $T: e0 attached, its fio blocks verify" on $T \
	"dev=\$($ADM volume attach e0) &&
	 fio --name=e0 --filename=\$dev --rw=randwrite --bs=4k --size=4M \
		--direct=1 --iodepth=8 --ioengine=libaio --verify=crc32c --verify_fatal=1 \
		--verify_only --output=/tmp/e0-verify.out"

for i in "${others[@]}"; do
	on $i "grep -E 'warning|error' /tmp/cvmd.log | tail -n 5"
done
check_summary
