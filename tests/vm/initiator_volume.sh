#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 60 s)
# cvm.ko control path without any target: MAP_SET (good maps, chunked
# upload, malformed maps refused), VOLUME_ATTACH / DETACH / LIST (/dev/cvmN
# appears with the right size and goes away, attach/detach cycles,
# malformed attaches refused), unload with volumes attached.  Runs INSIDE
# the test VM, from the repository root:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/initiator_volume.sh
#
# The paths in the maps point at 127.0.0.1 ports nobody listens on: the
# module keeps reconnecting in the background, which must stay harmless.
# Prints "N passed, N failed"; exits 0 only if every check passed.
set -u

top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
if [[ -z "${CVM_IN_VM:-}" ]]; then
	echo "initiator_volume: run me inside the test VM: scripts/vm-run.sh $0" >&2
	exit 2
fi

CYCLES=${CVM_ATTACH_CYCLES:-5}
ig=(python3 "$top/tests/vm/lib/initiator_genl.py")
. "$top/tests/lib/check.sh"

# refused WHAT ERRNO-NAME COMMAND...: COMMAND fails with ERRNO-NAME.
refused() {
	local want=$2 out
	shift 2
	out=$("$@" 2>&1) && { echo "unexpectedly succeeded: $out"; return 1; }
	[[ "$out" == "$want:"* ]] || { echo "got: $out"; return 1; }
	echo "$out"
}

status_is() { [[ "$("${ig[@]}" status)" == "$1" ]]; }
dev_size_is() { [[ "$(blockdev --getsize64 "$1")" == "$2" ]]; }
dev_absent() { [[ ! -e "$1" && ! -e /sys/block/$(basename "$1") ]]; }
attach_minor_is() {
	local minor
	minor=$("${ig[@]}" attach "${@:2}") || return
	[[ "$minor" == "$1" ]] || { echo "minor $minor, want $1"; return 1; }
}
list_is() { diff <("${ig[@]}" list) <(printf '%s' "$1"); }

# Start from a fresh module.
if [[ -d /sys/module/cvm ]]; then
	rmmod cvm || exit 1
fi
insmod kernel/cvm.ko || exit 1

echo "# no map yet"
check "status: epoch 0, no volumes" status_is "epoch 0 volumes 0"
check "attach refused without a map" \
	refused x ENOENT "${ig[@]}" attach 1 1 $((64 << 20))
check "malformed requests refused (no map)" "${ig[@]}" refusals

echo "# maps"
check "map epoch 1 installed" "${ig[@]}" map-set 1
check "status: epoch 1" status_is "epoch 1 volumes 0"
check "same epoch refused" refused x ESTALE "${ig[@]}" map-set 1
check "older epoch refused" refused x ESTALE "${ig[@]}" map-set 0
check "map epoch 2, 8 KiB chunks" "${ig[@]}" map-set 2 --chunk 8192
check "map epoch 3, 100 KiB blob in 64 KiB chunks" \
	"${ig[@]}" map-set 3 --extra-devices 8000
check "map epoch 4, one host, no paths" "${ig[@]}" map-set 4 --hosts 1 --no-paths
check "map epoch 5" "${ig[@]}" map-set 5
check "status: epoch 5" status_is "epoch 5 volumes 0"
check "malformed requests refused (map 5)" "${ig[@]}" refusals
check "status still epoch 5" status_is "epoch 5 volumes 0"

echo "# attach / detach"
check "attach 64 MiB replicated(1) -> cvm0" \
	attach_minor_is 0 11 1 $((64 << 20)) --name alpha --epoch 7
check "/dev/cvm0 is 64 MiB" dev_size_is /dev/cvm0 $((64 << 20))
check "attach 1 GiB replicated(3), 1 MiB objects -> cvm1" \
	attach_minor_is 1 12 3 $((1 << 30)) --object-size $((1 << 20))
check "/dev/cvm1 is 1 GiB" dev_size_is /dev/cvm1 $((1 << 30))
check "cvm1 max_sectors_kb 1024" \
	grep -qx 1024 /sys/block/cvm1/queue/max_hw_sectors_kb
check "cvm1 logical 512, physical 4096" eval \
	'[[ $(cat /sys/block/cvm1/queue/logical_block_size) == 512 && $(cat /sys/block/cvm1/queue/physical_block_size) == 4096 ]]'
check "cvm1 discard and write zeroes" eval \
	'[[ $(cat /sys/block/cvm1/queue/discard_max_bytes) != 0 && $(cat /sys/block/cvm1/queue/write_zeroes_max_bytes) != 0 ]]'
check "cvm1 one hw queue per CPU" eval \
	"[[ \$(ls /sys/block/cvm1/mq | wc -l) == $(nproc) ]]"
check "list shows both" list_is "11 1 $((64 << 20)) 0 alpha
12 3 $((1 << 30)) 1 
"
check "status: 2 volumes" status_is "epoch 5 volumes 2"
check "duplicate volume id refused" \
	refused x EEXIST "${ig[@]}" attach 11 1 $((64 << 20))
check "map dropping an attached pool refused" \
	refused x EBUSY python3 -c "
import sys; sys.path.insert(0, 'tests/vm/lib'); import initiator_genl as ig
b = ig.encode_map(9, [(0, 0x10000, 3)], [(-1, 4, [-2]), (-2, 1, [0])],
                  [(1, 16, 1, 1, 0, 1)])
err, text = ig.Cvm().map_set(b, ig.paths_attr([0]))
if err:
    print('%s: %s' % (__import__('errno').errorcode[err], text)); sys.exit(1)"
check "map epoch 6 with volumes attached" "${ig[@]}" map-set 6
check "malformed requests refused (volumes attached)" "${ig[@]}" refusals
exec 9</dev/cvm0
check "detach of an open device refused" refused x EBUSY "${ig[@]}" detach 11
check "forced detach of an open device" "${ig[@]}" detach 11 --force
exec 9<&-
check "/dev/cvm0 gone" dev_absent /dev/cvm0
check "detach again refused" refused x ENOENT "${ig[@]}" detach 11
check "reattach reuses minor 0" attach_minor_is 0 11 1 $((8 << 20))
check "/dev/cvm0 is 8 MiB" dev_size_is /dev/cvm0 $((8 << 20))
check "detach 11" "${ig[@]}" detach 11
check "detach 12" "${ig[@]}" detach 12
check "/dev/cvm1 gone" dev_absent /dev/cvm1
check "list empty" list_is ""
for ((i = 1; i <= CYCLES; i++)); do
	check "cycle $i: attach" attach_minor_is 0 $((100 + i)) 3 $((i << 20)) \
		--object-size 4096
	check "cycle $i: size" dev_size_is /dev/cvm0 $((i << 20))
	check "cycle $i: detach" "${ig[@]}" detach $((100 + i))
	check "cycle $i: gone" dev_absent /dev/cvm0
done

echo "# unload with volumes attached"
check "attach 2 volumes" eval "${ig[*]} attach 1 1 4194304 && ${ig[*]} attach 2 3 4194304"
check "rmmod cvm" rmmod cvm
check "devices gone" eval 'dev_absent /dev/cvm0 && dev_absent /dev/cvm1'
check "reload cvm" insmod kernel/cvm.ko
check "fresh state" status_is "epoch 0 volumes 0"

check_summary
