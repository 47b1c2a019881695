#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Erasure-coded volumes end to end, in one VM; sourced by tests/vm/ec*.sh
# with EC_LAYOUT="K,M" set.  cvm_target.ko serves seven brd devices behind
# seven listeners (one host each), the map has pool 5 ec(K,M), and cvm.ko
# attaches a volume of it:
#
#  1. healthy: fio randwrite with mixed block sizes (partial stripes:
#     read-modify-write) and 128k sequential writes (full stripes), both
#     with crc32c verify; then every object's parity, read back shard by
#     shard with cvm-wire, must equal ISA-L's (cvm-ec-check);
#  2. one device down (its listener dropped): the data verifies through
#     degraded reads, and a degraded write + verify pass works;
#  3. m devices down: the same; one more down: I/O errors, never wrong data;
#  4. the devices come back: the initiator rebuilds the shards they missed
#     (stale count 0), parity is ISA-L's again, and with m *other* devices
#     down everything still verifies: the rebuilt shards are right.
set -u

top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
. "$top/tests/lib/check.sh"
. "$top/tests/lib/cvm_vm.sh"
require_vm

NDEV=7
OBJ=$((1 << 20))		# object size
VOL_SIZE=$((8 << 20))		# 8 objects
UNIT=4096
ig=(python3 "$top/tests/vm/lib/initiator_genl.py")
tg=(python3 "$top/tests/vm/lib/target_genl.py")
wire=$top/build/userspace/tools/cvm-wire
eccheck=$top/build/userspace/tools/cvm-ec-check
tmp=$(mktemp -d)
epoch=0
vol=10

stale() { "${ig[@]}" stale; }

wait_stale_zero() {
	local start=$SECONDS
	while ((SECONDS - start < $1)); do
		(($(stale) == 0)) && { echo "stale 0 after $((SECONDS - start)) s"; return 0; }
		sleep 0.5
	done
	echo "stale count still $(stale) after $1 s"
	dmesg | grep cvm | tail -n 20
	return 1
}

# wait_conns N: cvm.ko has N live connections (PATH_UP after a listen).
wait_conns() {
	local i
	for ((i = 0; i < 100; i++)); do
		cvm_connected "$1" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	cvm_connected "$1"
}

down() { "${tg[@]}" unlisten 127.0.0.1 "$(cvm_port "$1")" --transport tcp; }
up() { "${tg[@]}" listen 127.0.0.1 "$(cvm_port "$1")" --transport tcp; }

# fio_job NAME RW BS OFFSET [extra fio args]: write + verify (or, with
# --verify_only, verify) 8 MiB at OFFSET.  Random jobs use [0, 8M), the
# sequential one [8M, 16M), so each region's last writer can be verified.
fio_job() {
	local name=$1 rw=$2 bs=$3 off=$4
	shift 4
	[[ $bs == *-* ]] || bs=$bs-$bs
	fio --name="$name" --filename=/dev/cvm0 --rw="$rw" --bsrange="$bs" \
		--offset="$off" --size=$((VOL_SIZE / 2)) \
		--direct=1 --iodepth=8 --ioengine=libaio --randseed=42 \
		--verify=crc32c --verify_fatal=1 "$@" \
		--output="$tmp/$name.out" || { cat "$tmp/$name.out"; return 1; }
	grep -E "WRITE:|READ:" "$tmp/$name.out" | sed 's/^ */     /'
}

# no_garbage: with more than m shards of some stripes lost, a verify pass
# may fail with I/O errors but must never read wrong data.
no_garbage() {
	local out=$tmp/nogarbage.out lt=/sys/module/cvm/parameters/loss_timeout
	local saved rc
	# I/O no shard set can serve is held up to cvm.loss_timeout (600 s):
	# a short one here, the failure is what is checked.
	saved=$(cat $lt)
	echo 2 >$lt
	no_garbage_pass
	rc=$?
	echo "$saved" >$lt
	return $rc
}
no_garbage_pass() {
	local out=$tmp/nogarbage.out
	if fio --name=nogarbage --filename=/dev/cvm0 --rw=write --bs=128k \
		--offset=$((VOL_SIZE / 2)) --size=$((VOL_SIZE / 2)) \
		--direct=1 --iodepth=8 --ioengine=libaio --randseed=42 \
		--verify=crc32c --verify_only --output="$out"; then
		echo "every stripe read was still decodable, and right"
		return 0
	fi
	if grep -Eiq "bad magic|verify failed|bad header" "$out"; then
		grep -Ei "bad magic|verify failed|bad header" "$out"
		return 1
	fi
	# BLK_STS_TRANSPORT reads as ENOLINK, "Link has been severed".
	grep -q "io_u error" "$out" || { cat "$out"; return 1; }
	grep -m 1 "io_u error" "$out"
	echo "I/O errors, no wrong data"
}

