#!/bin/bash
# PID 1 inside the test VM (started by scripts/vm-run.sh through the
# initramfs).  Mounts the run directory shared by the host, loads the cvm
# modules, runs the host's command, saves its status and the kernel log for
# the host, and powers off.
. "$(dirname "${BASH_SOURCE[0]}")/vm-guest-setup.sh"
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
