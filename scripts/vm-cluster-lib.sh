# shellcheck shell=bash
# The host-side orchestrator of a test cluster, sourced by scenario
# scripts that scripts/vm-cluster.sh runs (it sets $CVM_CLUSTER and boots
# the guests first).  All state lives in files under $CVM_CLUSTER, so every
# function works from subshells and background jobs too.
#
#   guest_boot I [I...]        power guests on (over their same disk
#                              files) and wait until each serves commands
#   guest_run I [--timeout S] CMD [ARG...]
#                              run CMD in guest I (one argument: a shell
#                              script; several: a quoted argv), from the
#                              checkout; prints its stdout and stderr and
#                              returns its status: 124 when it outlived
#                              S (default 600) seconds, 125 when the guest
#                              died, 126 when the guest's kernel reported
#                              a problem (oops, BUG, WARNING, ...)
#   guest_wait I SECS CMD...   run CMD in guest I every 0.5 s until it
#                              succeeds (0) or SECS pass (1, last output)
#   guest_poweroff I           cut guest I's power: no sync, no shutdown
#   guest_up I                 guest I is powered on
#   guest_addr I               its address on the cluster network
#   guest_name I               its hostname (cvm-gI)
#   guest_console I [LINES]    the tail of its console, this boot
#   guest_count                how many guests the cluster has
#
# Guest I has the address 10.99.1.(I+1)/24 on eth0, the hostname cvm-gI
# (every guest's /etc/hosts names them all), its disk files as /dev/vda,
# vdb, ... (sparse files that outlive power cuts and reboots), the cvm
# modules loaded (unless --no-modules) and, with vm-cluster.sh --rdma,
# Soft-RoCE bound to eth0 as rxe0.  A guest's console is checked after every command and at the end
# of the run: any oops, BUG, WARNING, lockup or hung-task report fails the
# run with that console shown.

: "${CVM_CLUSTER:?vm-cluster-lib.sh: run scenarios with scripts/vm-cluster.sh}"
# shellcheck source=scripts/vm-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/vm-lib.sh"
# shellcheck source=/dev/null
. "$CVM_CLUSTER/config"

guest_count() { echo "$CLUSTER_GUESTS"; }
guest_addr() { echo "10.99.1.$(($1 + 1))"; }
guest_name() { echo "cvm-g$1"; }
_gdir() { echo "$CVM_CLUSTER/g$1"; }

_guest_valid() {
	[[ "$1" =~ ^[0-9]+$ ]] && (($1 < CLUSTER_GUESTS)) && return 0
	echo "vm-cluster: no guest '$1' (guests 0..$((CLUSTER_GUESTS - 1)))" >&2
	return 2
}

# _alive PID: running, not a zombie left for its parent to reap.
_alive() {
	local state
	state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
	[[ -n "$state" && "$state" != Z && "$state" != X ]]
}

guest_up() {
	local pid
	pid=$(cat "$(_gdir "$1")/qemu.pid" 2>/dev/null) || return 1
	_alive "$pid"
}

guest_console() {
	local d boot
	d=$(_gdir "$1")
	boot=$(cat "$d/boots" 2>/dev/null) || return 0
	tail -n "${2:-80}" "$d/console.$boot.log"
}

# _console_check I: a kernel problem on guest I's console (any boot) that
# was not reported yet is reported now, marked in $CVM_CLUSTER/failed, and
# makes this return 1.
_console_check() {
	local d=$(_gdir "$1") log seen n hits=0
	for log in "$d"/console.*.log; do
		[[ -f "$log" ]] || continue
		n=$(grep -Ec "$CVM_VM_BAD" "$log")
		seen=$(cat "$log.reported" 2>/dev/null || echo 0)
		((n > seen)) || continue
		echo "$n" >"$log.reported"
		hits=1
		echo "vm-cluster: guest $1 ($(guest_name "$1")) kernel reported a problem (${log##*/}):" >&2
		grep -E -B 5 -A 40 "$CVM_VM_BAD" "$log" | head -n 120 >&2
		echo "guest $1: ${log##*/}" >>"$CVM_CLUSTER/failed"
	done
	((hits == 0))
}

# _qemu I BOOT: start guest I's QEMU in the background.
_qemu() {
	local i=$1 boot=$2 d disks=() f mac accel
	d=$(_gdir "$i")
	for f in "$d"/disk*.img; do
		[[ -f "$f" ]] && disks+=(-drive "file=$f,format=raw,if=virtio,cache=writeback")
	done
	read -ra accel <<<"$(cvm_vm_accel)"
	mac=$(printf '52:54:00:99:01:%02x' $((i + 1)))
	# No softlockup_panic or hung_task_panic: starvation by the other
	# guests is not a hang (vm-cluster-guest.sh).  An oops still panics,
	# and panic=-1 with -no-reboot ends QEMU, so a dead guest is seen.
	qemu-system-x86_64 "${accel[@]}" -m "$CLUSTER_MEM" -smp 1 \
		-nographic -no-reboot -kernel "$CLUSTER_KERNEL" -initrd "$CLUSTER_INITRD" \
		-append "console=ttyS0 panic=-1 oops=panic softlockup_panic=0 hung_task_panic=0 watchdog_thresh=30 rcupdate.rcu_cpu_stall_timeout=120 loglevel=5 cvm.stage2=$CLUSTER_TOP/scripts/vm-cluster-guest.sh cvm.guest=$i cvm.boot=$boot cvm.top=$CLUSTER_TOP cvm.addr=$(guest_addr "$i")/24 cvm.modules=$CLUSTER_MODULES cvm.rxe=$CLUSTER_RDMA" \
		-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
		-virtfs local,path="$d",mount_tag=cvmrun,security_model=none \
		-netdev vde,id=n0,sock="$CVM_CLUSTER/switch" \
		-device virtio-net-pci,netdev=n0,mac="$mac" \
		"${disks[@]}" </dev/null >"$d/console.$boot.log" 2>&1 &
	echo $! >"$d/qemu.pid"
}

