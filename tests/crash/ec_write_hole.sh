#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 150 s: two boots; CRASH_LOST "0 6" in
# check, every device in full)
# No write hole in erasure-coded volumes: a crash of the initiator during
# partial-stripe writes, followed by the loss of a device, never returns
# data that was never written.  Runs on the HOST and boots the test VM
# twice over the same seven disk files (targets' backing devices):
#
#  1. format, fill an ec(K,M) volume (stripe unit 8K) with tagged blocks,
#     run 16 writers of 4k-32k, and reset the VM (sysrq b) while they run;
#  2. boot again and, for each device to lose (CRASH_LOST="0 2 4 6" by
#     default; "0 1 2 3 4 5 6" for all), on a fresh snapshot of the
#     crashed disks: attach with that device lost and check
#     every block
#     (see tests/crash/ec_write_hole_guest.sh and lib/tagged_blocks.py).
#
#   tests/crash/ec_write_hole.sh [K,M ...]      default: 2,1
#   CRASH_JOURNAL=0 tests/crash/ec_write_hole.sh  (journal off: the hole)
#
# Prints `N passed, N failed`.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
. "$top/tests/lib/check.sh"

layouts=("$@")
# ec(2,1): one lost device takes all its redundancy, the hardest case.
((${#layouts[@]})) || layouts=(2,1)
journal=${CRASH_JOURNAL:-1}
mkdir -p "$top/build"
work=$(mktemp -d "$top/build/crash.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# phase1_crashed LOG: the guest reset itself with the writers running,
# after every set-up check passed.
phase1_crashed() {
	grep -q "^crash: resetting the VM" "$1" || { tail -n 30 "$1"; return 1; }
	! grep -q "^FAIL" "$1" || { grep "^FAIL" -A 3 "$1"; return 1; }
	echo "$(grep -c '^ack' "$1") acks logged before the reset"
}

for layout in "${layouts[@]}"; do
	echo "# ec($layout), stripe journal $([[ $journal == 1 ]] && echo on || echo OFF)"
	disks=()
	for ((i = 0; i < 7; i++)); do
		rm -f "$work/disk$i.img"
		truncate -s 256M "$work/disk$i.img"
		disks+=(--disk "$work/disk$i.img")
	done
	scripts/vm-run.sh --quiet --timeout 900 "${disks[@]}" \
		bash tests/crash/ec_write_hole_guest.sh write "$layout" "$journal" \
		>"$work/phase1.log" 2>&1
	rc=$?
	grep -E "^(ok|FAIL) " "$work/phase1.log"
	check "phase 1: VM reset during partial-stripe writes (vm-run exit $rc)" \
		eval "((rc == 125)) && phase1_crashed $work/phase1.log"

	scripts/vm-run.sh --quiet --timeout 2400 "${disks[@]}" \
		env CRASH_LOST="${CRASH_LOST:-0 2 4 6}" \
		bash tests/crash/ec_write_hole_guest.sh check "$layout" \
		"$work/phase1.log" "$journal" >"$work/phase2.log" 2>&1
	rc=$?
	grep -Ev "^(\s*$)" "$work/phase2.log" | grep -Ev "^vm-run: waiting" |
		head -n 200
	counts=$(grep -Eo '^[0-9]+ passed, [0-9]+ failed' "$work/phase2.log" |
		tail -n 1)
	p2_failed=1
	if [[ -n "$counts" ]]; then
		p2_failed=${counts#*, }
		p2_failed=${p2_failed%% failed}
		passed=$((passed + ${counts%% passed*}))
		failed=$((failed + p2_failed))
	fi
	# A non-zero exit with no failed check is a crash or a hang.
	check "phase 2: checks ran and the VM exited cleanly (vm-run exit $rc)" \
		eval "[[ -n '$counts' ]] && ((rc == 0 || p2_failed > 0))"
done
check_summary
