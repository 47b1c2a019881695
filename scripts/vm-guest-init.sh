#!/bin/bash
# PID 1 inside the test VM (started by scripts/vm-run.sh through the
# initramfs).  Mounts the run directory shared by the host, loads the cvm
# modules, runs the host's command, saves its status and the kernel log for
# the host, and powers off.
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
hostname cvm-vm
echo 60 >/proc/sys/kernel/hung_task_timeout_secs

out=/run/cvm-host/output.log
(
	. /run/cvm-host/env.sh
	if [[ "$CVM_LOAD_MODULES" == 1 ]]; then
		"$CVM_TOP/scripts/vm-load-modules.sh" || exit 90
	fi
	exec bash /run/cvm-host/cmd.sh
) >>"$out" 2>&1 </dev/null
echo $? >/run/cvm-host/rc.tmp
dmesg >/run/cvm-host/dmesg.log
mv /run/cvm-host/rc.tmp /run/cvm-host/rc
poweroff_now
