# shellcheck shell=bash
# Sourced by the guests' PID 1 (scripts/vm-guest-init.sh for vm-run.sh,
# scripts/vm-cluster-guest.sh for vm-cluster.sh) right after switch_root:
# the mounts and settings every test guest has.  The host's run directory
# (9p tag cvmrun) is mounted at /run/cvm-host.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
mkdir -p /run/cvm-host
poweroff_now() { sync; echo o >/proc/sysrq-trigger; sleep 30; }
echo 1 >/proc/sys/kernel/sysrq
mount -t 9p -o trans=virtio,version=9p2000.L cvmrun /run/cvm-host || poweroff_now
# No tmpfs over /tmp: the checkout under test may live there, and the
# overlay's upper layer is tmpfs already, so writes never reach the host.
mount -t tmpfs tmpfs /run/lock 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
ln -sfn /proc/self/fd /dev/fd
mount -t tmpfs tmpfs /dev/shm
mount -t configfs configfs /sys/kernel/config 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
ip link set lo up

# cmdline_arg NAME: the value of NAME= on the kernel command line.
cmdline_arg() {
	local arg
	for arg in $(cat /proc/cmdline); do
		[[ "$arg" == "$1="* ]] && { echo "${arg#*=}"; return 0; }
	done
	return 1
}
