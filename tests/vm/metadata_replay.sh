#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 45 s: 60 cuts in 15 s)
#
# Crash-safe target metadata, checked at every point of a real write
# sequence.  cvm_target's store sits on dm-log-writes (a module of Debian's
# kernel), which logs each write only once a FLUSH made it durable (FUA
# writes at once): the log cut after any entry is what the disk held if
# power went at that moment, volatile cache lost.  A workload runs every
# kind of metadata change through cvm-wire (format, allocation with and
# without FUA, BUMP, CLEAN, REMOVE, fence, reallocation of a freed extent)
# with a mark after each acknowledged step, then the log is replayed onto a
# second disk (tests/vm/lib/log_writes.py, as xfstests' replay-log) and cut
# after every entry (tests/vm/lib/store_cuts.py).  At each cut the device must
# load, and every object must read, and STAT, as it did at the last mark
# or as the step in flight left it: nothing flushed is lost, no torn state.
# Past the fence's mark, a write of the older attachment must be refused.
# LIST is paged one entry at a time over the result.
# Runs INSIDE the VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/metadata_replay.sh
#
# Prints "N passed, N failed"; exits 0 only if every check passed.
set -u
top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
. tests/lib/check.sh
. tests/lib/cvm_vm.sh
require_vm

G=(python3 "$top/tests/vm/lib/target_genl.py")
LW=(python3 "$top/tests/vm/lib/log_writes.py")
W=$top/build/userspace/tools/cvm-wire
PORT=7431
EP=127.0.0.1:$PORT
VOL=5
NOBJ=4
tmp=$(mktemp -d)

