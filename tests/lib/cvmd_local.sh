# shellcheck shell=bash
# One cvmd on RocksDB inside the test VM, its hosts' targets on loopback
# (storageN at 127.0.0.1:700N): what the issue-16 tests (scale_out,
# self_heal, fill_full, disk_errors) share.  The caller sets $work (a scratch
# directory), $cvmd and $cvmadm, and CVMD_ARGS (extra cvmd arguments);
# sourcing exports CVM_SOCKET and traps EXIT to stop cvmd and remove $work.

export CVM_SOCKET=$work/cvmd.sock

start_cvmd() {
	# shellcheck disable=SC2086  # CVMD_ARGS is a list of arguments
	"$cvmd" --db "$work/db" --socket "$CVM_SOCKET" --pid-file "$work/pid" \
		--host storage1 --log-file "$work/cvmd.log" ${CVMD_ARGS:-}
}
stop_cvmd() {
	local pid
	pid=$(cat "$work/pid" 2>/dev/null) || return 0
	kill "$pid"
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	return 1
}
cleanup() {
	stop_cvmd
	rm -rf "$work"
}
trap cleanup EXIT

ep() { echo "127.0.0.1:$((7000 + $1))"; }
# add_host N [CAPACITY]: host storageN with /dev/ram(N-1) (default 128M).
add_host() {
	"$cvmadm" host add "storage$1" --address "$(ep "$1")" --transport tcp &&
	"$cvmadm" device add "storage$1" "/dev/ram$(($1 - 1))" --capacity "${2:-128M}"
}
# serve_host N: storageN's target listens and serves its device.
serve_host() {
	"$cvmadm" target listen --address "$(ep "$1")" &&
	"$cvmadm" target device add "$1" --format
}
# device_field ID FIELD: a field of device ID as `device list --json` has it.
device_field() {
	"$cvmadm" --json device list | python3 -c '
import json, sys
d = [d for d in json.load(sys.stdin) if d["id"] == int(sys.argv[1])][0]
print(d[sys.argv[2]])' "$1" "$2"
}
# PGs the current map places on device I (pinned ones included).
pgs_on() {
	"$cvmadm" --json map show | python3 -c '
import json, sys
print(sum(p["pgs_per_device"].get(sys.argv[1], 0) for p in json.load(sys.stdin)["pools"]))' "$1"
}
# same DEV MIB FILE: the first MIB MiB of DEV read directly equal FILE.
same() { cmp <(dd if="$1" bs=1M count="$2" iflag=direct status=none) "$3"; }
# PGs pinned in the current map, over all pools.
pinned() {
	"$cvmadm" --json map show | python3 -c '
import json, sys
print(sum(p.get("pinned", 0) for p in json.load(sys.stdin)["pools"]))'
}
# wait_for SECS EXPR: polls until EXPR (evaluated) holds; on a timeout shows
# the map, the devices, recovery status and cvmd's last lines about them.
wait_for() {
	local start=$SECONDS
	while ((SECONDS - start < $1)); do
		eval "$2" && return 0
		sleep 0.5
	done
	echo "after $1 s still not: $2"
	"$cvmadm" map show
	"$cvmadm" device list
	"$cvmadm" recovery status
	grep -E "backfill|recovery|marked|full" "$work/cvmd.log" | tail -n 8
	return 1
}
