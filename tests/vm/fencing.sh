#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 40 s per transport)
# transports: tcp rdma
#
# Fencing: once a volume has a newer attachment, nothing of the older one
# lands, not even requests already in flight, and a target that restarts
# still knows.  In one VM (cvm_three_targets), a replicated(3) volume
# attached with attach epoch 1 as /dev/cvm0 keeps writing tagged blocks
# (block b, sequence number) while cvmd's part is played through the
# kernel interface: TARGET_VOLUME_FENCE raises the volume's epoch to 2 on
# every device (its time is printed: the goal is under 100 ms on an idle
# volume), and the new owner (cvm-wire with attach epoch 2, as a second
# host's requests would carry) writes.  Then:
#
#   - every write the old attachment issued after the fence returned
#     failed, and no block on any replica carries one (the tags);
#   - every block on every replica is at least as new as the last write
#     to it the old attachment saw acknowledged;
#   - the old attachment's writes to the new owner's block fail and the
#     new owner's data stays;
#   - device 1's target restarts (device removed and added again): it
#     still refuses attach epoch 1 (cvm-wire), takes 2, lets epoch 0 (no
#     attachment: tools) read but not write, and refuses to lower the
#     epoch.
#
# Runs INSIDE the test VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/fencing.sh
set -u

top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
. "$top/tests/lib/check.sh"
require_vm
. "$top/tests/lib/cvm_vm.sh"

OBJ=$((1 << 20))
VOL_SIZE=$((16 << 20))
BLOCKS=64			# tagged blocks at the start of object 0
NEW_BLOCK=200			# the new owner's block (object 0)
ig=(python3 "$top/tests/vm/lib/initiator_genl.py")
tg=(python3 "$top/tests/vm/lib/target_genl.py")
wire=$top/build/userspace/tools/cvm-wire
tmp=$(mktemp -d)

# The old attachment's writer: block seq % BLOCKS gets "seq" tagged, one
# direct write at a time; logs "issue SEQ T", then "ok SEQ T" or "err SEQ
# T" (T: CLOCK_BOOTTIME, as /proc/uptime); stops after 20 errors in a row.
cat >"$tmp/writer.py" <<'PY'
import mmap, os, struct, sys, time
dev, blocks = sys.argv[1], int(sys.argv[2])
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
now = lambda: time.clock_gettime(time.CLOCK_BOOTTIME)
seq, errs = 0, 0
while errs < 20:
    seq += 1
    b = seq % blocks
    buf.seek(0)
    buf.write(struct.pack("<8sQQ", b"CVMFENCE", b, seq).ljust(4096, b"\0"))
    print("issue %d %.6f" % (seq, now()), flush=True)
    try:
        os.pwrite(fd, buf, b * 4096)
        print("ok %d %.6f" % (seq, now()), flush=True)
        errs = 0
    except OSError:
        print("err %d %.6f" % (seq, now()), flush=True)
        errs += 1
PY

# Every replica's tagged blocks against the writer's log: none issued after
# the fence returned (FENCE_T), none older than the last acknowledged.
cat >"$tmp/verify.py" <<'PY'
import struct, sys
log, fence_t, blocks = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
issued_at, last_ok = {}, {}
for line in open(log):
    what, seq, t = line.split()
    seq, t = int(seq), float(t)
    if what == "issue":
        issued_at[seq] = t
    elif what == "ok":
        last_ok[seq % blocks] = max(last_ok.get(seq % blocks, 0), seq)
bad = 0
for f in sys.argv[4:]:
    data = open(f, "rb").read()
    for b in range(blocks):
        magic, blk, seq = struct.unpack_from("<8sQQ", data, b * 4096)
        if magic != b"CVMFENCE":
            seq = 0
        elif blk != b:
            print("%s block %d: holds block %d" % (f, b, blk)); bad += 1
            continue
        if seq < last_ok.get(b, 0):
            print("%s block %d: seq %d, older than acknowledged %d" %
                  (f, b, seq, last_ok[b])); bad += 1
        if seq and issued_at.get(seq, 0) > fence_t:
            print("%s block %d: seq %d was issued after the fence" %
                  (f, b, seq)); bad += 1
print("%d replicas x %d blocks checked, %d bad, %d writes acknowledged" %
      (len(sys.argv) - 4, blocks, bad, len(last_ok)))
sys.exit(1 if bad else 0)
PY

uptime_now() { awk '{ print $1 }' /proc/uptime; }
acked() { grep -c '^ok ' "$tmp/writer.log"; }
wait_acked() {
	local i
	for ((i = 0; i < 300; i++)); do
		(($(acked) >= $1)) && return 0
		sleep 0.1
	done
	echo "the writer had $(acked) writes acknowledged, wanted $1"
	return 1
}

# wire DEV EPOCH VERB ARGS...: cvm-wire to device DEV's target as
# attachment EPOCH, volume 3, object 0.
wire() {
	local d=$1 e=$2 verb=$3
	shift 3
	"$wire" "127.0.0.1:$(cvm_port "$d")" "$verb" --device "$d" --volume 3 \
		--object 0 --attach-epoch "$e" "$@"
}
refused_stale() {
	local out
	out=$("$@" 2>&1) && { echo "succeeded: $out"; return 1; }
	grep -q STALE_ATTACH <<<"$out" || { echo "refused, but: $out"; return 1; }
}

