# shellcheck shell=bash
# One cvmd on RocksDB inside the test VM, its hosts' targets on loopback
# (storageN at 127.0.0.1:700N): what the issue-16 tests (scale_out,
# self_heal, fill_full, disk_errors) share.  The caller sets $work (a scratch
# directory), $cvmd and $cvmadm, and CVMD_ARGS (extra cvmd arguments);
# sourcing exports CVM_SOCKET and traps EXIT to stop cvmd and remove $work.

export CVM_SOCKET=$work/cvmd.sock
# cvm-wire speaks for cvmd's host, storage1 (the first host added, id 1),
# with its secret: RocksDB's cvmd is the agent and may read every volume.
export CVM_WIRE_SECRET_FILE=$work/db/host.secret CVM_WIRE_HOST_ID=1

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
# volume_ids NAME: "ID ATTACH_EPOCH OBJECT_SIZE STRIPE_UNIT" of a volume.
volume_ids() {
	"$cvmadm" --json volume show "$1" | python3 -c '
import json, sys
v = json.load(sys.stdin)
print(v["id"], v["attach_epoch"], v["object_size"], v["stripe_unit"])'
}
# list I VOLUME: "object shard" of each shard of VOLUME device I holds (the
# EC journal's object, 2^62, left out).
list() {
	local vid epoch
	read -r vid epoch _ < <(volume_ids "$2")
	"$bin/tools/cvm-wire" "$(ep "$1")" list --device "$1" --volume "$vid" \
		--attach-epoch "$epoch" | awk '$1 < 4611686018427387904 { print $1, $2 }' | sort
}
# shards_total VOLUME DEVICE...: object shards of VOLUME the DEVICEs hold.
shards_total() {
	local name=$1 d
	shift
	for d in "$@"; do list "$d" "$name"; done | wc -l
}
# replicas_equal VOLUME MIB COPIES DEVICE...: every object of the first MIB
# MiB of a replicated VOLUME is held by exactly COPIES of the DEVICEs, and
# their bytes are equal (CRC32C of each MiB, read from each device).
replicas_equal() {
	local name=$1 mib=$2 copies=$3 vid osize off d bad
	shift 3
	read -r vid _ osize _ < <(volume_ids "$name")
	for d in "$@"; do
		list "$d" "$name" | awk '{ print $1 }' >"$work/held.$d"
		for ((off = 0; off < osize; off += 1 << 20)); do
			"$bin/tools/cvm-wire" "$(ep "$d")" sums --device "$d" \
				--volume "$vid" --object 0 --count $(((mib << 20) / osize)) \
				--offset "$off" --length $((1 << 20)) || return 1
		done | awk 'NR == FNR { held[$1] = 1; next }
			held[$1] { crc[$1] = crc[$1] " " $2 }
			END { for (o in crc) print o, d, crc[o] }' d="$d" "$work/held.$d" -
	done | awk -v want="$copies" '
		{ n[$1]++; c = $0; sub(/^[^ ]+ [^ ]+ /, "", c)
		  if (!($1 in crc)) crc[$1] = c; else if (crc[$1] != c) diff[$1] = 1 }
		END { bad = 0
		      for (o in n) if (n[o] != want || diff[o]) {
			print "object " o ": " n[o] " copies" (diff[o] ? ", unequal" : ""); bad++ }
		      print length(n) " objects checked, " bad " bad"; exit bad > 0 }'
}
# parity_isal VOLUME MIB K M DEVICE...: every object of the first MIB MiB
# of an ec(K,M) VOLUME has its K+M shards on the DEVICEs (one copy each),
# with the parity ISA-L computes.
parity_isal() {
	local name=$1 mib=$2 k=$3 m=$4 vid osize unit o s d files bad=0
	shift 4
	read -r vid _ osize unit < <(volume_ids "$name")
	local shard_len=$(((osize + k * unit - 1) / (k * unit) * unit))
	local count=$(((mib << 20) / osize))
	rm -rf "$work/shards" && mkdir -p "$work/shards"
	for d in "$@"; do
		"$bin/tools/cvm-wire" "$(ep "$d")" dump --device "$d" --volume "$vid" \
			--object 0 --count "$count" --shards $((k + m)) --length "$shard_len" \
			--out "$work/shards" >/dev/null || return 1
	done
	for ((o = 0; o < count; o++)); do
		files=()
		for ((s = 0; s < k + m; s++)); do
			[[ -e "$work/shards/o$o.s$s" ]] || : >"$work/shards/o$o.s$s"
			files+=("$work/shards/o$o.s$s")
		done
		"$bin/tools/cvm-ec-check" "$k" "$m" "$unit" "${files[@]}" >/dev/null ||
			{ echo "object $o: parity unlike ISA-L's"; bad=$((bad + 1)); }
	done
	echo "$count objects checked, $bad with parity unlike ISA-L's"
	((bad == 0))
}
