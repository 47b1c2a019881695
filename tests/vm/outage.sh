#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 55 s per transport: a 20 s outage; the full tier's is 60 s)
# transports: tcp rdma(full)
#
# A network blip must not fail I/O.  In one VM (cvm_three_targets), ext4
# on a replicated(3) volume under two workloads: fio (buffered random
# read/write with fsync) and a writer of checksummed files (each fsynced,
# then listed in a manifest).  Every target then stops answering at once
# (cvm_block: over tcp nft drops their packets, over rdma their disks stop
# completing I/O) for CVM_OUTAGE_S seconds (default 20, 60 in the full
# tier), with cvm.request_timeout at 3 s so the connections are dropped and
# every path is down for most of it.  cvm.ko must hold the I/O and retry it
# as paths return, within cvm.loss_timeout (60 s here, below the guest's
# 120 s hung-task check):
#
#   - fio and the file writer see no error, the file system no abort;
#   - writes complete again within a few seconds of the targets' return;
#   - after an unmount and mount every file of the manifest verifies;
#   - nobody hung (run-in-vm.sh fails "INFO: task ... blocked" lines).
#
# Then the loss timeout itself: with cvm.loss_timeout at 5 s and every
# target silent, a direct write fails after about 5 s, not at once and not
# never.  Runs INSIDE the test VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/outage.sh
set -u

top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
. "$top/tests/lib/check.sh"
require_vm
. "$top/tests/lib/cvm_vm.sh"

OUTAGE=${CVM_OUTAGE_S:-$([[ ${CVM_TIER:-check} == full ]] && echo 60 || echo 20)}
ig=(python3 "$top/tests/vm/lib/initiator_genl.py")
P=/sys/module/cvm/parameters
tmp=$(mktemp -d)
mnt=$tmp/mnt
mkdir -p "$mnt"

# Files of 64 KiB, each fsynced and then listed with its CRC; runs until
# $tmp/stop exists; exits 1 at the first error.
cat >"$tmp/files.py" <<'PY'
import os, sys, zlib
d, manifest, stop = sys.argv[1], sys.argv[2], sys.argv[3]
with open(manifest, "w") as m:
    i = 0
    while not os.path.exists(stop):
        data = os.urandom(65536)
        p = os.path.join(d, "f%06d" % i)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
        except OSError as e:
            print("file %d: %s" % (i, e))
            sys.exit(1)
        m.write("%s %08x\n" % (p, zlib.crc32(data)))
        m.flush()
        i += 1
print("%d files written" % i)
PY

verify_files() {
	python3 - "$tmp/manifest" <<'PY'
import sys, zlib
bad = n = 0
for line in open(sys.argv[1]):
    p, crc = line.split()
    n += 1
    if "%08x" % zlib.crc32(open(p, "rb").read()) != crc:
        print("%s: content differs" % p)
        bad += 1
print("%d files verified, %d bad" % (n, bad))
sys.exit(1 if bad or not n else 0)
PY
}

writes_done() { awk '{ print $5 }' /sys/block/cvm0/stat; }

echo "# set up: 3 targets, replicated(3), ext4"
cvm_three_targets
# shellcheck disable=SC2046 # cvm_map_paths: several arguments
check "map epoch 1: 3 hosts x 1 device" "${ig[@]}" map-set 1 $(cvm_map_paths)
check "3 connections" cvm_connected 3
check "attach replicated(3) -> cvm0" eval \
	"[[ \$(${ig[*]} attach 3 3 $((256 << 20)) --name r3) == 0 ]]"
saved_rt=$(cat $P/request_timeout) saved_lt=$(cat $P/loss_timeout)
check "cvm.request_timeout 3 s, cvm.loss_timeout 60 s" \
	eval "echo 3 >$P/request_timeout && echo 60 >$P/loss_timeout"
