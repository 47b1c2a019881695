# shellcheck shell=bash
# Sourced inside the test VM by the tests in tests/vm and by bench/: the
# steps they all take to bring cvm up.
#
#   cvm_load MODULE       load kernel/MODULE.ko (its Debian dependencies
#                         first) unless it is loaded already
#   cvm_connected N       wait up to 30 s until cvm.ko has logged N
#                         connections to targets in all (dmesg)
#   cvm_three_targets     (tests only: uses check from check.sh) fresh brd
#                         ram0..2, both modules loaded, cvm_target serving
#                         device i on /dev/rami at 127.0.0.1:700(i+1)

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

cvm_three_targets() {
	local tg=(python3 "${CVM_TOP:-.}/tests/vm/lib/target_genl.py") i
	rmmod brd 2>/dev/null	# module parameters only apply to a fresh load
	check "brd: 3 x 256 MiB" modprobe brd rd_nr=3 rd_size=$((256 << 10))
	check "load cvm_target" cvm_load cvm_target
	check "load cvm" cvm_load cvm
	for i in 0 1 2; do
		check "target: add device $i on /dev/ram$i" \
			"${tg[@]}" add $i /dev/ram$i format
		check "target: listen 127.0.0.1:$((7001 + i))" \
			"${tg[@]}" listen 127.0.0.1 $((7001 + i))
	done
}