echo "# set up: 3 targets, replicated(3), attach epoch 1 -> cvm0"
cvm_three_targets
# shellcheck disable=SC2046 # cvm_map_paths: several arguments
check "map epoch 1: 3 hosts x 1 device" "${ig[@]}" map-set 1 $(cvm_map_paths)
check "3 connections" cvm_connected 3
check "attach volume 3, epoch 1 -> cvm0" eval \
	"[[ \$(${ig[*]} attach 3 3 $VOL_SIZE --object-size $OBJ --epoch 1 --name r3) == 0 ]]"
check "fence: epoch 1 on every device" "${tg[@]}" fence 3 1

echo "# the old attachment writes while the volume gets attach epoch 2"
python3 "$tmp/writer.py" /dev/cvm0 $BLOCKS >"$tmp/writer.log" 2>&1 &
writer=$!
check "the writer is under way (100 writes acknowledged)" wait_acked 100
t0=$(date +%s%N)
check "fence: epoch 2 on every device" "${tg[@]}" fence 3 2
t1=$(date +%s%N)
fence_t=$(uptime_now)
echo "fence under load: $(((t1 - t0) / 1000000)) ms with the netlink client's start;" \
	"in the kernel: $(dmesg | sed -n 's/.*volume 3: attach epoch 2 on 3 device(s) in //p' | tail -n 1)"
check "the old attachment's writes fail from now on (writer stops)" \
	eval "wait $writer; ! kill -0 $writer 2>/dev/null"
grep -c '^err ' "$tmp/writer.log" | sed 's/^/writes refused: /'
check "nothing succeeded after the first refusal" eval \
	"! awk '/^err/ { e = 1 } /^ok/ && e { print; bad = 1 } END { exit bad }' '$tmp/writer.log' | grep ."
check "the kernel log names the refusal" eval \
	"dmesg | grep -q 'refused a request of attach epoch 1, the volume.s is 2'"

echo "# the new owner writes; the old attachment tries again"
head -c 4096 /dev/urandom >"$tmp/new"
for d in 0 1 2; do
	check "new owner (epoch 2) writes block $NEW_BLOCK on device $d" \
		wire $d 2 write --offset $((NEW_BLOCK * 4096)) --length 4096 \
		--file "$tmp/new"
done
check "old attachment: write to the new owner's block fails" eval \
	"! dd if=/dev/zero of=/dev/cvm0 bs=4k count=1 seek=$NEW_BLOCK oflag=direct status=none"
check "old attachment: read fails too" eval \
	"! dd if=/dev/cvm0 of=/dev/null bs=4k count=1 iflag=direct status=none"
for d in 0 1 2; do
	wire $d 0 read --offset 0 --length $((BLOCKS * 4096)) \
		--out "$tmp/tags$d" >/dev/null 2>&1
	check "device $d: the new owner's block is intact" eval \
		"wire $d 0 read --offset $((NEW_BLOCK * 4096)) --length 4096 --out '$tmp/nb$d' >/dev/null && cmp '$tmp/new' '$tmp/nb$d'"
done
check "tags: no write issued after the fence landed, none acknowledged lost" \
	python3 "$tmp/verify.py" "$tmp/writer.log" "$fence_t" $BLOCKS \
	"$tmp/tags0" "$tmp/tags1" "$tmp/tags2"

echo "# device 1's target restarts: the epoch is on its disk"
check "device 1 removed" "${tg[@]}" remove 1
check "device 1 added again (loaded from disk)" "${tg[@]}" add 1 "$(cvm_disk 1)"
check "device 1 refuses attach epoch 1" refused_stale \
	wire 1 1 write --offset 0 --length 4096 --pattern 0x55
check "device 1 takes attach epoch 2" \
	wire 1 2 write --offset $((NEW_BLOCK * 4096)) --length 4096 --file "$tmp/new"
check "device 1: epoch 0 (no attachment) may read" \
	wire 1 0 read --offset 0 --length 4096 --out "$tmp/r"
check "device 1: epoch 0 may not write" refused_stale \
	wire 1 0 write --offset 0 --length 4096 --pattern 0x55
check "the old attachment's write still fails" eval \
	"! dd if=/dev/zero of=/dev/cvm0 bs=4k count=1 seek=1 oflag=direct status=none"
check "lowering the epoch is refused (ESTALE)" refuses ESTALE "${tg[@]}" fence 3 1
check "the same epoch again is fine" "${tg[@]}" fence 3 2
check "device 1's tags unchanged by the restart" eval \
	"wire 1 0 read --offset 0 --length $((BLOCKS * 4096)) --out '$tmp/t1b' >/dev/null && cmp '$tmp/tags1' '$tmp/t1b'"

echo "# fencing an idle volume"
check "detach the old attachment" "${ig[@]}" detach 3 --force
for e in 3 4 5; do
	check "fence: epoch $e on every device" "${tg[@]}" fence 3 $e
done
echo "fence of an idle volume on 3 devices, in the kernel:" \
	$(dmesg | sed -n 's/.*volume 3: attach epoch [345] on 3 device(s) in //p')

echo "# tear down"
check "rmmod cvm" rmmod cvm
cvm_three_targets_down
rm -rf "$tmp"
cvm_load cvm >/dev/null 2>&1

check_summary
