#!/bin/bash
# PID 1 of each guest of a test cluster (scripts/vm-cluster.sh boots it
# through the initramfs with cvm.stage2=this).  Sets the guest up from its
# kernel command line, then serves the host's orchestrator
# (scripts/vm-cluster-lib.sh) until the host cuts the power:
#
#   cvm.guest=I        index; hostname cvm-gI unless cvm.name= says otherwise
#   cvm.addr=A/P       eth0's address on the cluster network
#   cvm.boot=N         this boot's number, echoed in the ready file
#   cvm.modules=0|1    load the freshly built cvm_target.ko and cvm.ko
#   cvm.rxe=0|1        bind Soft-RoCE (rdma_rxe) to eth0 as rxe0
#   cvm.top=DIR        the checkout (commands start there)
#
# The agent: the host drops cmd/ID.sh into the run directory (9p, mounted
# at /run/cvm-host); the agent renames it to ID.run, runs it with bash in
# the background (commands run concurrently) and leaves ID.out, ID.err and
# then ID.rc.  Ready when /run/cvm-host/ready holds cvm.boot's number.
. "$(dirname "${BASH_SOURCE[0]}")/vm-guest-setup.sh"

guest=$(cmdline_arg cvm.guest) || poweroff_now
boot=$(cmdline_arg cvm.boot) || boot=1
top=$(cmdline_arg cvm.top) || poweroff_now
name=$(cmdline_arg cvm.name) || name=cvm-g$guest
addr=$(cmdline_arg cvm.addr) || poweroff_now
spool=/run/cvm-host
log=$spool/init.log
: >"$log"
say() { echo "cvm-cluster-guest: $*" >>"$log"; }

hostname "$name"
[[ -f $spool/hosts ]] && cp "$spool/hosts" /etc/hosts

# Several single-vCPU TCG guests on two host cores starve each other for
# seconds at a time.  The command line keeps that from panicking (no
# softlockup_panic, hung_task_panic or oops-on-stall); here the hung-task
# report waits 5 minutes.  A real hang still fails the run: the host's
# per-command and per-run timeouts stop it, and a hung-task or lockup
# report on the console fails it too.
echo 300 >/proc/sys/kernel/hung_task_timeout_secs

# No udev here: the disks and the NIC wait for their drivers.
modprobe virtio_blk || say "modprobe virtio_blk failed"
modprobe virtio_net || say "modprobe virtio_net failed"
for ((i = 0; i < 100; i++)); do
	ip link show eth0 >/dev/null 2>&1 && break
	sleep 0.1
done
ip addr add "$addr" dev eth0 || say "cannot give eth0 $addr"
ip link set eth0 up || say "cannot bring eth0 up"

env_file=/run/cvm-guest-env.sh
{
	printf 'export CVM_TOP=%q CVM_IN_VM=1 CVM_GUEST=%q CVM_GUEST_ADDR=%q\n' \
		"$top" "$guest" "${addr%/*}"
	printf 'cd %q || exit 91\n' "$top"
} >"$env_file"

if [[ $(cmdline_arg cvm.modules) == 1 ]]; then
	CVM_TOP=$top "$top/scripts/vm-load-modules.sh" >>"$log" 2>&1 ||
		say "loading the cvm modules failed"
fi
if [[ $(cmdline_arg cvm.rxe) == 1 ]]; then
	{ modprobe rdma_rxe && rdma link add rxe0 type rxe netdev eth0; } >>"$log" 2>&1 ||
		say "cannot bind rdma_rxe to eth0"
fi

mkdir -p "$spool/cmd"
echo "$boot" >"$spool/ready.tmp"
mv "$spool/ready.tmp" "$spool/ready"
say "boot $boot ready: $name $addr"

# run_one ID: one command, its output and status left for the host.
run_one() {
	local c=$spool/cmd/$1
	(
		. "$env_file"
		exec bash "$c.run"
	) >"$c.out" 2>"$c.err" </dev/null
	echo $? >"$c.rc.tmp"
	mv "$c.rc.tmp" "$c.rc"
}

# Wait for commands without a fork per look: under TCG, forking `sleep`
# and `basename` ten times a second kept each idle guest near 40 % of a
# host core (4 idle guests: 1.6 of the host's 2 cores).  read -t on a FIFO
# nobody writes is bash's own pause.
mkfifo /run/cvm-guest-pause
exec {pause_fd}<>/run/cvm-guest-pause
shopt -s nullglob
while :; do
	for f in "$spool"/cmd/*.sh; do
		id=${f##*/}
		id=${id%.sh}
		mv "$f" "$spool/cmd/$id.run" 2>/dev/null || continue
		run_one "$id" &
	done
	read -r -t 0.1 -u "$pause_fd" _
done