cleanup() {
	"${G[@]}" unlisten 127.0.0.1 $PORT >/dev/null 2>&1
	"${G[@]}" remove 1 >/dev/null 2>&1
	dmsetup remove cvmlw >/dev/null 2>&1
	rmmod brd 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

wire() { "$W" "$EP" "$1" --device 1 --volume $VOL "${@:2}"; }
mark() { dmsetup message cvmlw 0 mark "$1"; }
# state FILE: what objects 0..NOBJ-1 read (CRC of the first 64 KiB) and
# STAT (allocated, intent, version; "absent"): a line per object.
state() {
	wire sums --object 0 --count $NOBJ --length 65536 >"$1.sums" &&
		wire stats --object 0 --count $NOBJ >"$1.stat"
}
# step NAME CMD...: run one acknowledged step, record the state, mark it
# "sK" (K: the step's number, a line of $tmp/names; check runs it in a
# subshell).
step() {
	local name=$1 k
	shift
	"$@" || { echo "step $name failed"; return 1; }
	k=$(wc -l <"$tmp/names")
	state "$tmp/s$k" && mark "s$k" && echo "$name" >>"$tmp/names"
}
stale_write_refused() {
	local out
	out=$(wire write --object 3 --length 4096 --pattern 1 --attach-epoch 6 2>&1)
	[[ $? -ne 0 && $out == *STALE_ATTACH* ]] || { echo "$out"; return 1; }
}

echo "# set up: brd data, log and replay disks; dm-log-writes; the target"
rmmod brd 2>/dev/null
check "brd: 3 x 96 MiB" modprobe brd rd_nr=3 rd_size=$((96 << 10))
check "modprobe dm-log-writes" modprobe dm-log-writes
lw_create() {
	dmsetup create cvmlw \
		--table "0 $(blockdev --getsz /dev/ram0) log-writes /dev/ram0 /dev/ram1" ||
		return
	udevadm settle 2>/dev/null
	[[ -b /dev/mapper/cvmlw ]] || dmsetup mknodes cvmlw
}
check "dm-log-writes over /dev/ram0, log on /dev/ram1" lw_create
check "cvm_target loaded" cvm_load cvm_target
check "listen $EP" "${G[@]}" listen 127.0.0.1 $PORT
head -c 65536 /dev/urandom >"$tmp/a"
head -c 65536 /dev/urandom >"$tmp/b"
head -c 65536 /dev/urandom >"$tmp/c"
head -c 65536 /dev/urandom >"$tmp/d"

echo "# the workload: every kind of metadata change, a mark after each"
: >"$tmp/names"
check "format the store on the logged disk" \
	step format "${G[@]}" add 1 /dev/mapper/cvmlw format
check "object 0: first write with FUA (allocation)" \
	step "write 0 fua" wire write --object 0 --file "$tmp/a" --fua
check "object 1: first write, then FLUSH" \
	step "write 1 + flush" eval "wire write --object 1 --file '$tmp/b' && wire flush"
check "object 2: first write with FUA" \
	step "write 2 fua" wire write --object 2 --file "$tmp/c" --fua
check "object 1: BUMP (version, intent)" step "bump 1" wire bump --object 1
check "object 1: CLEAN" step "clean 1" wire clean --object 1
check "object 0: REMOVE (frees its extent)" step "remove 0" wire remove --object 0
check "fence volume $VOL at attach epoch 7" \
	step "fence 7" "${G[@]}" fence $VOL 7 1
# Fresh bytes: the extent still holds object 0's, which a lost zeroing would
# show.
check "object 3: first write with FUA (reuses the freed extent)" \
	step "write 3 fua" wire write --object 3 --file "$tmp/d" --attach-epoch 7 --fua
check "object 2: overwrite, then FLUSH" \
	step "overwrite 2 + flush" eval "wire write --object 2 --file '$tmp/b' --attach-epoch 7 && wire flush --attach-epoch 7"
check "object 0: write again with FUA (allocation)" \
	step "write 0 again" wire write --object 0 --file "$tmp/c" --attach-epoch 7 --fua
check "remove the device; remove dm-log-writes" \
	eval "${G[*]} remove 1 && dmsetup remove cvmlw"
mapfile -t names <"$tmp/names"
nsteps=${#names[@]}
"${LW[@]}" entries /dev/ram1 >"$tmp/log" || true
check "the log holds the marks of all $nsteps steps" \
	eval "[[ \$(grep -c ' s[0-9]*\$' '$tmp/log') == $nsteps ]]"
echo "log: $(wc -l <"$tmp/log") entries, $nsteps steps"
[[ -n ${CVM_VERBOSE:-} ]] && cat "$tmp/log"

# The cuts: after every entry of the log from the format's mark on (an
# unformatted disk is refused, as it should be).
sb64() { od -An -tu8 -j"$1" -N8 "$2" | tr -d ' '; }
data_start=$(sb64 88 /dev/ram0)
first=$(awk '$5 == "s0" { print $1 + 1 }' "$tmp/log")
cuts=$(awk -v f="${first:-1}" '$1 >= f - 1 { print $1 + 1 }' "$tmp/log")
check "the metadata area ($((data_start * 4)) KiB) was found in the superblock" \
	eval "((data_start > 0))"

fence_step=$(grep -n '^fence 7$' "$tmp/names" | cut -d: -f1)
fence_step=$((fence_step - 1))
dd if=/dev/zero of=/dev/ram2 bs=1M count=96 status=none
ncuts=$(wc -w <<<"$cuts")
t0=$SECONDS
# shellcheck disable=SC2086 # $cuts: one argument per cut
python3 tests/vm/lib/store_cuts.py /dev/ram1 /dev/ram2 "$tmp" "$data_start" \
	"$W" "$EP" $VOL $NOBJ "$fence_step" $cuts >"$tmp/cuts.out" 2>&1
cuts_rc=$?
cat "$tmp/cuts.out"
echo "($((SECONDS - t0)) s)"
check "every one of $ncuts cuts loads, with every flushed step intact" \
	eval "((cuts_rc == 0 && ncuts > 10))"
last=$(tail -n 1 <<<"$cuts")
check "the whole log replayed: the last step's state" eval \
	"${LW[*]} replay /dev/ram1 /dev/ram2 ${last:-0} $(wc -l <"$tmp/log") &&
	 ${G[*]} add 1 /dev/ram2 && state '$tmp/end' && cmp '$tmp/end.sums' '$tmp/s$((nsteps - 1)).sums' &&
	 cmp '$tmp/end.stat' '$tmp/s$((nsteps - 1)).stat' && ${G[*]} remove 1"

# LIST keeps the smallest keys of a walk over the whole index in a heap of
# the reply's size: paged one entry at a time it must give the same shards
# in the same ascending order as one page.
list_pages_agree() {
	"${G[@]}" add 1 /dev/ram2 || return
	wire list --count 1 >"$tmp/list1" && wire list >"$tmp/list" &&
		wire list --count 1 --fua >"$tmp/list1i" || return
	"${G[@]}" remove 1 || return
	cat "$tmp/list"
	cmp "$tmp/list1" "$tmp/list" && sort -n -c "$tmp/list" &&
		[[ $(wc -l <"$tmp/list") == $(grep -vc absent "$tmp/end.stat") ]] &&
		[[ $(wc -l <"$tmp/list1i") == $(grep -c "intent 1" "$tmp/end.stat") ]]
}
check "LIST one entry a page = one page, ascending; with the intent filter too" \
	list_pages_agree
check "unlisten" "${G[@]}" unlisten 127.0.0.1 $PORT
check_summary
