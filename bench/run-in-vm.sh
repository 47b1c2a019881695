#!/bin/bash
# `make bench`, the part that runs INSIDE the test VM (bench/run.sh starts
# it with scripts/vm-run.sh, which has loaded cvm.ko and cvm_target.ko).
#
# Runs the same fio jobs against several block devices in this one VM, so
# their figures can be compared, and prints the results as JSON between two
# marker lines on stdout: the guest's root is a tmpfs overlay, so stdout is
# the only way out; bench/run.sh saves it under bench/results/.
#
#   BENCH_RUNTIME  seconds per fio job (default 10)
#   BENCH_REPEAT   runs per (device, job); the median is reported (default 1)
#   BENCH_DEVICES  which devices, in order (default: all of DEVICES below)
#   BENCH_TABLE    0: do not print the tables here (bench/run.sh does)
#   BENCH_COMMIT   recorded in the JSON (bench/run.sh passes the checkout's)
set -euo pipefail
top=${CVM_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$top"
# cvm_connected, shared with the VM tests.
. "$top/tests/lib/cvm_vm.sh"
if [[ -z "${CVM_IN_VM:-}" ]]; then
	echo "bench/run-in-vm.sh runs inside the test VM: use 'make bench'" >&2
	exit 2
fi

RUNTIME=${BENCH_RUNTIME:-10}
REPEAT=${BENCH_REPEAT:-1}
[[ "$RUNTIME" =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_RUNTIME wants seconds" >&2; exit 2; }
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_REPEAT wants a count" >&2; exit 2; }
SIZE_MIB=128	# the region every job works in, on every device
VOL_BYTES=$((256 << 20))	# cvm volumes: as big as one backing RAM disk

# --- what is measured -------------------------------------------------------
# The hook for new devices (nvmf-rdma, cvm over RDMA, md raid1 over nvmf...):
# add a name here, and functions setup_NAME / teardown_NAME (dashes become
# underscores).  setup_NAME sets DEV_PATH (the block device to measure) and
# DEV_DESC (one line for the table); teardown_NAME undoes it.  Every device
# should sit on a brd RAM disk, the same kind the raw baseline measures.
DEVICES=(raw nvmf-tcp cvm-rep1-tcp cvm-rep3-tcp)
# NUM/DEN pairs of device names; a ratio whose devices did not run is skipped.
RATIOS=(cvm-rep1-tcp/nvmf-tcp cvm-rep1-tcp/raw cvm-rep3-tcp/raw)
# name rw bs iodepth
JOBS=(
	"4k-randread-qd1 randread 4k 1"
	"4k-randread-qd32 randread 4k 32"
	"4k-randwrite-qd1 randwrite 4k 1"
	"4k-randwrite-qd32 randwrite 4k 32"
	"128k-read-qd16 read 128k 16"
	"128k-write-qd16 write 128k 16"
)
# RAM disks: ram0..2 cvm targets, ram3 raw, ram4 nvmf-tcp.  Raise this when
# a new device needs its own backing disk (256 MiB each, allocated on write).
BRD_COUNT=5

if [[ -n "${BENCH_DEVICES:-}" ]]; then
	read -r -a DEVICES <<<"$BENCH_DEVICES"
fi

ig=(python3 "$top/tests/vm/lib/initiator_genl.py")
tg=(python3 "$top/tests/vm/lib/target_genl.py")
report=(python3 "$top/bench/report.py")
log() { printf '%s\n' "$*"; }

# --- raw: the software ceiling ----------------------------------------------
# /dev/ram3, not ram0: ram0..2 belong to the cvm targets, and all devices
# are measured on the same kind of backing store.
setup_raw() {
	DEV_PATH=/dev/ram3
	DEV_DESC="brd RAM disk /dev/ram3, no network"
}
teardown_raw() { :; }

# --- nvmf-tcp: the kernel's NVMe-oF/TCP over loopback ----------------------
NQN=nqn.2024-01.io.cvm:bench-ram4
NVMET=/sys/kernel/config/nvmet
NVMF_PORT=1

setup_nvmf_tcp() {
	local sub=$NVMET/subsystems/$NQN port=$NVMET/ports/$NVMF_PORT b i
	# nvmet creates its configfs tree when loaded: load it before mounting.
	modprobe nvmet
	modprobe nvmet-tcp
	modprobe nvme-tcp
	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
	mkdir "$sub"
	echo 1 >"$sub/attr_allow_any_host"
	mkdir "$sub/namespaces/1"
	echo -n /dev/ram4 >"$sub/namespaces/1/device_path"
	echo 1 >"$sub/namespaces/1/enable"
	mkdir "$port"
	echo tcp >"$port/addr_trtype"
	echo ipv4 >"$port/addr_adrfam"
	echo 127.0.0.1 >"$port/addr_traddr"
	echo 4420 >"$port/addr_trsvcid"
	ln -s "$sub" "$port/subsystems/$NQN"
	ip link set lo up
	nvme connect -t tcp -a 127.0.0.1 -s 4420 -n "$NQN" >/dev/null
	# The namespace's disk (the multipath head when native multipath is on)
	# names the subsystem it belongs to; the per-path nvmeXcYnZ are hidden.
	DEV_PATH=
	for ((i = 0; i < 50; i++)); do
		for b in /sys/block/nvme*; do
			[[ "${b##*/}" =~ ^nvme[0-9]+n[0-9]+$ ]] || continue
			[[ "$(cat "$b/device/subsysnqn" 2>/dev/null)" == "$NQN" ]] || continue
			[[ -b /dev/${b##*/} ]] && DEV_PATH=/dev/${b##*/}
		done
		[[ -n "$DEV_PATH" ]] && break
		sleep 0.2
	done
	[[ -n "$DEV_PATH" ]] || { echo "bench: no block device for $NQN" >&2; return 1; }
	DEV_DESC="NVMe-oF/TCP over loopback to /dev/ram4 (nvmet, $DEV_PATH)"
}

# Idempotent, so the exit trap can call it after a half-done setup.
teardown_nvmf_tcp() {
	local sub=$NVMET/subsystems/$NQN port=$NVMET/ports/$NVMF_PORT
	if grep -qsx "$NQN" /sys/class/nvme/*/subsysnqn; then
		nvme disconnect -n "$NQN" >/dev/null
	fi
	[[ -L "$port/subsystems/$NQN" ]] && rm "$port/subsystems/$NQN"
	[[ -d "$port" ]] && rmdir "$port"
	if [[ -d "$sub/namespaces/1" ]]; then
		echo 0 >"$sub/namespaces/1/enable"
		rmdir "$sub/namespaces/1"
	fi
	[[ -d "$sub" ]] && rmdir "$sub"
	return 0
}

# --- cvm: three targets on ram0..2 behind 127.0.0.1:7001-7003 --------------
# Set up as tests/vm/initiator_fio.sh does: three "hosts" of one device,
# map epoch 1 with pool 1 replicated(1) and pool 3 replicated(3).
cvm_cluster=0

cvm_cluster_up() {
	((cvm_cluster)) && return 0
	local before i
	before=$(dmesg | grep -c ': connected$' || true)
	cvm_cluster=1	# from here on the exit trap tears down what exists
	for i in 0 1 2; do
		"${tg[@]}" add "$i" "/dev/ram$i" format
		"${tg[@]}" listen 127.0.0.1 $((7001 + i))
	done
	"${ig[@]}" map-set 1 >/dev/null
	cvm_connected $((before + 3))
}

cvm_cluster_down() {
	((cvm_cluster)) || return 0
	local i
	# As the tests do: cvm.ko goes before the targets it is connected to.
	rmmod cvm
	for i in 0 1 2; do
		"${tg[@]}" unlisten 127.0.0.1 $((7001 + i)) || true
		"${tg[@]}" remove "$i" || true
	done
	cvm_cluster=0
}

# cvm_attach ID POOL NAME: attach volume ID of POOL, set DEV_PATH.
cvm_attach() {
	local minor i
	cvm_cluster_up
	minor=$("${ig[@]}" attach "$1" "$2" "$VOL_BYTES" --name "$3")
	DEV_PATH=/dev/cvm$minor
	# devtmpfs makes the node; give it a moment.
	for ((i = 0; i < 50; i++)); do
		[[ -b "$DEV_PATH" ]] && return 0
		sleep 0.1
	done
	echo "bench: $DEV_PATH missing" >&2
	return 1
}

setup_cvm_rep1_tcp() {
	cvm_attach 1 1 r1
	DEV_DESC="cvm replicated(1) over loopback TCP, 3 targets on ram0..2 ($DEV_PATH)"
}
teardown_cvm_rep1_tcp() {
	"${ig[@]}" detach 1
}

setup_cvm_rep3_tcp() {
	cvm_attach 3 3 r3
	DEV_DESC="cvm replicated(3) over loopback TCP, 3 targets on ram0..2 ($DEV_PATH)"
}
teardown_cvm_rep3_tcp() {
	"${ig[@]}" detach 3
}

# --- the run ----------------------------------------------------------------
work=$(mktemp -d /tmp/cvm-bench.XXXXXX)
current=

cleanup() {
	local rc=$?
	set +e
	if [[ -n "$current" ]]; then
		"teardown_${current//-/_}"
	fi
	teardown_nvmf_tcp 2>/dev/null
	cvm_cluster_down
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT

for d in "${DEVICES[@]}"; do
	declare -F "setup_${d//-/_}" >/dev/null ||
		{ echo "bench: unknown device '$d' (known: ${DEVICES[*]})" >&2; exit 2; }
done

# Module parameters only apply to a fresh load.
rmmod brd 2>/dev/null || true
modprobe brd rd_nr=$BRD_COUNT rd_size=$((256 << 10))
: >"$work/devices.tsv"
for j in "${JOBS[@]}"; do
	read -r name rw bs qd <<<"$j"
	printf '%s\t%s\t%s\t%s\n' "$name" "$rw" "$bs" "$qd" >>"$work/jobs.tsv"
done

log "bench: kernel $(uname -r), ${RUNTIME}s per job, repeat $REPEAT, ${SIZE_MIB} MiB region"
for d in "${DEVICES[@]}"; do
	log "== $d"
	DEV_PATH='' DEV_DESC=''
	current=$d
	"setup_${d//-/_}"
	log "   $DEV_DESC"
	# Write the whole region once, so thin allocation (cvm) and first-touch
	# page allocation (brd) are not part of any measured write.
	t0=$(date +%s%N)
	dd if=/dev/zero of="$DEV_PATH" bs=1M count=$SIZE_MIB oflag=direct status=none
	ms=$((($(date +%s%N) - t0) / 1000000))
	pre=$((ms / 1000)).$(printf '%03d' $((ms % 1000)))
	log "   precondition: ${SIZE_MIB} MiB written in ${pre}s"
	printf '%s\t%s\t%s\t%s\n' "$d" "$DEV_PATH" "$DEV_DESC" "$pre" >>"$work/devices.tsv"
	mkdir -p "$work/$d"
	for j in "${JOBS[@]}"; do
		read -r name rw bs qd <<<"$j"
		for ((rep = 1; rep <= REPEAT; rep++)); do
			out=$work/$d/$name.$rep.json
			fio --name="$name" --filename="$DEV_PATH" --rw="$rw" --bs="$bs" \
				--iodepth="$qd" --ioengine=libaio --direct=1 \
				--offset=0 --size=${SIZE_MIB}M --time_based \
				--runtime="$RUNTIME" --lat_percentiles=1 \
				--output-format=json --output="$out"
			printf '   %-18s %s\n' "$name" "$("${report[@]}" summary "$out" "$rw")"
		done
	done
	"teardown_${d//-/_}"
	current=
done

ratio_args=()
for r in "${RATIOS[@]}"; do ratio_args+=(--ratio "$r"); done
"${report[@]}" assemble "$work" "${ratio_args[@]}" \
	--meta kernel="$(uname -r)" \
	--meta date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	--meta runtime_s="$RUNTIME" --meta repeat="$REPEAT" \
	--meta size_mib="$SIZE_MIB" \
	--meta commit="${BENCH_COMMIT:-unknown}" \
	--meta fio="$(fio --version)" \
	--meta cpus="$(nproc)" \
	--meta mem_kib="$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)" \
	--meta cvm_version="$(cat /sys/module/cvm_target/version)" \
	>"$work/results.json"

if [[ "${BENCH_TABLE:-1}" != 0 ]]; then
	echo
	"${report[@]}" table "$work/results.json"
fi
echo "@@CVM-BENCH-JSON-BEGIN@@"
cat "$work/results.json"
echo "@@CVM-BENCH-JSON-END@@"

# Tear down for real (not only in the exit trap), so a failure shows: the
# results are out already.
cvm_cluster_down
# vm-run.sh streams our output with tail -F: give it time to catch the end.
sleep 1