check "mkfs.ext4" mkfs.ext4 -q -F /dev/cvm0
check "mount" mount /dev/cvm0 "$mnt"
mkdir -p "$mnt/fio" "$mnt/files"

echo "# every target silent for $OUTAGE s under fio and the file writer"
fio --name=outage --directory="$mnt/fio" --rw=randrw --bs=4k --size=4M \
	--numjobs=2 --ioengine=psync --fsync=16 --rate_iops=40 \
	--time_based --runtime=$((OUTAGE + 15)) --output="$tmp/fio.out" &
fio_pid=$!
python3 "$tmp/files.py" "$mnt/files" "$tmp/manifest" "$tmp/stop" \
	>"$tmp/files.out" 2>&1 &
files_pid=$!
sleep 5
echo "writes before the outage: $(writes_done)"
for d in 0 1 2; do
	check "silence device $d: $(cvm_block_how)" cvm_block $d
done
t0=$SECONDS
# Poll, do not sleep blind: a workload that fails early ends the wait.
while ((SECONDS - t0 < OUTAGE)) && kill -0 $fio_pid 2>/dev/null &&
	kill -0 $files_pid 2>/dev/null; do
	sleep 1
done
check "fio and the file writer still running after $OUTAGE s" \
	eval "kill -0 $fio_pid && kill -0 $files_pid"
check "the kernel says it holds I/O" \
	eval "dmesg | grep -q 'no replica reachable, holding I/O'"
w0=$(writes_done)
check "every device answers again" cvm_unblock
t1=$SECONDS
resumed() { (($(writes_done) > w0)); }
wait_resumed() {
	local i
	for ((i = 0; i < 300; i++)); do
		resumed && return 0
		sleep 0.1
	done
	return 1
}
check "writes complete again within 30 s of the return" wait_resumed
echo "writes resumed $((SECONDS - t1)) s after the targets' return"
touch "$tmp/stop"
wait $files_pid
rc=$?
check "the file writer: no error" eval "((rc == 0))"
cat "$tmp/files.out"
wait $fio_pid
rc=$?
check "fio: no error" eval "((rc == 0))"
grep -E 'err=|WRITE:' "$tmp/fio.out" | head -n 3
check "no I/O error in the kernel log" eval \
	"! dmesg | grep -E 'I/O error|EXT4-fs error|Aborting journal|lost async page'"
check "umount" umount "$mnt"
check "mount again" mount /dev/cvm0 "$mnt"
check "every file of the manifest verifies" verify_files
check "umount" umount "$mnt"
check "e2fsck: clean" e2fsck -fn /dev/cvm0

echo "# the loss timeout: every target silent, cvm.loss_timeout 5 s"
check "cvm.loss_timeout 5 s" eval "echo 5 >$P/loss_timeout"
for d in 0 1 2; do
	check "silence device $d" cvm_block $d
done
t0=$SECONDS
check "a direct write fails" eval \
	"! dd if=/dev/zero of=/dev/cvm0 bs=4k count=1 seek=7 oflag=direct status=none"
took=$((SECONDS - t0))
echo "the write failed after $took s"
check "not before the loss timeout (5 s), not long after (request timeout 3 s + 5 s + slack)" \
	eval "((took >= 5 && took <= 30))"
check "the kernel log names the timeout" \
	eval "dmesg | grep -q 'gave up after 5 s'"
check "every device answers again" cvm_unblock
check "cvm.request_timeout and loss_timeout restored" \
	eval "echo $saved_rt >$P/request_timeout && echo $saved_lt >$P/loss_timeout"
check "a direct write after their return succeeds (held until reconnected)" \
	dd if=/dev/zero of=/dev/cvm0 bs=4k count=1 seek=7 oflag=direct status=none

echo "# tear down"
check "detach 3" "${ig[@]}" detach 3
check "rmmod cvm" rmmod cvm
cvm_three_targets_down
rm -rf "$tmp"
cvm_load cvm >/dev/null 2>&1

check_summary
