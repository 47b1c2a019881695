#!/bin/bash
# `make demo`, the part that runs INSIDE the test VM (the Makefile starts it
# with scripts/vm-run.sh; cvm.ko and cvm_target.ko are already loaded).
#
# Shows what CVM does today: both kernel modules answering over generic
# netlink, cvmd on its embedded RocksDB, a cluster of three storage hosts on
# real block devices described with cvmadm, a replicated(3) pool whose
# placement kernel/common computes, and a volume.  The data path
# (/dev/cvmN, fio on it) is the next issue; until it lands the demo measures
# the backing device that cvm will be compared against.
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
run cvmd --db /var/lib/cvm/db --socket "$CVM_SOCKET"
run cvmadm status

step "describe the cluster"
for i in 1 2 3; do
	run cvmadm host add "storage$i" --address "127.0.0.$i:7800" --rack "rack$i"
	run cvmadm device add "storage$i" "/dev/ram$((i - 1))" \
		--capacity "$(blockdev --getsize64 "/dev/ram$((i - 1))")"
done
run cvmadm pool create rep3 --policy replicated:3 --pg-num 256
run cvmadm volume create vol0 --pool rep3 --size 10G

step "what cvmd now holds"
run cvmadm host list
run cvmadm device list
run cvmadm pool list
run cvmadm volume list
run cvmadm map show

step "fio on the backing device (the ceiling /dev/cvm0 will be measured against)"
run fio --name=randread --filename=/dev/ram0 --rw=randread --bs=4k \
	--iodepth=32 --ioengine=libaio --direct=1 --runtime=5 --time_based \
	--group_reporting
echo
echo "The data path (/dev/cvmN over TCP, then RDMA) is the next issue;"
echo "see README.md for what exists and how to test it."
