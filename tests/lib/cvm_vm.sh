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
#   cvm_disk I            target I's backing device in cvm_three_targets:
#                         /dev/ramI over tcp, dm-linear cvmdiskI on it over
#                         rdma (for cvm_block) or with CVM_DM_DISKS=1 (tests
#                         that swap a disk's table: cvm_disk_fail)
#   cvm_replicas_identical VOL COUNT SIZE
#                         objects 0..COUNT-1 (SIZE bytes) of volume VOL
#                         hold the same bytes on targets 0..2 (cvm-wire
#                         sums, tcp at 127.0.0.1:cvm_port I)
#   cvm_wait_for SECS CMD...  run CMD every 0.2 s until it succeeds, at
#                         most SECS seconds
#   cvm_disk_fail I       target I's disk fails every I/O (dm error table)
#   cvm_disk_heal I       and works again (dm-linear on /dev/ramI)
#   cvm_block I           silence target I, nothing closed: over tcp its
#                         data path's packets are dropped (nft), over rdma
#                         its disk stops completing I/O (dm suspend); see
#                         below.  cvm_block again adds a target
#   cvm_block_how         what cvm_block does, for check names
#   cvm_unblock           let every target answer again

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
	cvm_dm_disks_down	# a failed test's leftovers hold brd
	rmmod brd 2>/dev/null	# module parameters only apply to a fresh load
	check "brd: 3 x 256 MiB" modprobe brd rd_nr=3 rd_size=$((256 << 10))
	if cvm_dm; then
		check "dm-linear cvmdisk0..2 on /dev/ram0..2" cvm_dm_disks
	fi
	check "load cvm_target" cvm_load cvm_target
	check "load cvm" cvm_load cvm
	for i in 0 1 2; do
		check "target: add device $i on $(cvm_disk $i)" \
			"${tg[@]}" add $i "$(cvm_disk $i)" format
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
	if cvm_dm; then
		check "remove dm-linear cvmdisk0..2" cvm_dm_disks_down
	fi
	check "rmmod brd" rmmod brd
}

cvm_dm() {
	[[ $(cvm_transport) == rdma || -n ${CVM_DM_DISKS:-} ]]
}

cvm_disk() {
	if cvm_dm; then
		echo "/dev/mapper/cvmdisk$1"
	else
		echo "/dev/ram$1"
	fi
}

cvm_dm_disks() {
	local i
	modprobe dm_mod || return
	for i in 0 1 2; do
		echo "0 $(blockdev --getsz /dev/ram$i) linear /dev/ram$i 0" |
			dmsetup create "cvmdisk$i" || return
	done
	udevadm settle 2>/dev/null
	for i in 0 1 2; do
		[[ -b /dev/mapper/cvmdisk$i ]] || dmsetup mknodes "cvmdisk$i"
	done
}

cvm_disk_table() {
	dmsetup suspend "cvmdisk$1" &&
		echo "0 $(blockdev --getsz "/dev/ram$1") $2" |
		dmsetup load "cvmdisk$1" &&
		dmsetup resume "cvmdisk$1"
}

cvm_disk_fail() {
	cvm_disk_table "$1" error
}

cvm_disk_heal() {
	cvm_disk_table "$1" "linear /dev/ram$1 0"
}

# Resumes first: a suspended device cannot be removed.
cvm_dm_disks_down() {
	local i rc=0
	for i in 0 1 2; do
		# Not -e: without udev a removed device's node may linger.
		dmsetup info "cvmdisk$i" >/dev/null 2>&1 || continue
		dmsetup resume "cvmdisk$i"
		dmsetup remove "cvmdisk$i" || rc=1
	done
	return $rc
}

# Silencing a target: its connections stay open, nothing answers.
# tcp: every packet to and from 127.0.0.1:cvm_port I is dropped (input
# hook: on lo it sees both directions).
# rdma: dropping packets does not work in this one VM.  RoCEv2 is UDP to
# port 4791, but every target address is local, so rdma_cm resolves each
# peer to rxe0's own MAC and rxe hands the packet straight to its receive
# path (rxe_loopback() in drivers/infiniband/sw/rxe/rxe_net.c), past
# netfilter (rping 10.99.0.1 -> 10.99.0.2 gets through drop rules on UDP
# 4791; their counters stay at 0).  So the target's disk hangs instead:
# cvm_three_targets puts each rdma target on a dm-linear device, and
# `dmsetup suspend` holds every new bio until resume.  The target still
# answers HELLO, so a reconnect succeeds and its requests time out again:
# the hung-disk case, where the tcp variant is the silent-network one.  A
# FLUSH is not held: the block layer completes it before dm sees it, as the
# RAM disk has no volatile cache.
cvm_block_how() {
	if [[ $(cvm_transport) == rdma ]]; then
		echo "its disk stops completing I/O (dm suspend)"
	else
		echo "nft drops its packets"
	fi
}

cvm_block() {
	local p
	if [[ $(cvm_transport) == rdma ]]; then
		dmsetup suspend "cvmdisk$1"
		return
	fi
	modprobe nf_tables || return
	if ! nft list table inet cvmtest >/dev/null 2>&1; then
		nft add table inet cvmtest &&
			nft add chain inet cvmtest input \
				'{ type filter hook input priority 0; policy accept; }' ||
			return
	fi
	p=$(cvm_port "$1")
	nft add rule inet cvmtest input tcp dport "$p" drop &&
		nft add rule inet cvmtest input tcp sport "$p" drop
}

cvm_unblock() {
	local i
	if [[ $(cvm_transport) == rdma ]]; then
		for i in 0 1 2; do
			dmsetup resume "cvmdisk$i" || return
		done
		return 0
	fi
	nft delete table inet cvmtest
}

cvm_replicas_identical() {
	local vol=$1 count=$2 size=$3 d bad=0 sums=()
	local wire=${CVM_TOP:-.}/build/userspace/tools/cvm-wire
	for d in 0 1 2; do
		sums[d]=$("$wire" "127.0.0.1:$(cvm_port $d)" sums --device $d \
			--volume "$vol" --object 0 --count "$count" \
			--length "$size") || return 1
	done
	for d in 1 2; do
		if ! diff <(echo "${sums[0]}") <(echo "${sums[d]}"); then
			echo "device $d differs from device 0 (object, crc32c)"
			bad=$((bad + 1))
		fi
	done
	echo "$count objects x 3 replicas compared, $bad replicas differ"
	((bad == 0))
}

cvm_wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < end)) || return 1
		sleep 0.2
	done
}
