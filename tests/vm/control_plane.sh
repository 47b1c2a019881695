#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 15 s)
# The control plane inside the test VM, with cvm.ko and cvm_target.ko
# loaded: cvmd on RocksDB, cvmadm describing a cluster on real block devices
# (brd), the kernel modules' status read over generic netlink, a map sealed
# for every epoch, bad input refused, and the state intact after cvmd
# restarts.  Runs INSIDE the VM: scripts/vm-run.sh tests/run-in-vm.sh
set -u
top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
. tests/lib/check.sh
require_vm

bin=$top/build/userspace
cvmd=$bin/cvmd/cvmd
cvmadm=$bin/cvmadm/cvmadm
work=$(mktemp -d /tmp/cvm-control.XXXXXX)
export CVM_SOCKET=$work/cvmd.sock
version=$(cat VERSION)

start_cvmd() { "$cvmd" --db "$work/db" --socket "$CVM_SOCKET" --pid-file "$work/pid" --log-file "$work/cvmd.log"; }
stop_cvmd() {
	local pid
	pid=$(cat "$work/pid" 2>/dev/null) || return 0
	kill "$pid"
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	return 1
}
# Leave the VM as found: the next test loads brd with its own sizes.
trap 'stop_cvmd; rm -rf "$work"; rmmod brd 2>/dev/null' EXIT

# Output of a command must contain a pattern (grep -E).
has() { local pat=$1; shift; "$@" | grep -Eq -- "$pat"; }

rmmod brd 2>/dev/null	# module parameters only apply to a fresh load
modprobe brd rd_nr=3 rd_size=65536
check "cvmd starts on a new database" start_cvmd
check "status: cvm module version over netlink" \
	has "^cvm module: +loaded, version $version" "$cvmadm" status
check "status: cvm_target module version over netlink" \
	has "^cvm_target module: +loaded, version $version" "$cvmadm" status
check "status --json names the roles" has '"role": *"target"' "$cvmadm" --json status

for i in 1 2 3; do
	check "host add storage$i" "$cvmadm" host add "storage$i" \
		--address "127.0.0.$i:7800" --rack "rack$((i % 2))"
	size=$(blockdev --getsize64 "/dev/ram$((i - 1))")
	check "device add /dev/ram$((i - 1)) ($size bytes)" "$cvmadm" device add \
		"storage$i" "/dev/ram$((i - 1))" --capacity "$size"
done
check "pool create replicated:3" "$cvmadm" pool create rep3 \
	--policy replicated:3 --pg-num 128
check "volume create" "$cvmadm" volume create vol0 --pool rep3 --size 1G
check "map is servable, PGs on 3 devices" \
	has "^rep3 +128 +3 +3 +128 " "$cvmadm" map show
check "an ec:4,2 pool on 3 hosts is left out of the map, named" \
	bash -c "'$cvmadm' pool create ec42 --policy ec:4,2 >/dev/null &&
		 '$cvmadm' map show | grep -q \"left out: *pool 'ec42'\""

check "refused: duplicate host" refuses "already exists" \
	"$cvmadm" host add storage1 --address 127.0.0.9:7800
check "refused: unaligned volume size" refuses "512" \
	"$cvmadm" volume create bad --pool rep3 --size 1000
check "refused: unknown pool" refuses "pool 'nope' does not exist" \
	"$cvmadm" volume create v2 --pool nope --size 1G
check "refused: deleting a pool in use" refuses "still has volumes" \
	"$cvmadm" pool delete rep3
check "refused: bad policy" refuses "1 to 5 replicas" \
	"$cvmadm" pool create p --policy replicated:9

before=$("$cvmadm" --json volume list; "$cvmadm" --json host list; "$cvmadm" map show)
check "cvmd stops cleanly" stop_cvmd
check "socket removed on stop" test ! -e "$CVM_SOCKET"
check "cvmd restarts on the same database" start_cvmd
after=$("$cvmadm" --json volume list; "$cvmadm" --json host list; "$cvmadm" map show)
check "state identical after restart" test "$before" == "$after"
check "a second cvmd is refused" refuses "in use by a running cvmd" \
	"$cvmd" --db "$work/db" --socket "$CVM_SOCKET"

# cvmd pushed its maps into cvm.ko; the tests after this one start without.
check "reload cvm.ko" eval "rmmod cvm && insmod kernel/cvm.ko"
check_summary
