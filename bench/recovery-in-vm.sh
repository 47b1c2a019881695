#!/bin/bash
# `make bench`'s recovery run, INSIDE the test VM (bench/recovery.sh starts
# it with scripts/vm-run.sh, which has loaded cvm.ko and cvm_target.ko).
#
# Issue 16's goal: client 4k randwrite IOPS during a backfill at least 0.7x
# the same run's IOPS without it.  A cluster of three hosts (brd devices
# behind targets at 127.0.0.1:7001-7003, cvmd on RocksDB) holds a
# replicated(3) volume of BENCH_REC_MIB MiB, written in full; fio runs
# 4k randwrite at iodepth 8 on it for BENCH_RUNTIME seconds (the baseline),
# then two hosts are added (storage4-5), which pins about 60% of the PGs
# and starts the backfill (cvm.ko copies the attached volume), and the same
# fio job runs again at once.  Reported: both runs' IOPS and p99 latency,
# their ratio, and the backfill's duration and throughput (the bytes the
# two new devices hold once the pins are cut, over the time from the map
# change to the cut).  The result is printed as a table and as one JSON
# line between marker lines (stdout is the only way out of the guest).
#
#   BENCH_RUNTIME  seconds per fio run (default 10)
#   BENCH_REC_MIB  volume size in MiB (default 128)
#   BENCH_RESYNC_MIN_RATE  cvm.resync_min_rate for the run (KiB/s; unset:
#                  the module's default; 0: copies never yield)
set -euo pipefail
top=${CVM_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$top"
runtime=${BENCH_RUNTIME:-10}
mib=${BENCH_REC_MIB:-128}
bin=$top/build/userspace
cvmadm=$bin/cvmadm/cvmadm
work=$(mktemp -d /tmp/cvm-bench-recovery.XXXXXX)
export CVM_SOCKET=$work/cvmd.sock

ep() { echo "127.0.0.1:$((7000 + $1))"; }
add_host() {
	"$cvmadm" host add "storage$1" --address "$(ep "$1")" --transport tcp >/dev/null
	"$cvmadm" device add "storage$1" "/dev/ram$(($1 - 1))" --capacity 512M >/dev/null
	"$cvmadm" target listen --address "$(ep "$1")" >/dev/null
	"$cvmadm" target device add "$1" --format >/dev/null
}
pinned() {
	"$cvmadm" --json map show | python3 -c '
import json, sys
print(sum(p.get("pinned", 0) for p in json.load(sys.stdin)["pools"]))'
}
used_new() {
	"$cvmadm" --json device list | python3 -c '
import json, sys
print(sum(d["usage"]["used"] for d in json.load(sys.stdin) if d["id"] in (4, 5) and d["usage"]))'
}
# fio JSON -> "IOPS P99_US"
run_fio() {
	fio --name=rw --filename=/dev/cvm0 --rw=randwrite --bs=4k --iodepth=8 \
		--ioengine=libaio --direct=1 --runtime="$runtime" --time_based \
		--output-format=json --output="$work/fio.json" >/dev/null
	python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]["write"]
print(round(j["iops"]), round(j["clat_ns"]["percentile"]["99.000000"] / 1000))' "$work/fio.json"
}
cleanup() {
	local pid
	"$cvmadm" volume detach r0 >/dev/null 2>&1 || true
	for i in 1 2 3 4 5; do
		"$cvmadm" target device remove "$i" >/dev/null 2>&1 || true
		"$cvmadm" target unlisten --address "$(ep "$i")" >/dev/null 2>&1 || true
	done
	pid=$(cat "$work/pid" 2>/dev/null) && kill "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

if [[ -n ${BENCH_RESYNC_MIN_RATE:-} ]]; then
	echo "$BENCH_RESYNC_MIN_RATE" >/sys/module/cvm/parameters/resync_min_rate
fi
echo "cvm.resync_min_rate: $(cat /sys/module/cvm/parameters/resync_min_rate) KiB/s"
modprobe brd rd_nr=5 rd_size=$((512 << 10))
"$bin/cvmd/cvmd" --db "$work/db" --socket "$CVM_SOCKET" --pid-file "$work/pid" \
	--host storage1 --log-file "$work/cvmd.log" --backfill-every 1
for i in 1 2 3; do add_host "$i"; done
"$cvmadm" pool create rep3 --policy replicated:3 --pg-num 64 >/dev/null
"$cvmadm" volume create r0 --pool rep3 --size "${mib}M" >/dev/null
[[ $("$cvmadm" volume attach r0) == /dev/cvm0 ]]
dd if=/dev/urandom of=/dev/cvm0 bs=1M count="$mib" oflag=direct status=none
echo "recovery bench: $mib MiB rep3 volume written; fio 4k randwrite qd8, $runtime s per run"

read -r base_iops base_p99 < <(run_fio)
echo "  without backfill: $base_iops IOPS, p99 $base_p99 us"
start=$(date +%s.%N)
add_host 4
add_host 5
moving=$(pinned)
read -r rec_iops rec_p99 < <(run_fio)
still=$(pinned)
echo "  during backfill:  $rec_iops IOPS, p99 $rec_p99 us ($moving PGs pinned at the start, $still at the end of the run)"
deadline=$((SECONDS + 600))
while (($(pinned) > 0 && SECONDS < deadline)); do sleep 0.5; done
end=$(date +%s.%N)
left=$(pinned)
bytes=$(used_new)
python3 - "$base_iops" "$base_p99" "$rec_iops" "$rec_p99" "$moving" "$still" \
	"$left" "$bytes" "$start" "$end" "$mib" "$runtime" "${BENCH_COMMIT:-unknown}" \
	"$(cat /sys/module/cvm/parameters/resync_min_rate)" <<'PY'
import json, sys
(base_iops, base_p99, rec_iops, rec_p99, moving, still, left, nbytes) = map(int, sys.argv[1:9])
start, end = float(sys.argv[9]), float(sys.argv[10])
secs = end - start
r = {
    "kind": "recovery", "commit": sys.argv[13], "volume_mib": int(sys.argv[11]),
    "runtime_s": int(sys.argv[12]), "resync_min_rate_kib_s": int(sys.argv[14]),
    "baseline": {"iops": base_iops, "p99_us": base_p99},
    "during_backfill": {"iops": rec_iops, "p99_us": rec_p99},
    "iops_ratio": round(rec_iops / base_iops, 3) if base_iops else None,
    "pgs_moved": moving, "pgs_pinned_after_fio": still, "pgs_left": left,
    "backfill_s": round(secs, 1), "backfill_mib": round(nbytes / 2**20, 1),
    "backfill_mib_s": round(nbytes / 2**20 / secs, 2) if secs > 0 else None,
}
print("@@CVM-BENCH-JSON-BEGIN@@")
print(json.dumps(r))
print("@@CVM-BENCH-JSON-END@@")
print(f"  client IOPS during backfill / without: {r['iops_ratio']} (goal >= 0.7)")
print(f"  backfill: {moving} PGs, {r['backfill_mib']} MiB onto the new devices in "
      f"{r['backfill_s']} s ({r['backfill_mib_s']} MiB/s); {left} PGs left pinned")
PY