guest_boot() {
	local i d boot t0 t rc=0 pending=()
	for i in "$@"; do
		_guest_valid "$i" || return
		if guest_up "$i"; then
			echo "vm-cluster: guest $i is already up" >&2
			return 1
		fi
	done
	t0=$(date +%s%N)
	for i in "$@"; do
		d=$(_gdir "$i")
		boot=$(($(cat "$d/boots" 2>/dev/null || echo 0) + 1))
		echo "$boot" >"$d/boots"
		rm -rf "$d/ready" "$d/cmd"	# never replay the last boot's commands
		_qemu "$i" "$boot"
		pending+=("$i")
	done
	local deadline=$((SECONDS + ${CVM_BOOT_TIMEOUT:-240})) left
	while ((${#pending[@]})); do
		left=()
		for i in "${pending[@]}"; do
			d=$(_gdir "$i")
			if [[ "$(cat "$d/ready" 2>/dev/null)" == "$(cat "$d/boots")" ]]; then
				t=$((($(date +%s%N) - t0) / 100000000))
				echo "guest $i boot $(cat "$d/boots"): $((t / 10)).$((t % 10)) s" \
					>>"$CVM_CLUSTER/boots.log"
				grep -q 'failed\|cannot' "$d/init.log" && { cat "$d/init.log" >&2; rc=1; }
				continue
			fi
			if ! guest_up "$i"; then
				echo "vm-cluster: guest $i died while booting:" >&2
				guest_console "$i" 60 >&2
				_console_check "$i"
				rc=125
				continue
			fi
			if ((SECONDS > deadline)); then
				echo "vm-cluster: guest $i did not come up in ${CVM_BOOT_TIMEOUT:-240} s:" >&2
				guest_console "$i" 60 >&2
				rc=124
				continue
			fi
			left+=("$i")
		done
		pending=("${left[@]}")
		((${#pending[@]})) && sleep 0.2
	done
	return $rc
}

guest_run() {
	local i=$1 limit=600 c id rc
	shift
	_guest_valid "$i" || return
	if [[ "${1:-}" == --timeout ]]; then
		limit=$2
		shift 2
	fi
	(($#)) || { echo "guest_run: no command" >&2; return 2; }
	if ! guest_up "$i"; then
		echo "guest_run: guest $i is powered off" >&2
		return 125
	fi
	id=$(date +%s%N).$BASHPID.$RANDOM
	c=$(_gdir "$i")/cmd/$id
	if (($# == 1)); then
		printf '%s\n' "$1" >"$c.tmp"
	else
		{ printf '%q ' "$@"; echo; } >"$c.tmp"
	fi
	mv "$c.tmp" "$c.sh"
	local deadline=$((SECONDS + limit))
	while [[ ! -f "$c.rc" ]]; do
		if ! guest_up "$i"; then
			cat "$c.out" 2>/dev/null
			echo "guest_run: guest $i died while running: $(head -c 200 "$c.run" 2>/dev/null)" >&2
			guest_console "$i" 60 >&2
			_console_check "$i"
			rm -f "$c".*
			return 125
		fi
		if ((SECONDS >= deadline)); then
			cat "$c.out" "$c.err" 2>/dev/null
			echo "guest_run: guest $i: still running after $limit s: $(head -c 200 "$c.run")" >&2
			return 124
		fi
		sleep 0.1
	done
	rc=$(cat "$c.rc")
	cat "$c.out"
	cat "$c.err" >&2
	rm -f "$c".*
	if ! _console_check "$i"; then
		((rc == 0)) && rc=126
	fi
	return "$rc"
}

guest_wait() {
	local i=$1 secs=$2 out deadline
	shift 2
	deadline=$((SECONDS + secs))
	while :; do
		out=$(guest_run "$i" --timeout "$secs" "$@" 2>&1) && return 0
		guest_up "$i" || { echo "$out"; return 1; }
		if ((SECONDS >= deadline)); then
			echo "guest_wait: guest $i: not true after $secs s: $*"
			echo "$out" | tail -n 20
			return 1
		fi
		sleep 0.5
	done
}

guest_poweroff() {
	local pid
	_guest_valid "$1" || return
	pid=$(cat "$(_gdir "$1")/qemu.pid" 2>/dev/null) || return 0
	kill -KILL "$pid" 2>/dev/null
	while _alive "$pid"; do sleep 0.05; done
	rm -f "$(_gdir "$1")/qemu.pid"
	_console_check "$1"
	return 0
}
