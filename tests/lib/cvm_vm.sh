# shellcheck shell=bash
# Sourced inside the test VM by the tests in tests/vm and by bench/: the
# steps they all take to bring cvm up.
#
#   cvm_load MODULE       load kernel/MODULE.ko (its Debian dependencies
#                         first) unless it is loaded already
#   cvm_connected N       wait up to 30 s until cvm.ko has logged N
#                         connections to targets in all (dmesg)

cvm_load() {
	[[ -d /sys/module/$1 ]] && return 0
	local dep
	for dep in $(modinfo -F depends "kernel/$1.ko" | tr ',' ' '); do
		modprobe "$dep" || return
	done
	insmod "kernel/$1.ko"
}

cvm_connected() {
	local i
	for ((i = 0; i < 150; i++)); do
		(($(dmesg | grep -c ': connected$') >= $1)) && return 0
		sleep 0.2
	done
	echo "cvm.ko logged fewer than $1 connections to targets:" >&2
	dmesg | grep cvm | tail -n 20 >&2
	return 1
}
