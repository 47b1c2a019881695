# shellcheck shell=bash
# Sourced INSIDE a cluster guest by the scenarios' commands
# (guest_run I '. tests/cluster/lib/node.sh; ...'): the steps a storage
# node and an initiator take, over the raw generic netlink clients of
# tests/vm/lib.  Storage node i serves device i from its first disk
# (/dev/vda) on its own address over tcp (port 7001+i) and rdma (port
# 7101+i: a target keys its listeners by address and port, whatever the
# transport) at once; the tcp listener also serves cvm-wire, which speaks
# tcp only.
#
#   node_load MODULE             load kernel/MODULE.ko (cvm_target on storage
#                                nodes, cvm on initiators) unless loaded
#   node_storage_up I [format]   load cvm_target, add device I on /dev/vda,
#                                listen tcp+rdma (NODE_TRANSPORTS: which)
#   node_rdma_active             rxe0 (bound at boot) is ACTIVE
#   node_map_set EPOCH T A0,A1,A2   map of 3 hosts x 1 device over T
#   node_attach VOL SIZE         attach replicated(3) volume VOL (1 MiB
#                                objects), prints the minor
#   node_stale                   the initiator's stale object count
#   node_fio_start NAME ARGS...  fio in the background (output /tmp/NAME.*)
#   node_fio_done NAME           fio NAME has ended (its rc in /tmp/NAME.rc)
#   node_replicas_identical VOL NOBJ A0,A1,A2
#                                every object of VOL reads the same bytes
#                                from the three targets (cvm-wire)
#
# With a cvmd on the node (its socket /run/cvm/cvmd.sock):
#   node_device_is ID FIELD VALUE  `cvmadm device list` says so (Python repr)
#   node_pgs_on ID               PGs the current map places on device ID
#   node_pinned                  PGs pinned in the current map, all pools

. "$CVM_TOP/tests/lib/cvm_vm.sh"
NODE_TG=(python3 "$CVM_TOP/tests/vm/lib/target_genl.py")
NODE_IG=(python3 "$CVM_TOP/tests/vm/lib/initiator_genl.py")
NODE_WIRE=$CVM_TOP/build/userspace/tools/cvm-wire
NODE_OBJ=$((1 << 20))

# node_port I [TRANSPORT]: where storage node I listens (default tcp).
node_port() {
	if [[ ${2:-tcp} == rdma ]]; then
		echo $((7101 + $1))
	else
		echo $((7001 + $1))
	fi
}

node_load() {
	# No udev: the CPU's CRC32C driver is not loaded for us
	# (scripts/vm-load-modules.sh).
	modprobe -q crc32c-intel 2>/dev/null
	cvm_load "$1"
}

node_storage_up() {
	local i=$1 fmt=${2:-} t
	node_load cvm_target || return
	"${NODE_TG[@]}" add "$i" /dev/vda $fmt || return
	for t in ${NODE_TRANSPORTS:-tcp rdma}; do
		"${NODE_TG[@]}" listen "$CVM_GUEST_ADDR" "$(node_port "$i" $t)" \
			--transport $t || return
	done
}

node_rdma_active() {
	rdma link show rxe0/1 2>/dev/null | grep -q 'state ACTIVE'
}

node_map_set() {
	"${NODE_IG[@]}" map-set "$1" --transport "$2" --addr "$3" \
		--port-base "$(node_port 0 "$2")"
}

node_attach() {
	"${NODE_IG[@]}" attach "$1" 3 "$2" --object-size "$NODE_OBJ" --name "r3-$1"
}

node_stale() { "${NODE_IG[@]}" stale; }

node_fio_start() {
	local name=$1
	shift
	rm -f "/tmp/$name.rc"
	(
		fio --name="$name" "$@" --output="/tmp/$name.out"
		echo $? >"/tmp/$name.rc"
	) </dev/null >/dev/null 2>&1 &
}

node_fio_done() { [[ -f "/tmp/$1.rc" ]]; }

# _sums ADDR:PORT DEV VOL NOBJ: "OBJECT CRC32C" per object (cvm-wire sums).
_sums() {
	"$NODE_WIRE" "$1" sums --device "$2" --volume "$3" --object 0 \
		--count "$4" --length "$NODE_OBJ"
}

node_replicas_identical() {
	local vol=$1 nobj=$2 addrs d bad=0 tmp
	IFS=, read -ra addrs <<<"$3"
	tmp=$(mktemp -d)
	for d in 0 1 2; do
		_sums "${addrs[$d]}:$(node_port $d)" $d "$vol" "$nobj" >"$tmp/$d" ||
			{ rm -rf "$tmp"; return 1; }
	done
	for d in 1 2; do
		if ! diff "$tmp/0" "$tmp/$d" >"$tmp/diff"; then
			echo "device $d differs from device 0 (object crc32c):"
			head -n 20 "$tmp/diff"
			bad=1
		fi
	done
	rm -rf "$tmp"
	echo "$nobj objects x 3 replicas compared: $( ((bad)) && echo differ || echo identical)"
	((bad == 0))
}

NODE_ADM=("$CVM_TOP/build/userspace/cvmadm/cvmadm" --socket /run/cvm/cvmd.sock)

node_device_is() {
	"${NODE_ADM[@]}" --json device list | python3 -c '
import json, sys
d = [d for d in json.load(sys.stdin) if d["id"] == int(sys.argv[1])][0]
sys.exit(repr(d[sys.argv[2]]) != sys.argv[3])' "$@"
}

node_pgs_on() {
	"${NODE_ADM[@]}" --json map show | python3 -c '
import json, sys
print(sum(p["pgs_per_device"].get(sys.argv[1], 0) for p in json.load(sys.stdin)["pools"]))' "$1"
}

node_pinned() {
	"${NODE_ADM[@]}" --json map show | python3 -c '
import json, sys
print(sum(p.get("pinned", 0) for p in json.load(sys.stdin)["pools"]))'
}
