# shellcheck shell=bash
# Sourced inside the test VM by the tests in tests/vm and by bench/: the
# steps they all take to bring cvm up.
#
#   cvm_load MODULE       load kernel/MODULE.ko (its Debian dependencies
#                         first) unless it is loaded already
#   cvm_connected N       wait up to 30 s until cvm.ko has logged N
#                         connections to targets in all (dmesg)
#   cvm_transport         \$CVM_TRANSPORT (tcp or rdma), default tcp
#   cvm_addr I            the address target I (0-based) serves its data
#                         path on: 127.0.0.1 over tcp, 10.99.0.(I+1) over rdma
#   cvm_port I            the port it serves it on: 700(I+1)
#   cvm_map_paths         initiator_genl.py map-set arguments for the paths
#                         of devices 0..2: cvm_addr I, cvm_port I, transport
#   cvm_listen I          target I listens for the data path (cvm_addr I,
#   cvm_unlisten I        cvm_port I, cvm_transport) / stops: cuts it off
#   cvm_rdma_up           Soft-RoCE for the rdma transport: eth0 up with
#                         10.99.0.1-3/24 (one address per target "host"),
#                         rdma_rxe bound to it as rxe0, port ACTIVE
#   cvm_three_targets     (tests only: uses check from check.sh) fresh brd
#                         ram0..2, both modules loaded, cvm_target serving
#                         device i on /dev/rami (cvm_listen i); over rdma
#                         also at 127.0.0.1:cvm_port i over tcp, for the
#                         userspace cvm-wire (TCP only)
#   cvm_three_targets_down (tests only) undo it: unlisten, remove, rmmod brd
#   cvm_silenceable       can cvm_block silence a target of this transport
#                         in this VM?  (not rdma: see below)
#   cvm_block I           drop all traffic of target I's data path (nft),
#                         nothing closed; cvm_block again adds a target
#   cvm_unblock           let every target's traffic flow again

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
	# `rdma link show rxe0` is refused ("Wrong device name"): a link is
	# named DEVICE/PORT.
	rdma link show rxe0/1 2>/dev/null | grep -q 'state ACTIVE' && return 0
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
	if ! rdma link show rxe0/1 >/dev/null 2>&1; then
		rdma link add rxe0 type rxe netdev eth0 || return
	fi
	for ((i = 0; i < 50; i++)); do
		rdma link show rxe0/1 | grep -q 'state ACTIVE' && return 0
		sleep 0.1
	done
	echo "rxe0 did not become ACTIVE:" >&2
	rdma link show >&2
	return 1
}

cvm_port() {
	echo $((7001 + $1))
}

cvm_map_paths() {
	echo "--addr $(cvm_addr 0),$(cvm_addr 1),$(cvm_addr 2) --transport $(cvm_transport)"
}

cvm_listen() {
	python3 "${CVM_TOP:-.}/tests/vm/lib/target_genl.py" listen \
		"$(cvm_addr "$1")" "$(cvm_port "$1")" --transport "$(cvm_transport)"
}

cvm_unlisten() {
	python3 "${CVM_TOP:-.}/tests/vm/lib/target_genl.py" unlisten \
		"$(cvm_addr "$1")" "$(cvm_port "$1")" --transport "$(cvm_transport)"
}

cvm_three_targets() {
	local tg=(python3 "${CVM_TOP:-.}/tests/vm/lib/target_genl.py") i
	if [[ $(cvm_transport) == rdma ]]; then
		check "rdma: Soft-RoCE rxe0 on eth0, 10.99.0.1-3" cvm_rdma_up
	fi
	rmmod brd 2>/dev/null	# module parameters only apply to a fresh load
	check "brd: 3 x 256 MiB" modprobe brd rd_nr=3 rd_size=$((256 << 10))
	check "load cvm_target" cvm_load cvm_target
	check "load cvm" cvm_load cvm
	for i in 0 1 2; do
		check "target: add device $i on /dev/ram$i" \
			"${tg[@]}" add $i /dev/ram$i format
		check "target: listen $(cvm_addr $i):$(cvm_port $i) ($(cvm_transport))" \
			cvm_listen $i
		[[ $(cvm_transport) == tcp ]] && continue
		check "target: listen 127.0.0.1:$(cvm_port $i) (tcp, for cvm-wire)" \
			"${tg[@]}" listen 127.0.0.1 "$(cvm_port $i)" --transport tcp
	done
}

cvm_three_targets_down() {
	local tg=(python3 "${CVM_TOP:-.}/tests/vm/lib/target_genl.py") i
	for i in 0 1 2; do
		check "target: unlisten $i" cvm_unlisten $i
		if [[ $(cvm_transport) != tcp ]]; then
			check "target: unlisten $i (tcp, for cvm-wire)" \
				"${tg[@]}" unlisten 127.0.0.1 "$(cvm_port $i)" \
				--transport tcp
		fi
		check "target: remove device $i" "${tg[@]}" remove $i
	done
	check "rmmod brd" rmmod brd
}

# Silencing a target: its connections stay open, nothing answers.
# tcp: every packet to and from 127.0.0.1:cvm_port I is dropped (input
# hook: on lo it sees both directions).
# rdma: RoCEv2 is UDP to port 4791 between the targets' own addresses, so
# the rules drop UDP 4791 to and from cvm_addr I.  But in this one VM they
# never match: every target address is local, so rdma_cm resolves each
# peer to rxe0's own MAC and rxe hands the packet straight to its receive
# path (rxe_loopback() in drivers/infiniband/sw/rxe/rxe_net.c), past
# netfilter.  Verified with rping 10.99.0.1 -> 10.99.0.2: the counters stay
# at 0 and rping gets through with the drop rules in place.  Hence
# cvm_silenceable; CVM_RDMA_BLOCK=1 tries the rules anyway (a setup where
# the traffic leaves the host).
cvm_silenceable() {
	[[ $(cvm_transport) == tcp || -n "${CVM_RDMA_BLOCK:-}" ]]
}

cvm_block() {
	local a p
	modprobe nf_tables || return
	nft add table inet cvmtest &&
		nft add chain inet cvmtest input \
			'{ type filter hook input priority 0; policy accept; }' &&
		nft add chain inet cvmtest output \
			'{ type filter hook output priority 0; policy accept; }' ||
		return
	if [[ $(cvm_transport) == rdma ]]; then
		a=$(cvm_addr "$1")
		nft add rule inet cvmtest output ip daddr "$a" udp dport 4791 drop &&
			nft add rule inet cvmtest input ip daddr "$a" udp dport 4791 drop &&
			nft add rule inet cvmtest input ip saddr "$a" udp dport 4791 drop
	else
		p=$(cvm_port "$1")
		nft add rule inet cvmtest input tcp dport "$p" drop &&
			nft add rule inet cvmtest input tcp sport "$p" drop
	fi
}

cvm_unblock() {
	nft delete table inet cvmtest
}