# parity_isal K M: every object's shards from the targets (one cvm-wire
# dump per device); parity = ISA-L's.
parity_isal() {
	local k=$1 m=$2 o s d files bad=0
	local sw=$((k * UNIT))
	local shard_len=$(((OBJ + sw - 1) / sw * UNIT))
	rm -rf "$tmp/shards"
	mkdir "$tmp/shards"
	for ((d = 0; d < NDEV; d++)); do
		"$wire" "127.0.0.1:$(cvm_port $d)" dump --device $d \
			--volume $vol --object 0 --count $((VOL_SIZE / OBJ)) \
			--shards $((k + m)) --length "$shard_len" \
			--out "$tmp/shards" >/dev/null || return 1
	done
	for ((o = 0; o < VOL_SIZE / OBJ; o++)); do
		files=()
		for ((s = 0; s < k + m; s++)); do
			files+=("$tmp/shards/o$o.s$s")
			[[ -e "$tmp/shards/o$o.s$s" ]] || : >"$tmp/shards/o$o.s$s"
		done
		"$eccheck" "$k" "$m" "$UNIT" "${files[@]}" >"$tmp/check" ||
			{ echo "object $o:"; cat "$tmp/check"; bad=$((bad + 1)); }
	done
	rm -rf "$tmp/shards"
	echo "$((VOL_SIZE / OBJ)) objects checked, $bad with parity unlike ISA-L's"
	((bad == 0))
}

echo "# set up: $NDEV brd devices, $NDEV listeners"
rmmod brd 2>/dev/null
# Large and sparse: every object shard takes a whole store extent.
check "brd: $NDEV x 512 MiB" modprobe brd rd_nr=$NDEV rd_size=$((512 << 10))
check "load cvm_target" cvm_load cvm_target
check "load cvm" cvm_load cvm
for ((i = 0; i < NDEV; i++)); do
	check "target: device $i on /dev/ram$i, listening" eval \
		"${tg[*]} add $i /dev/ram$i format && up $i"
done

for layout in ${EC_LAYOUT:?set EC_LAYOUT=K,M}; do
	k=${layout%,*} m=${layout#*,}
	epoch=$((epoch + 1))
	vol=$((vol + 1))
	echo "# ec($k,$m): volume $vol, stripe unit $UNIT"
	# min_size k: writes go on with m shards down (the default, k + 1
	# for m >= 2, would hold them: tests/vm/write_intent.sh).
	check "map epoch $epoch: $NDEV hosts, pool 5 ec($k,$m), min_size $k" \
		"${ig[@]}" map-set $epoch --hosts $NDEV --ec "$k,$m" --ec-min-size "$k"
	check "$NDEV connections" wait_conns $NDEV
	check "attach without a stripe unit refused" refuses "stripe unit" \
		"${ig[@]}" attach $vol 5 $VOL_SIZE --object-size $OBJ
	check "attach ec($k,$m) volume -> cvm0" eval \
		"[[ \$(${ig[*]} attach $vol 5 $VOL_SIZE --object-size $OBJ --stripe-unit $UNIT) == 0 ]]"
	check "logical block size 4096" eval \
		"[[ \$(cat /sys/block/cvm0/queue/logical_block_size) == 4096 ]]"

	R=0 S=$((VOL_SIZE / 2))
	check "healthy: randwrite 4k-64k + verify (partial stripes)" \
		fio_job rand randwrite 4k-64k $R
	check "healthy: 128k sequential write + verify (full stripes)" \
		fio_job seq write 128k $S
	check "parity of every object is ISA-L's" parity_isal "$k" "$m"

	check "device 0 down" down 0
	check "degraded (1 down): earlier data verifies" \
		fio_job rand randwrite 4k-64k $R --verify_only
	check "degraded (1 down): 128k data verifies" \
		fio_job seq write 128k $S --verify_only
	check "degraded (1 down): randwrite + verify" \
		fio_job rand1 randwrite 4k-32k $R --randseed=7
	last=(rand1 randwrite 4k-32k $R --randseed=7)
	downs="0"
	for ((d = 1; d < m; d++)); do
		check "device $d down" down $d
		downs+=" $d"
	done
	if ((m > 1)); then
		check "degraded ($m down): data verifies" \
			fio_job "${last[@]}" --verify_only
		check "degraded ($m down): 128k data verifies" \
			fio_job seq write 128k $S --verify_only
		check "degraded ($m down): randwrite + verify" \
			fio_job rand2 randwrite 4k-64k $R --randseed=9
		last=(rand2 randwrite 4k-64k $R --randseed=9)
	fi
	check "degraded writes recorded shards to rebuild (stale > 0)" \
		eval "(($(stale) > 0))"
	check "device $m down too ($((m + 1)) lost): I/O errors, never wrong data" \
		eval "down $m && no_garbage; rc=\$?; up $m; exit \$rc"
	for d in $downs; do
		check "device $d back" up $d
	done
	check "$NDEV connections again" wait_conns $NDEV
	check "missed shards rebuilt (stale 0 within 120 s)" wait_stale_zero 120
	check "parity of every object is ISA-L's after the rebuild" \
		parity_isal "$k" "$m"
	for ((d = m; d < 2 * m; d++)); do
		down $d
	done
	check "devices $m..$((2 * m - 1)) down: random data verifies (rebuilt shards)" \
		fio_job "${last[@]}" --verify_only
	check "devices $m..$((2 * m - 1)) down: 128k data verifies" \
		fio_job seq write 128k $S --verify_only
	for ((d = m; d < 2 * m; d++)); do
		up $d
	done
	check "$NDEV connections again" wait_conns $NDEV
	check "detach" "${ig[@]}" detach $vol
done

for ((i = 0; i < NDEV; i++)); do
	check "target: device $i removed" eval "down $i && ${tg[*]} remove $i"
done
rmmod cvm 2>/dev/null
check "rmmod brd" rmmod brd
rm -rf "$tmp"
check_summary
