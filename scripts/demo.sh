#!/bin/bash
# `make demo`, the part that runs INSIDE the test VM (the Makefile starts it
# with scripts/vm-run.sh; cvm.ko and cvm_target.ko are already loaded).
#
# Shows what CVM does today: both kernel modules answering over generic
# netlink, cvmd on its embedded RocksDB, a cluster of three storage hosts on
# real block devices described with cvmadm, a replicated(3) pool whose
# placement kernel/common computes, the three targets started and a volume
# attached through cvmadm, and fio on /dev/cvm0 next to fio on the raw
# backing RAM disk.  All three "hosts" are this VM (127.0.0.1:7001-7003), so
# every replica write crosses loopback TCP: the numbers show the cost of the
# data path, not of a network.
set -euo pipefail
top=${CVM_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$top"
if [[ -z "${CVM_IN_VM:-}" ]]; then
	echo "demo.sh runs inside the test VM: use 'make demo'" >&2
	exit 2
fi
PATH=$top/build/userspace/cvmd:$top/build/userspace/cvmadm:$PATH
export CVM_SOCKET=/run/cvm/cvmd.sock
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "kernel modules (Debian $(uname -r), loaded by the test VM)"
run lsmod | grep -E '^(cvm|cvm_target) '

step "storage: three brd RAM disks stand in for three hosts' NVMe devices"
modprobe brd rd_nr=3 rd_size=262144
run lsblk -d -o NAME,SIZE /dev/ram0 /dev/ram1 /dev/ram2

step "cvmd: metadata daemon on embedded RocksDB"
run cvmd --db /var/lib/cvm/db --socket "$CVM_SOCKET" --host storage1
run cvmadm status

step "describe the cluster"
for i in 1 2 3; do
	run cvmadm host add "storage$i" --address "127.0.0.1:700$i" --rack "rack$i"
	run cvmadm device add "storage$i" "/dev/ram$((i - 1))" \
		--capacity "$(blockdev --getsize64 "/dev/ram$((i - 1))")"
done
run cvmadm pool create rep3 --policy replicated:3 --pg-num 256
run cvmadm volume create vol0 --pool rep3 --size 1G

step "what cvmd now holds"
run cvmadm host list
run cvmadm device list
run cvmadm pool list
run cvmadm volume list
run cvmadm map show

# fio_iops NAME DEV RW: 10 s of 4k RW at iodepth 32 over the first 128 MiB.
fio_iops() {
	fio --name="$1" --filename="$2" --rw="$3" --bs=4k --iodepth=32 \
		--ioengine=libaio --direct=1 --size=128M --runtime=10 --time_based \
		--output-format=terse --terse-version=3 |
		awk -F';' -v name="$1" -v rw="$3" \
			'{ printf "%-22s %-9s %8d IOPS\n", name, rw, (rw == "randread" ? $8 : $49) }'
}

step "fio on the raw backing device /dev/ram0 (before the target owns it)"
fio_iops "raw /dev/ram0" /dev/ram0 randwrite
fio_iops "raw /dev/ram0" /dev/ram0 randread

step "start the targets and attach the volume, all through cvmadm"
for i in 1 2 3; do
	run cvmadm target listen --address "127.0.0.1:700$i"
	run cvmadm target device add "$i" --format
done
run cvmadm volume attach vol0

# cvm.ko retries a target that was not listening yet with backoff (up to
# 10 s): wait until cvmd has heard that all three paths are up, so fio
# measures the healthy volume rather than writes degraded to two replicas.
paths_up() {
	cvmadm --json device list | python3 -c '
import json, sys
devs = json.load(sys.stdin)
sys.exit(0 if all((d["path_state"] or {}).get("state") == "up" for d in devs) else 1)'
}
for ((i = 0; i < 60; i++)); do
	paths_up && break
	sleep 0.5
done
run cvmadm status

step "fio on /dev/cvm0 (replicated x3 over loopback TCP)"
fio_iops "cvm /dev/cvm0" /dev/cvm0 randwrite
fio_iops "cvm /dev/cvm0" /dev/cvm0 randread
echo
echo "The same over RDMA (host add --transport rdma), erasure-coded pools (--policy ec:K,M)"
echo "and cvmadm df / device list for space: README.md; make bench compares with NVMe-oF and md."
