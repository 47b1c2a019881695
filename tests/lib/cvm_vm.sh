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
#   cvm_rdma_up           Soft-RoCE for the rdma transport: eth0 up with
#                         10.99.0.1-3/24 (one address per target "host"),
#                         rdma_rxe bound to it as rxe0, port ACTIVE
#   cvm_transport         \$CVM_TRANSPORT (tcp or rdma), default tcp
#   cvm_addr I            the address target I (0-based) serves its data
#                         path on: 127.0.0.1 over tcp, 10.99.0.(I+1) over rdma

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

cvm_transport() {
	echo "${CVM_TRANSPORT:-tcp}"
}

cvm_addr() {
	if [[ $(cvm_transport) == rdma ]]; then
		echo "10.99.0.$(($1 + 1))"
	else
		echo 127.0.0.1
	fi
}

cvm_rdma_up() {
	local i
	rdma link show rxe0 2>/dev/null | grep -q ACTIVE && return 0
	modprobe virtio_net || return
	for ((i = 0; i < 50; i++)); do
		ip link show eth0 >/dev/null 2>&1 && break
		sleep 0.1
	done
	ip link set lo up
	ip link set eth0 up || return
	for i in 1 2 3; do
		ip addr replace "10.99.0.$i/24" dev eth0 || return
	done
	modprobe rdma_rxe || return
	rdma link add rxe0 type rxe netdev eth0 || return
	for ((i = 0; i < 50; i++)); do
		rdma link show rxe0 | grep -q ACTIVE && return 0
		sleep 0.1
	done
	echo "rxe0 did not become ACTIVE:" >&2
	rdma link show >&2
	return 1
}
