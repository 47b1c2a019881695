#!/bin/bash
# `make bench`, the part that runs INSIDE the test VM (bench/run.sh starts
# it with scripts/vm-run.sh, which has loaded cvm.ko and cvm_target.ko).
#
# Runs the same fio jobs against several block devices in this one VM, so
# their figures can be compared, and prints the results as JSON between two
# marker lines on stdout: the guest's root is a tmpfs overlay, so stdout is
# the only way out; bench/run.sh saves it under bench/results/.  The JSON
# is printed again after every device (the last block is the complete
# one), so what was measured survives a guest that dies later on.
#
# A device whose setup fails (or whose fio job fails) is reported with the
# reason and no figures; the other devices still run.
#
#   BENCH_RUNTIME  seconds per fio job (default 5)
#   BENCH_REPEAT   runs per (device, job); the median is reported (default 3)
#   BENCH_DEVICES  which devices, in order (default: all of DEVICES below)
#   BENCH_TABLE    0: do not print the tables here (bench/run.sh does)
#   BENCH_COMMIT   recorded in the JSON (bench/run.sh passes the checkout's)
#   BENCH_PERF     a job name (4k-randread-qd1, ...): after a device's runs,
#                  run that job once more under `perf record -a -g` (the
#                  whole guest, kernel and fio) and print the hottest
#                  symbols, by self time and with callees, as lines
#                  "   perf: ...".  Its figures are not in the results.
#
# bench/run-in-vm.sh --list (anywhere) prints the default device list,
# --jobs the job names.
set -euo pipefail
top=${CVM_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$top"
# cvm_load, cvm_connected, cvm_rdma_up, cvm_addr: shared with the VM tests.
# shellcheck source=tests/lib/cvm_vm.sh
. "$top/tests/lib/cvm_vm.sh"

# --- what is measured -------------------------------------------------------
# A device is a name here plus functions setup_NAME / teardown_NAME (dashes
# become underscores).  setup_NAME runs in a subshell under `set -e`: it
# sets DEV_PATH (the block device to measure) and DEV_DESC (one line for
# the table), and any failing command fails the device.  teardown_NAME
# undoes it; it must be idempotent and cope with a half-done setup (it runs
# after a failed setup and again from the exit trap).  Every device sits
# on brd RAM disks, the same kind the raw baseline measures.
DEVICES=(raw nvmf-rdma nvmf-tcp md-raid1-rdma
	cvm-rep1-rdma cvm-rep1-tcp cvm-rep3-rdma cvm-rep3-tcp
	md-raid6-rdma cvm-ec42-rdma cvm-ec42-nojournal-rdma)
# NUM/DEN pairs of device names; a ratio whose devices were not both asked
# for is left out, one whose devices failed shows "-".
RATIOS=(cvm-rep1-rdma/nvmf-rdma cvm-rep1-tcp/nvmf-tcp
	cvm-rep3-rdma/md-raid1-rdma cvm-ec42-rdma/md-raid6-rdma
	cvm-ec42-rdma/cvm-ec42-nojournal-rdma
	cvm-rep1-tcp/raw cvm-rep3-tcp/raw nvmf-rdma/nvmf-tcp)
# name rw bs iodepth
JOBS=(
	"4k-randread-qd1 randread 4k 1"
	"4k-randread-qd32 randread 4k 32"
	"4k-randwrite-qd1 randwrite 4k 1"
	"4k-randwrite-qd32 randwrite 4k 32"
	"128k-read-qd16 read 128k 16"
	"128k-write-qd16 write 128k 16"
)
# RAM disks, 256 MiB each (allocated on write): ram0..2 the cvm targets,
# ram3 raw, ram4 nvmf-tcp, ram5 nvmf-rdma, ram6..8 the md-raid1-rdma legs,
# ram9..11 the other three cvm targets of cvm-ec42-rdma, ram12..17 the
# md-raid6-rdma legs.
BRD_COUNT=18
# EC stripe unit of cvm-ec42-rdma and chunk of md-raid6-rdma: the same
# geometry for both, so a 128k write is whole stripes for both.
EC_UNIT_KIB=${BENCH_EC_UNIT_KIB:-4}
ALL_DEVICES=("${DEVICES[@]}")

if [[ "${1:-}" == --list ]]; then
	echo "${DEVICES[*]}"
	exit 0
fi
if [[ "${1:-}" == --jobs ]]; then
	for j in "${JOBS[@]}"; do echo "${j%% *}"; done
	exit 0
fi
if [[ -z "${CVM_IN_VM:-}" ]]; then
	echo "bench/run-in-vm.sh runs inside the test VM: use 'make bench'" >&2
	exit 2
fi

RUNTIME=${BENCH_RUNTIME:-5}
REPEAT=${BENCH_REPEAT:-3}
[[ "$RUNTIME" =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_RUNTIME wants seconds" >&2; exit 2; }
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_REPEAT wants a count" >&2; exit 2; }
SIZE_MIB=128	# the region every job works in, on every device
VOL_BYTES=$((256 << 20))	# cvm volumes: as big as one backing RAM disk

if [[ -n "${BENCH_DEVICES:-}" ]]; then
	read -r -a DEVICES <<<"$BENCH_DEVICES"
fi

ig=(python3 "$top/tests/vm/lib/initiator_genl.py")
tg=(python3 "$top/tests/vm/lib/target_genl.py")
bg=(python3 "$top/bench/cvm_genl.py")
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

# --- NVMe-oF: the kernel's nvmet, each export on its own port ----------------
NQN_BASE=nqn.2024-01.io.cvm:bench
NVMET=/sys/kernel/config/nvmet

# nvmet_export TRTYPE PORT_ID ADDR SVCID NQN DISK: DISK as namespace 1 of
# subsystem NQN, served on a new nvmet port PORT_ID.
nvmet_export() {
	local trtype=$1 addr=$3 svcid=$4 nqn=$5 disk=$6
	local sub=$NVMET/subsystems/$5 port=$NVMET/ports/$2
	# nvmet creates its configfs tree when loaded: load it before mounting.
	modprobe nvmet
	modprobe "nvmet-$trtype"
	modprobe "nvme-$trtype"
	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
	mkdir "$sub"
	echo 1 >"$sub/attr_allow_any_host"
	mkdir "$sub/namespaces/1"
	echo -n "$disk" >"$sub/namespaces/1/device_path"
	echo 1 >"$sub/namespaces/1/enable"
	mkdir "$port"
	echo "$trtype" >"$port/addr_trtype"
	echo ipv4 >"$port/addr_adrfam"
	echo "$addr" >"$port/addr_traddr"
	echo "$svcid" >"$port/addr_trsvcid"
	# The link enables the port: nvmet-tcp or nvmet-rdma starts listening.
	ln -s "$sub" "$port/subsystems/$nqn"
}

# nvmf_connect TRTYPE ADDR SVCID NQN: connect, print the namespace's disk.
nvmf_connect() {
	local b i dev=
	nvme connect -t "$1" -a "$2" -s "$3" -n "$4" >/dev/null || return
	# The namespace's disk (the multipath head when native multipath is on)
	# names the subsystem it belongs to; the per-path nvmeXcYnZ are hidden.
	for ((i = 0; i < 50; i++)); do
		for b in /sys/block/nvme*; do
			[[ "${b##*/}" =~ ^nvme[0-9]+n[0-9]+$ ]] || continue
			[[ "$(cat "$b/device/subsysnqn" 2>/dev/null)" == "$4" ]] || continue
			[[ -b /dev/${b##*/} ]] && dev=/dev/${b##*/}
		done
		[[ -n "$dev" ]] && break
		sleep 0.2
	done
	[[ -n "$dev" ]] || { echo "bench: no block device for $4" >&2; return 1; }
	echo "$dev"
}

# nvmet_unexport PORT_ID NQN: disconnect and undo nvmet_export, as far as
# it got.  Idempotent.
nvmet_unexport() {
	local sub=$NVMET/subsystems/$2 port=$NVMET/ports/$1
	if grep -qsx "$2" /sys/class/nvme/*/subsysnqn; then
		nvme disconnect -n "$2" >/dev/null
	fi
	[[ -L "$port/subsystems/$2" ]] && rm "$port/subsystems/$2"
	[[ -d "$port" ]] && rmdir "$port"
	if [[ -d "$sub/namespaces/1" ]]; then
		echo 0 >"$sub/namespaces/1/enable"
		rmdir "$sub/namespaces/1"
	fi
	[[ -d "$sub" ]] && rmdir "$sub"
	return 0
}

# --- nvmf-tcp: NVMe-oF/TCP over loopback -------------------------------------
setup_nvmf_tcp() {
	ip link set lo up
	nvmet_export tcp 1 127.0.0.1 4420 "$NQN_BASE-ram4" /dev/ram4
	DEV_PATH=$(nvmf_connect tcp 127.0.0.1 4420 "$NQN_BASE-ram4")
	DEV_DESC="NVMe-oF/TCP over loopback to /dev/ram4 (nvmet, $DEV_PATH)"
}
teardown_nvmf_tcp() { nvmet_unexport 1 "$NQN_BASE-ram4"; }

# --- nvmf-rdma: NVMe-oF/RDMA over Soft-RoCE ----------------------------------
# The guest's own address on rxe0 (cvm_rdma_up), as cvm-rep1-rdma's target.
setup_nvmf_rdma() {
	cvm_rdma_up
	nvmet_export rdma 2 10.99.0.1 4420 "$NQN_BASE-ram5" /dev/ram5
	DEV_PATH=$(nvmf_connect rdma 10.99.0.1 4420 "$NQN_BASE-ram5")
	DEV_DESC="NVMe-oF/RDMA over Soft-RoCE (rxe0) to /dev/ram5 (nvmet, $DEV_PATH)"
}
teardown_nvmf_rdma() { nvmet_unexport 2 "$NQN_BASE-ram5"; }

# --- md-raid1-rdma: md raid1 over three NVMe-oF/RDMA namespaces --------------
# Three subsystems on three addresses, 10.99.0.1-3:4421 (ports 3-5), like
# cvm-rep3-rdma's three targets: the replication cvm does in the kernel
# initiator, done by md over three ordinary remote disks.
MD=/dev/md100

setup_md_raid1_rdma() {
	local i legs=()
	cvm_rdma_up
	modprobe raid1
	for i in 0 1 2; do
		nvmet_export rdma $((3 + i)) "10.99.0.$((i + 1))" 4421 \
			"$NQN_BASE-ram$((6 + i))" "/dev/ram$((6 + i))"
		legs+=("$(nvmf_connect rdma "10.99.0.$((i + 1))" 4421 \
			"$NQN_BASE-ram$((6 + i))")")
	done
	# The legs are fresh RAM disks: no resync (--assume-clean) and no
	# write-intent bitmap, so md does no I/O of its own during the jobs.
	mdadm --create "$MD" --level=1 --raid-devices=3 --assume-clean \
		--bitmap=none --metadata=1.2 --run "${legs[@]}" 2>&1 |
		grep -v '^mdadm: array .* started\.$' >&2 || true
	if [[ ! -b "$MD" ]] || ! grep -q "^${MD##*/} : active raid1" /proc/mdstat; then
		echo "bench: $MD did not start" >&2
		return 1
	fi
	DEV_PATH=$MD
	DEV_DESC="md raid1 over 3 NVMe-oF/RDMA namespaces (10.99.0.1-3, /dev/ram6..8; ${legs[*]})"
}

teardown_md_raid1_rdma() {
	local i
	if [[ -e /sys/block/${MD##*/}/md ]]; then
		mdadm --stop "$MD" 2>&1 | grep -v '^mdadm: stopped ' >&2
	fi
	for i in 0 1 2; do
		nvmet_unexport $((3 + i)) "$NQN_BASE-ram$((6 + i))"
	done
}

# --- md-raid6-rdma: md raid6 over six NVMe-oF/RDMA namespaces --------------
# Six subsystems, two on each of 10.99.0.1-3 (ports 6..11, 4422 and 4423),
# like cvm-ec42-rdma's six targets: the parity cvm computes in the kernel
# initiator, done by md over six ordinary remote disks.
MD6=/dev/md101

setup_md_raid6_rdma() {
	local i legs=()
	cvm_rdma_up
	modprobe raid456
	for i in 0 1 2 3 4 5; do
		nvmet_export rdma $((6 + i)) "10.99.0.$((i % 3 + 1))" \
			$((4422 + i / 3)) "$NQN_BASE-ram$((12 + i))" \
			"/dev/ram$((12 + i))"
		legs+=("$(nvmf_connect rdma "10.99.0.$((i % 3 + 1))" \
			$((4422 + i / 3)) "$NQN_BASE-ram$((12 + i))")")
	done
	# Fresh RAM disks: no initial resync and no bitmap, as for raid1.
	mdadm --create "$MD6" --level=6 --raid-devices=6 --assume-clean \
		--chunk="$EC_UNIT_KIB" --bitmap=none --metadata=1.2 --run \
		"${legs[@]}" 2>&1 | grep -v '^mdadm: array .* started\.$' >&2 || true
	if [[ ! -b "$MD6" ]] || ! grep -q "^${MD6##*/} : active raid6" /proc/mdstat; then
		echo "bench: $MD6 did not start" >&2
		return 1
	fi
	DEV_PATH=$MD6
	DEV_DESC="md raid6 (chunk ${EC_UNIT_KIB}K) over 6 NVMe-oF/RDMA namespaces (10.99.0.1-3, /dev/ram12..17; ${legs[*]})"
}

teardown_md_raid6_rdma() {
	local i
	if [[ -e /sys/block/${MD6##*/}/md ]]; then
		mdadm --stop "$MD6" 2>&1 | grep -v '^mdadm: stopped ' >&2
	fi
	for i in 0 1 2 3 4 5; do
		nvmet_unexport $((6 + i)) "$NQN_BASE-ram$((12 + i))"
	done
}

# --- cvm: three targets on ram0..2, over tcp or rdma --------------------------
# Set up as tests/vm/initiator_fio.sh does: three "hosts" of one device,
# map epoch 1 with pool 1 replicated(1) and pool 3 replicated(3).  Over tcp
# the targets listen on 127.0.0.1:7001-7003, over rdma on
# 10.99.0.1-3:7001-7003 (cvm_addr).  cvm.ko's map names one transport, so
# going from one to the other takes the cluster down and brings it up
# afresh: reloaded cvm.ko, reformatted targets.  Setups run in subshells:
# the cluster's state is kept in a file, "TRANSPORT up" once it works.
cvm_state() { cat "$work/cvm-cluster" 2>/dev/null || true; }

# cvm_cluster_up TRANSPORT [ec]: with "ec", six targets (ram0..2 and
# ram9..11 as devices 3..5, two per address over rdma) and pool 5 ec(4,2).
cvm_cluster_up() {
	local transport=$1 mode=${2:-} before i n=3 addr ends=() ec=()
	[[ "$(cvm_state)" == "$transport$mode up" ]] && return 0
	cvm_cluster_down
	echo "$transport$mode starting" >"$work/cvm-cluster"
	if [[ "$transport" == rdma ]]; then
		cvm_rdma_up
	fi
	if [[ "$mode" == ec ]]; then
		n=6
		ec=(--ec 4,2)
	fi
	cvm_load cvm
	before=$(dmesg | grep -c ': connected$' || true)
	for ((i = 0; i < n; i++)); do
		# force: the disk holds the store of the other transport's cluster.
		"${tg[@]}" add "$i" "/dev/ram$((i < 3 ? i : i + 6))" format force
		addr=$(CVM_TRANSPORT=$transport cvm_addr $((i % 3)))
		"${bg[@]}" listen "$transport" "$addr" $((7001 + i))
		ends+=("$addr:$((7001 + i))")
	done
	"${bg[@]}" map-set 1 "$transport" "${ec[@]}" "${ends[@]}"
	cvm_connected $((before + n))
	echo "$transport$mode up" >"$work/cvm-cluster"
}

# Idempotent, and copes with a half-done cvm_cluster_up.  Also runs under
# set -e (from cvm_cluster_up): what may fail is guarded.
cvm_cluster_down() {
	local i t
	[[ -n "$(cvm_state)" ]] || return 0
	if [[ -d /sys/module/cvm ]]; then
		# As the tests do: cvm.ko goes before the targets it is connected to.
		for i in 1 3 5; do
			"${ig[@]}" detach "$i" --force >/dev/null 2>&1 || true
		done
		rmmod cvm || return
	fi
	for i in 0 1 2 3 4 5; do
		for t in tcp rdma; do
			"${tg[@]}" unlisten "$(CVM_TRANSPORT=$t cvm_addr $((i % 3)))" \
				$((7001 + i)) 2>/dev/null || true
		done
		"${tg[@]}" remove "$i" 2>/dev/null || true
	done
	rm -f "$work/cvm-cluster"
	return 0
}

# cvm_attach TRANSPORT ID POOL NAME [attach args]: attach volume ID of
# POOL, set DEV_PATH.  Pool 5 (EC) needs the six-target cluster.
cvm_attach() {
	local minor i
	cvm_cluster_up "$1" "$( (($3 == 5)) && echo ec)"
	minor=$("${ig[@]}" attach "$2" "$3" "$VOL_BYTES" --name "$4" "${@:5}")
	DEV_PATH=/dev/cvm$minor
	# devtmpfs makes the node; give it a moment.
	for ((i = 0; i < 50; i++)); do
		[[ -b "$DEV_PATH" ]] && return 0
		sleep 0.1
	done
	echo "bench: $DEV_PATH missing" >&2
	return 1
}

# cvm_detach ID: detach when attached.
cvm_detach() {
	[[ -d /sys/module/cvm ]] || return 0
	"${ig[@]}" list 2>/dev/null | awk -v id="$1" '$1 == id { f = 1 } END { exit !f }' ||
		return 0
	"${ig[@]}" detach "$1"
}

setup_cvm_rep1_tcp() {
	cvm_attach tcp 1 1 r1
	DEV_DESC="cvm replicated(1) over loopback TCP, 3 targets on ram0..2 ($DEV_PATH)"
}
teardown_cvm_rep1_tcp() { cvm_detach 1; }

setup_cvm_rep3_tcp() {
	cvm_attach tcp 3 3 r3
	DEV_DESC="cvm replicated(3) over loopback TCP, 3 targets on ram0..2 ($DEV_PATH)"
}
teardown_cvm_rep3_tcp() { cvm_detach 3; }

setup_cvm_rep1_rdma() {
	cvm_attach rdma 1 1 r1
	DEV_DESC="cvm replicated(1) over RDMA (rxe0), 3 targets on ram0..2 at 10.99.0.1-3 ($DEV_PATH)"
}
teardown_cvm_rep1_rdma() { cvm_detach 1; }

setup_cvm_ec42_rdma() {
	cvm_attach rdma 5 5 ec42 --stripe-unit $((EC_UNIT_KIB << 10))
	DEV_DESC="cvm ec(4,2), stripe unit ${EC_UNIT_KIB}K, over RDMA (rxe0), 6 targets on ram0..2,9..11 at 10.99.0.1-3 ($DEV_PATH)"
}
teardown_cvm_ec42_rdma() { cvm_detach 5; }

# The same volume (its objects are already allocated on the RAM disks)
# without the stripe journal: what closing the write hole costs.
setup_cvm_ec42_nojournal_rdma() {
	echo 0 >/sys/module/cvm/parameters/ec_journal
	cvm_attach rdma 5 5 ec42nj --stripe-unit $((EC_UNIT_KIB << 10))
	DEV_DESC="cvm ec(4,2) as above, stripe journal off (cvm.ec_journal=0: unsafe) ($DEV_PATH)"
}
teardown_cvm_ec42_nojournal_rdma() {
	cvm_detach 5
	[[ ! -d /sys/module/cvm ]] || echo 1 >/sys/module/cvm/parameters/ec_journal
}

setup_cvm_rep3_rdma() {
	cvm_attach rdma 3 3 r3
	DEV_DESC="cvm replicated(3) over RDMA (rxe0), 3 targets on ram0..2 at 10.99.0.1-3 ($DEV_PATH)"
}
teardown_cvm_rep3_rdma() { cvm_detach 3; }

# --- the run ----------------------------------------------------------------
work=$(mktemp -d /tmp/cvm-bench.XXXXXX)
current=

cleanup() {
	local rc=$? d
	set +e
	if [[ -n "$current" ]]; then
		"teardown_${current//-/_}"
	fi
	for d in "${DEVICES[@]}"; do
		"teardown_${d//-/_}" >/dev/null 2>&1
	done
	cvm_cluster_down
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT

for d in "${DEVICES[@]}"; do
	declare -F "setup_${d//-/_}" >/dev/null ||
		{ echo "bench: unknown device '$d' (known: ${ALL_DEVICES[*]})" >&2; exit 2; }
done

ratio_args=()
for r in "${RATIOS[@]}"; do ratio_args+=(--ratio "$r"); done

# assemble_results COMPLETE: the results so far into results.json.
assemble_results() {
	"${report[@]}" assemble "$work" "${ratio_args[@]}" \
		--requested "${DEVICES[*]}" --complete "$1" \
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
}

# emit_results: results.json between the markers bench/run.sh looks for.
emit_results() {
	echo "@@CVM-BENCH-JSON-BEGIN@@"
	cat "$work/results.json"
	echo "@@CVM-BENCH-JSON-END@@"
}

# Module parameters only apply to a fresh load.
rmmod brd 2>/dev/null || true
modprobe brd rd_nr=$BRD_COUNT rd_size=$((256 << 10))
: >"$work/devices.tsv"
: >"$work/jobs.tsv"
for j in "${JOBS[@]}"; do
	read -r name rw bs qd <<<"$j"
	printf '%s\t%s\t%s\t%s\n' "$name" "$rw" "$bs" "$qd" >>"$work/jobs.tsv"
done

# fio_args NAME RW BS QD: sets fio_args to one job on $DEV_PATH, as every
# device gets it (the measured runs and the profiled one).
fio_args() {
	fio_args=(--name="$1" --filename="$DEV_PATH" --rw="$2" --bs="$3"
		--iodepth="$4" --ioengine=libaio --direct=1 --offset=0
		--size=${SIZE_MIB}M --time_based --runtime="$RUNTIME")
}

# profile_job NAME: job NAME on $DEV_PATH once more, the whole guest under
# perf (call graphs), and the report's top lines: where the CPU time of
# this device's I/O path goes (kernel symbols include the modules').
profile_job() {
	local j name rw bs qd data=$work/$current/perf.data
	for j in "${JOBS[@]}"; do
		read -r name rw bs qd <<<"$j"
		[[ "$name" == "$1" ]] && break
	done
	[[ "$name" == "$1" ]] || return
	log "   perf: $name under perf record -a -g, ${RUNTIME}s"
	fio_args "$name" "$rw" "$bs" "$qd"
	perf record -q -a -g -o "$data" -- fio "${fio_args[@]}" \
		--output-format=terse >"$work/$current/perf.fio" 2>&1 || return
	# terse v3: field 8 is read IOPS, 49 write IOPS.
	log "   perf: fio under perf: $(awk -F';' '{ print "read " $8 " IOPS, write " $49 " IOPS" }' "$work/$current/perf.fio")"
	# Self time, then time including callees (what a cvm function costs
	# with everything it calls).
	log "   perf: self"
	perf report -i "$data" --stdio --no-children --sort sym -g none \
		--percent-limit 0.7 2>/dev/null |
		grep -v -e '^#' -e '^$' | head -n 45 | sed 's/^/   perf: /'
	log "   perf: with callees"
	perf report -i "$data" --stdio --children --sort sym -g none \
		--percent-limit 3 2>/dev/null |
		grep -v -e '^#' -e '^$' | head -n 60 | sed 's/^/   perf: /'
	rm -f "$data"
}

log "bench: kernel $(uname -r), ${RUNTIME}s per job, repeat $REPEAT, ${SIZE_MIB} MiB region"
log "bench: devices ${DEVICES[*]}"
start=$SECONDS
for d in "${DEVICES[@]}"; do
	log "== $d"
	dev_start=$SECONDS
	f=${d//-/_}
	current=$d
	status=ok pre=
	DEV_PATH='' DEV_DESC=''
	rm -f "$work/setup.env"
	# A subshell under set -e: any failing step fails the setup (in an
	# `if` or `||`, bash would ignore set -e inside the function).
	set +e
	(
		set -eE
		shopt -s inherit_errexit
		# Name the failing step; not from inside command substitutions,
		# where a test that is allowed to fail (grep -c of 0) trips it too.
		# shellcheck disable=SC2034 # read by the trap
		level=$BASH_SUBSHELL
		trap '((BASH_SUBSHELL > level)) ||
			echo "bench: setup step failed: $BASH_COMMAND" >&2' ERR
		"setup_$f"
		printf 'DEV_PATH=%q\nDEV_DESC=%q\n' "$DEV_PATH" "$DEV_DESC" >"$work/setup.env"
	) 2>"$work/setup.err"
	rc=$?
	set -e
	sed 's/^/   /' "$work/setup.err" >&2
	if ((rc == 0)) && [[ -s "$work/setup.env" ]]; then
		# shellcheck source=/dev/null
		. "$work/setup.env"
		log "   $DEV_DESC"
	else
		# The last thing the setup said, else the step that failed.
		why=$(grep -v -e '^[[:space:]]*$' -e '^bench: setup step failed: ' \
			"$work/setup.err" | tail -n 1 || true)
		[[ -n "$why" ]] || why=$(sed -n '1s/^bench: setup step failed: /at: /p' "$work/setup.err")
		status="setup failed: ${why:-exit status $rc}"
		log "   $status"
	fi

	if [[ "$status" == ok ]]; then
		# Write the whole region once, so thin allocation (cvm) and
		# first-touch page allocation (brd) are not part of any measured
		# write.
		t0=$(date +%s%N)
		if dd if=/dev/zero of="$DEV_PATH" bs=1M count=$SIZE_MIB oflag=direct status=none; then
			ms=$((($(date +%s%N) - t0) / 1000000))
			pre=$((ms / 1000)).$(printf '%03d' $((ms % 1000)))
			log "   precondition: ${SIZE_MIB} MiB written in ${pre}s"
		else
			status="precondition write failed"
			log "   $status"
		fi
	fi

	# Round-robin: all jobs once, then all again, so that a burst of load
	# on the host spoils one run of several jobs rather than every run of
	# one job (the median drops it).
	mkdir -p "$work/$d"
	for ((rep = 1; rep <= REPEAT; rep++)); do
		[[ "$status" == ok ]] || break
		((REPEAT == 1)) || log "   run $rep of $REPEAT"
		outs=()
		for j in "${JOBS[@]}"; do
			read -r name rw bs qd <<<"$j"
			out=$work/$d/$name.$rep.json
			fio_args "$name" "$rw" "$bs" "$qd"
			# A stuck device would hang fio; the guest's hung-task panic
			# (60 s) usually ends the run first, this is the fallback.
			if ! timeout -k 10 $((RUNTIME + 120)) fio "${fio_args[@]}" \
				--lat_percentiles=1 --output-format=json --output="$out"; then
				status="fio failed: $name, run $rep"
				[[ -f "$out" ]] && sed 's/^/   fio: /' "$out" | tail -n 20 >&2
				rm -f "$out"
				break
			fi
			outs+=("$out" "$rw")
		done
		# One python start per round, not per run: slow under TCG.
		if ((${#outs[@]})) && ! "${report[@]}" summary "${outs[@]}"; then
			[[ "$status" == ok ]] && status="fio job error in run $rep"
		fi
		[[ "$status" == ok ]] || log "   $status"
	done

	if [[ "$status" == ok && -n "${BENCH_PERF:-}" ]]; then
		profile_job "$BENCH_PERF" || log "   perf: profiling failed"
	fi

	# After a failed setup too: it undoes what the setup got done.
	"teardown_$f" || log "   teardown failed (exit status $?)"
	current=
	log "   $((SECONDS - dev_start)) s; memory available: $(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo) MiB"
	printf '%s\t%s\t%s\t%s\t%s\n' "$d" "${DEV_PATH:--}" "$DEV_DESC" "$pre" "$status" \
		>>"$work/devices.tsv"
	assemble_results 0
	emit_results
done

# Tear down before the final results (not only in the exit trap), so a
# failure shows.
cvm_cluster_down || log "bench: cvm cluster teardown failed"
log "bench: $((SECONDS - start)) s for ${#DEVICES[@]} devices"

assemble_results 1
if [[ "${BENCH_TABLE:-1}" != 0 ]]; then
	echo
	"${report[@]}" table "$work/results.json"
fi
emit_results
# vm-run.sh streams our output with tail -F: give it time to catch the end.
sleep 1
