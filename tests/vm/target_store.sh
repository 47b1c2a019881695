#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 30 s)
# cvm_target.ko end to end: object store on brd ram disks served over TCP,
# driven by cvm-wire (userspace wire client) and target_genl.py (netlink).
# Runs INSIDE the test VM from the repository root:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/target_store.sh
#
# Covers: format/add/remove, refusal of unformatted and formatted devices
# without the right flags, thin allocation, read-back of patterns, zeroes
# for never-written ranges, overwrite, STAT, FUA, FLUSH, REMOVE, NO_SPACE,
# persistence across module unload/reload (brd keeps the data), refusal of a
# corrupt superblock and object table with the reason in dmesg, malformed
# wire messages (cvm-wire fuzz), host authentication (cvm-wire auth:
# unauthenticated, wrong key, replay, reflection, a foreign volume) and
# malformed netlink requests.
#
# TCP only (no "# transports:" line): every byte of data here, the
# persistence across a module reload included, goes through the userspace
# cvm-wire, which speaks TCP; cvm.ko's data path is not involved.  The
# data-path tests (initiator_fio, initiator_degraded, cvmadm_datapath) run
# over rdma too.
#
# Prints "N passed, N failed"; exits 0 only if every check passed.
set -u

top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
if [[ -z "${CVM_IN_VM:-}" ]]; then
	echo "target_store: run me inside the test VM: scripts/vm-run.sh $0" >&2
	exit 2
fi

G=(python3 "$top/tests/vm/lib/target_genl.py")
W=${CVM_WIRE:-$top/build/userspace/tools/cvm-wire}
PORT=${CVM_TEST_PORT:-7420}
EP=127.0.0.1:$PORT
DEV=/dev/ram0
ID=1
tmp=$(mktemp -d)
. "$top/tests/lib/check.sh"

# refused WHAT COMMAND...: COMMAND must fail.
not() { ! "$@"; }
refused() {
	local what=$1
	shift
	check "$what" not "$@"
}
wire() { "$W" "$EP" "$1" --device "$ID" "${@:2}"; }
# wire_status STATUS VERB ARGS: the target answers STATUS (not OK).
wire_status() {
	local want=$1 out
	shift
	out=$(wire "$@" 2>&1 >/dev/null)
	[[ $? -eq 1 && "$out" == *"status $want"* ]] || { echo "$out"; return 1; }
}
pattern() { head -c "$2" /dev/zero | tr '\0' "\\$(printf '%03o' "$1")"; }
# read_is VOL OBJ OFF LEN FILE: the range reads back as FILE.
read_is() {
	wire read --volume "$1" --object "$2" --offset "$3" --length "$4" \
		--out "$tmp/r" && cmp "$tmp/r" "$5"
}
dmesg_has() { dmesg | grep -q -- "$1"; }

load_target() {
	[[ -d /sys/module/cvm_target ]] && return 0
	for dep in $(modinfo -F depends kernel/cvm_target.ko | tr ',' ' '); do
		modprobe "$dep" || return
	done
	insmod kernel/cvm_target.ko
}

cleanup() {
	"${G[@]}" unlisten 127.0.0.1 "$PORT" >/dev/null 2>&1
	"${G[@]}" remove "$ID" >/dev/null 2>&1
	"${G[@]}" remove 2 >/dev/null 2>&1
	rmmod brd 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "# setup"
[[ -x "$W" ]] || { echo "cvm-wire not built: $W"; exit 1; }
rmmod brd 2>/dev/null
check "modprobe brd (2 x 64 MiB)" modprobe brd rd_nr=2 rd_size=65536
check "cvm_target loaded" load_target
pattern 0 4096 >"$tmp/z4k"
pattern 0 65536 >"$tmp/z64k"
pattern 171 65536 >"$tmp/ab64k"
head -c 1048576 /dev/urandom >"$tmp/rand1m"

echo "# devices"
# Opening and formatting a block device is a CAP_SYS_ADMIN act; netlink's
# GENL_ADMIN_PERM alone checks CAP_NET_ADMIN.  setpriv drops CAP_SYS_ADMIN
# from the bounding set, so the python it runs keeps CAP_NET_ADMIN only.
no_sys_admin() {
	local out
	out=$(setpriv --bounding-set=-sys_admin --inh-caps=-sys_admin \
		"${G[@]}" "$@" 2>&1)
	[[ $? -ne 0 && "$out" == *EPERM*"CAP_SYS_ADMIN"* ]] || { echo "$out"; return 1; }
}
check "device add+format without CAP_SYS_ADMIN refused (EPERM)" \
	no_sys_admin add $ID $DEV format force
check "device add without CAP_SYS_ADMIN refused (EPERM)" \
	no_sys_admin add $ID $DEV
check "the refused format wrote nothing (no superblock)" \
	cmp -n 1048576 $DEV /dev/zero
refused "unformatted device refused without FORMAT" "${G[@]}" add $ID $DEV
check "refusal names the reason" dmesg_has "refused: no CVM superblock"
check "format and add $DEV as device $ID" "${G[@]}" add $ID $DEV format
check "STATUS_GET OBJECTS = 1" test "$("${G[@]}" objects)" = 1
refused "same device id again refused" "${G[@]}" add $ID /dev/ram1 format
refused "device already served refused" "${G[@]}" add 2 $DEV
check "remove device $ID" "${G[@]}" remove $ID
check "STATUS_GET OBJECTS = 0" test "$("${G[@]}" objects)" = 0
refused "FORMAT over a superblock refused without FORCE" \
	"${G[@]}" add $ID $DEV format
check "re-add without FORMAT" "${G[@]}" add $ID $DEV
check "remove device $ID" "${G[@]}" remove $ID
refused "add with another device id refused" "${G[@]}" add 5 $DEV
check "re-add after refusal" "${G[@]}" add $ID $DEV

echo "# listen"
check "listen on $EP" "${G[@]}" listen 127.0.0.1 "$PORT"
refused "listen twice on $EP refused" "${G[@]}" listen 127.0.0.1 "$PORT"
refused "HELLO for a device not served refused" \
	"$W" "$EP" stat --device 99 --volume 1 --object 1

echo "# data"
check "write 64 KiB 0xab at 0" wire write --volume 7 --object 3 --offset 0 \
	--length 65536 --pattern 0xab
check "read it back" read_is 7 3 0 65536 "$tmp/ab64k"
check "write 1 MiB random at 1 MiB" wire write --volume 7 --object 3 \
	--offset 1048576 --file "$tmp/rand1m"
check "read it back" read_is 7 3 1048576 1048576 "$tmp/rand1m"
check "never-written range of an allocated object reads zeroes" \
	read_is 7 3 3145728 65536 "$tmp/z64k"
check "never-written object reads zeroes" read_is 7 4 0 65536 "$tmp/z64k"
check "overwrite 4 KiB at 4 KiB with 0xcd (FUA)" wire write --volume 7 \
	--object 3 --offset 4096 --length 4096 --pattern 0xcd --fua
{ pattern 171 4096; pattern 205 4096; pattern 171 4096; } >"$tmp/mix"
check "read shows the overwrite" read_is 7 3 0 12288 "$tmp/mix"
check "stat: 4 MiB allocated" eval \
	'wire stat --volume 7 --object 3 | grep -q "allocated 4194304"'
wire_status_nf() { wire_status NOT_FOUND stat --volume 7 --object 4; }
check "stat of a never-written object: NOT_FOUND" wire_status_nf
check "flush" wire flush
check "range beyond the 4 MiB extent: INVALID" wire_status INVALID read \
	--volume 7 --object 3 --offset 4194304 --length 4096
check "shard 1 reads zeroes" eval \
	'wire read --volume 7 --object 3 --shard 1 --length 4096 --out "$tmp/r" && cmp "$tmp/r" "$tmp/z4k"'
check "remove" wire remove --volume 7 --object 3
check "removed object reads zeroes" read_is 7 3 0 65536 "$tmp/z64k"
check "remove again: NOT_FOUND" wire_status NOT_FOUND remove --volume 7 \
	--object 3

echo "# space"
n=0
while wire write --volume 8 --object $n --length 4096 --pattern $n \
	>/dev/null 2>&1; do
	n=$((n + 1))
	((n > 64)) && break
done
check "device full after 15 objects (got $n)" test "$n" = 15
check "next write: NO_SPACE" wire_status NO_SPACE write --volume 8 \
	--object 99 --length 4096 --pattern 1
check "remove one frees space" eval \
	'wire remove --volume 8 --object 0 && wire write --volume 8 --object 99 --length 4096 --pattern 1'
check "free space for what follows" eval \
	'for o in 1 2 3 4 99; do wire remove --volume 8 --object $o || exit 1; done'

echo "# persistence across unload/reload"
check "write 1 MiB random to 9/1 with FUA" wire write --volume 9 --object 1 \
	--offset 0 --file "$tmp/rand1m" --fua
check "unload cvm_target" rmmod cvm_target
check "reload cvm_target" load_target
check "STATUS_GET OBJECTS = 0 after reload" test "$("${G[@]}" objects)" = 0
check "re-add $DEV without FORMAT" "${G[@]}" add $ID $DEV
check "listen again" "${G[@]}" listen 127.0.0.1 "$PORT"
check "data intact after reload" read_is 9 1 0 1048576 "$tmp/rand1m"
check "other objects intact" eval \
	'wire read --volume 8 --object 5 --length 4096 --out "$tmp/r" && cmp "$tmp/r" <(pattern 5 4096)'

echo "# corruption"
check "remove device for surgery" "${G[@]}" remove $ID
dd if=$DEV of="$tmp/sb" bs=4096 count=1 status=none
dd if=$DEV of="$tmp/tbl" bs=4096 count=1 skip=1 status=none
printf '\x99' | dd of=$DEV bs=1 seek=40 conv=notrunc status=none
dmesg -C
refused "corrupt superblock refused" "${G[@]}" add $ID $DEV
check "dmesg names the superblock CRC" dmesg_has "superblock CRC mismatch"
# A well-formed superblock of a format version this build does not read.
python3 - "$tmp/sb" "$tmp/sb2" <<'PY'
import struct, sys
def crc32c(b):
    c = 0xffffffff
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ (0x82f63b78 if c & 1 else 0)
    return c ^ 0xffffffff
sb = bytearray(open(sys.argv[1], "rb").read())
struct.pack_into("<I", sb, 8, struct.unpack_from("<I", sb, 8)[0] + 1)
struct.pack_into("<I", sb, 100, crc32c(sb[:100]))
open(sys.argv[2], "wb").write(sb)
PY
dd if="$tmp/sb2" of=$DEV bs=4096 count=1 conv=notrunc status=none
refused "superblock of a newer format version refused" "${G[@]}" add $ID $DEV
store_version=$(sed -n 's/^#define CVM_STORE_VERSION[[:space:]][[:space:]]*//p' kernel/target/store.c)
check "dmesg names both versions" dmesg_has \
	"on-disk format version $((store_version + 1)), this build reads $store_version"
check "the refused device was not written" cmp -n 4096 $DEV "$tmp/sb2"
dd if="$tmp/sb" of=$DEV bs=4096 count=1 conv=notrunc status=none
printf '\x42' | dd of=$DEV bs=1 seek=$((4096 + 33)) conv=notrunc status=none
refused "corrupt object table refused" "${G[@]}" add $ID $DEV
check "dmesg names the table sector CRC" dmesg_has "metadata sector CRC mismatch"
dd if="$tmp/tbl" of=$DEV bs=4096 count=1 seek=1 conv=notrunc status=none
check "restored metadata loads" "${G[@]}" add $ID $DEV
check "data intact after restore" read_is 9 1 0 1048576 "$tmp/rand1m"
check "remove device" "${G[@]}" remove $ID
check "FORMAT+FORCE over a formatted device" "${G[@]}" add $ID $DEV format force
check "reformatted device reads zeroes" read_is 9 1 0 65536 "$tmp/z64k"
head -c 4096 /dev/urandom | dd of=/dev/ram1 bs=4096 conv=notrunc status=none
refused "garbage device refused without FORMAT" "${G[@]}" add 2 /dev/ram1
check "garbage device formats with FORMAT" "${G[@]}" add 2 /dev/ram1 format
# Format 2 (before object versions, intent bits and per-sector seals)
# is refused with both versions named: its table has another size.
check "remove device 2" "${G[@]}" remove 2
dd if=/dev/ram1 of="$tmp/sb" bs=4096 count=1 status=none
python3 - "$tmp/sb" "$tmp/sb2" <<'PY'
import struct, sys
def crc32c(b):
    c = 0xffffffff
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ (0x82f63b78 if c & 1 else 0)
    return c ^ 0xffffffff
sb = bytearray(open(sys.argv[1], "rb").read())
struct.pack_into("<I", sb, 8, 2)
struct.pack_into("<I", sb, 100, crc32c(sb[:100]))
open(sys.argv[2], "wb").write(sb)
PY
dd if="$tmp/sb2" of=/dev/ram1 bs=4096 count=1 conv=notrunc status=none
dmesg -C
refused "a format-2 device refused" "${G[@]}" add 2 /dev/ram1
check "dmesg names both versions" dmesg_has \
	"on-disk format version 2, this build reads $store_version"
dd if="$tmp/sb" of=/dev/ram1 bs=4096 count=1 conv=notrunc status=none
check "device 2 back" "${G[@]}" add 2 /dev/ram1

echo "# torn metadata writes (a power cut inside a 4 KiB table or bitmap write)"
# The device's sector is the unit of atomicity: a torn 4 KiB write leaves
# some sectors old and some new.  Object 9/2's allocation writes the
# bitmap block, then the table block; each is replayed here torn at every
# sector boundary, both ways, over the state before it.  The device must
# load every time (old code: one CRC per block, refused), 9/1 intact, 9/2
# whole or absent (a bit without an entry is reclaimed).
wire2() { "$W" "$EP" "$1" --device 2 "${@:2}"; }
sbfield() { od -An -tu8 -j"$1" -N8 /dev/ram1 | tr -d ' '; }
tstart=$(sbfield 56) bstart=$(sbfield 72)
head -c 65536 /dev/urandom >"$tmp/r64k"
check "write 9/1 and 9/2's neighbour on device 2" eval \
	"wire2 write --volume 9 --object 1 --file '$tmp/rand1m' --fua"
check "remove device 2" "${G[@]}" remove 2
dd if=/dev/ram1 of="$tmp/t_old" bs=4096 count=1 skip="$tstart" status=none
dd if=/dev/ram1 of="$tmp/b_old" bs=4096 count=1 skip="$bstart" status=none
check "add device 2" "${G[@]}" add 2 /dev/ram1
check "write 9/2 (allocates: bitmap, then table)" \
	wire2 write --volume 9 --object 2 --file "$tmp/r64k" --fua
check "remove device 2" "${G[@]}" remove 2
dd if=/dev/ram1 of="$tmp/t_new" bs=4096 count=1 skip="$tstart" status=none
dd if=/dev/ram1 of="$tmp/b_new" bs=4096 count=1 skip="$bstart" status=none
# torn OLD NEW K FIRST: K sectors of FIRST (old|new), the rest of the other.
torn() {
	if [[ $4 == new ]]; then
		{ head -c $(($3 * 512)) "$2"; tail -c +$(($3 * 512 + 1)) "$1"; }
	else
		{ head -c $(($3 * 512)) "$1"; tail -c +$(($3 * 512 + 1)) "$2"; }
	fi
}
# replay WHAT K FIRST: the block WHAT (table|bitmap) torn; loads, checks.
replay() {
	local what=$1 k=$2 first=$3 r
	if [[ $what == table ]]; then
		dd if="$tmp/b_new" of=/dev/ram1 bs=4096 seek="$bstart" conv=notrunc status=none
		torn "$tmp/t_old" "$tmp/t_new" "$k" "$first" |
			dd of=/dev/ram1 bs=4096 seek="$tstart" conv=notrunc status=none
	else
		dd if="$tmp/t_old" of=/dev/ram1 bs=4096 seek="$tstart" conv=notrunc status=none
		torn "$tmp/b_old" "$tmp/b_new" "$k" "$first" |
			dd of=/dev/ram1 bs=4096 seek="$bstart" conv=notrunc status=none
	fi
	"${G[@]}" add 2 /dev/ram1 || return
	r=0
	wire2 read --volume 9 --object 1 --length 1048576 --out "$tmp/r" &&
		cmp -s "$tmp/r" "$tmp/rand1m" || { echo "9/1 damaged"; r=1; }
	wire2 read --volume 9 --object 2 --length 65536 --out "$tmp/r" || r=1
	if ! cmp -s "$tmp/r" "$tmp/r64k" && ! cmp -s "$tmp/r" <(head -c 65536 /dev/zero); then
		echo "9/2 neither whole nor absent"
		r=1
	fi
	"${G[@]}" remove 2 || r=1
	return $r
}
for k in 1 4 7; do
	for first in old new; do
		check "table write torn after $k sectors ($first first): loads, consistent" \
			replay table $k $first
	done
done
check "bitmap write torn after 4 sectors: loads, consistent" replay bitmap 4 new
dd if="$tmp/t_new" of=/dev/ram1 bs=4096 seek="$tstart" conv=notrunc status=none
dd if="$tmp/b_new" of=/dev/ram1 bs=4096 seek="$bstart" conv=notrunc status=none
check "device 2 back, both objects" eval \
	"${G[*]} add 2 /dev/ram1 && wire2 read --volume 9 --object 2 --length 65536 --out '$tmp/r' && cmp '$tmp/r' '$tmp/r64k'"

echo "# host authentication (cvm_wire.h, \"Authentication\")"
# Host 1 (the raw tests' host) may touch every volume; host 2 is let in
# with its own secret but given no volume.
S1=0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20
S2=f0e1d2c3b4a5968778695a4b3c2d1e0f00112233445566778899aabbccddeeff
check "hosts 1 (every volume) and 2 (none) on device $ID" \
	"${G[@]}" hosts $ID "1:$S1:0:all" "2:$S2:0:some"
check "cvm-wire auth: no AUTH, wrong key, unknown key id, replayed AUTH, reflected proof, foreign volume: all refused" \
	"$W" "$EP" auth --device $ID --volume 7 --object 1 --foreign-host 2 \
	--foreign-secret "$S2"
check "the refusals are logged" eval \
	"dmesg | grep -q 'AUTH refused: wrong proof for host 1' &&
	 dmesg | grep -q 'HELLO refused: no key for host 1 on device $ID (key id 1000)' &&
	 dmesg | grep -q 'volume 7: refused host 2, which was not given the volume'"
check "a fence names host 2: it may read volume 7, host 1 still may" eval \
	"${G[*]} fence 7 1 $ID 2 &&
	 '$W' $EP read --device $ID --volume 7 --object 1 --length 4096 --host-id 2 --secret $S2 --out /dev/null &&
	 '$W' $EP read --device $ID --volume 7 --object 1 --length 4096 --out /dev/null"
check "host 2, its keys withdrawn, is refused" eval \
	"${G[*]} hosts $ID 1:$S1:0:all && ! '$W' $EP read --device $ID --volume 7 --object 1 --length 4096 --host-id 2 --secret $S2 --out /dev/null"
check "target still serves host 1 after the auth cases" read_is 7 1 0 4096 "$tmp/z4k"

echo "# malformed wire messages"
check "cvm-wire fuzz" "$W" "$EP" fuzz --device $ID --volume 7 --object 1
check "target still serves after fuzz" read_is 7 1 0 4096 "$tmp/z4k"
check "a HELLO of the previous wire version is logged with both versions" \
	dmesg_has "HELLO version $(($(sed -n 's/^#define CVM_WIRE_VERSION[[:space:]]*//p' include/uapi/linux/cvm_wire.h) - 1)), we speak "

echo "# malformed netlink"
check "malformed requests refused" "${G[@]}" malformed

echo "# teardown"
check "unlisten" "${G[@]}" unlisten 127.0.0.1 "$PORT"
refused "no connection after unlisten" wire flush
check "remove devices" eval '"${G[@]}" remove $ID && "${G[@]}" remove 2'

check_summary
