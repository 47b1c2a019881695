#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 120 s)
# transports: rdma
#
# cvm_target.ko's rdma transport against an independent userspace client,
# cvm-rdma-wire (librdmacm + libibverbs over Soft-RoCE rxe0), written from
# the framing in include/uapi/linux/cvm_wire.h:
#   - a good session: connect private data answered as documented, HELLO,
#     a 4 KiB WRITE inline, a 64 KiB WRITE the target RDMA READs from a
#     registered buffer, 64 KiB and 4 KiB READs it RDMA WRITEs into
#     registered buffers, a 4 KiB READ and a STAT whose replies come inline
#     (bytes compared), STAT into a buffer, FLUSH; replies to requests that
#     named a buffer come as SEND with Invalidate of its key;
#   - every fuzz case (cvm-rdma-wire cases), each run on its own: rdma_cm
#     private data, framing, header, HELLO, inline and registered payloads,
#     refusals with a status (VERSION, AUTH, DATA_CRC, DENIED), more
#     requests in flight than agreed; each refused as the header documents
#     and followed by a good HELLO + READ on a new connection;
#   - dmesg names the reason of each refusal (cvm_target: rdma: ... lines;
#     the HELLO refusals are the core's cvm_target: initiator ... lines);
#   - the target keeps no rdma_cm id of connections the initiator closed or
#     of connect requests it rejected (rdma res show cm_id), and still
#     serves afterwards.
# Runs INSIDE the test VM from the repository root:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/rdma_wire.sh
#
# Prints "N passed, N failed"; exits 0 only if every check passed.
set -u

top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
if [[ -z "${CVM_IN_VM:-}" ]]; then
	echo "rdma_wire: run me inside the test VM: scripts/vm-run.sh $0" >&2
	exit 2
fi
export CVM_TRANSPORT=rdma
. "$top/tests/lib/check.sh"
. "$top/tests/lib/cvm_vm.sh"

R=${CVM_RDMA_WIRE:-$top/build/userspace/tools/cvm-rdma-wire}
G=(python3 "$top/tests/vm/lib/target_genl.py")
ADDR=$(cvm_addr 0)
PORT=${CVM_TEST_PORT:-7440}
EP=$ADDR:$PORT
ID=1
# The raw tests' host (tests/vm/lib/target_genl.py) may touch every volume;
# host 2 is let in too, but given no volume.
SECRET1=0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20
SECRET2=f0e1d2c3b4a5968778695a4b3c2d1e0f00112233445566778899aabbccddeeff
C=(--device "$ID" --volume 9 --object 3 --foreign-host 2
	--foreign-secret "$SECRET2")

# stuck_tasks: what every task in D state is waiting for.
stuck_tasks() {
	local t
	for t in /proc/[0-9]*; do
		[[ $(awk '{print $3}' "$t/stat" 2>/dev/null) == D ]] || continue
		echo "D: $(cat "$t/comm") ($(basename "$t"))"
		sed 's/^/    /' "$t/stack"
	done
}

# rw VERB [ARG...]: cvm-rdma-wire against the test listener, in at most
# 120 s (each of its waits is 10 s); a hang shows the stuck tasks.
rw() {
	local rc
	timeout -k 5 120 "$R" "$EP" "$1" "${C[@]}" "${@:2}"
	rc=$?
	if ((rc == 124 || rc == 137)); then
		echo "cvm-rdma-wire $1 did not finish in 120 s"
		stuck_tasks
	fi
	return $rc
}

# What the kernel logs for each fuzz case: an extended regexp, or - when
# the case is not a refusal.  A case cvm-rdma-wire lists without an entry
# here fails: decide what it should log.
rdma='cvm_target: rdma: '
core='cvm_target: initiator '
unfit='buffer does not fit the request'
wire_version=$(sed -n 's/^#define CVM_WIRE_VERSION[[:space:]]*//p' include/uapi/linux/cvm_wire.h)
declare -A reason=(
	[cm-no-private-data]="${rdma}connect request with bad private data"
	[cm-short-private-data]="${rdma}connect request with bad private data"
	[cm-bad-recfmt]="${rdma}connect request with bad private data"
	[cm-queue-depth-0]="${rdma}connect request with bad private data"
	[cm-reserved]="${rdma}connect request with bad private data"
	[cm-depth-above-max]=-
	[cm-inline-0-hello]=-
	[short-send]="${rdma}.*short command"
	[short-send-before-hello]="${rdma}.*short command"
	[bad-magic]="${rdma}.*bad magic"
	[bad-hdr-crc]="${rdma}.*header CRC mismatch"
	[bad-version]="${rdma}.*bad version"
	[unknown-opcode]="${rdma}.*unknown opcode"
	[unknown-flag]="${rdma}.*unknown flag bits"
	[reply-flag]="${rdma}.*reply flag set on a request"
	[nonzero-reserved]="${rdma}.*reserved field is not zero"
	[nonzero-status]="${rdma}.*status is not zero in a request"
	[misaligned-offset]="${rdma}.*not sector aligned"
	[oversize-length]="${rdma}.*above CVM_WIRE_MAX_DATA_LEN"
	[shard-out-of-range]="${rdma}.*shard out of range"
	[request-before-hello]="${rdma}.*request before HELLO"
	[second-hello]="${rdma}.*second HELLO"
	[hello-sgl-length]="${rdma}.*$unfit"
	[hello-short-payload]="${rdma}.*$unfit"
	[hello-trailing-bytes]="${rdma}.*$unfit"
	[hello-length]="${rdma}.*HELLO or AUTH length is not the hello payload size"
	[hello-features]="${rdma}.*HELLO with unknown features"
	[hello-reserved]="${rdma}.*HELLO with unknown features"
	[inline-length-mismatch]="${rdma}.*$unfit"
	[inline-above-agreed]="${rdma}.*RECV failed"
	[inline-read]="${rdma}.*$unfit"
	[keyed-write-sgl-length]="${rdma}.*$unfit"
	[keyed-write-bad-rkey]="${rdma}.*RDMA READ of a payload failed"
	[keyed-write-outside-buffer]="${rdma}.*RDMA READ of a payload failed"
	[keyed-write-trailing-bytes]="${rdma}.*$unfit"
	[read-no-buffer-above-inline]="${rdma}.*$unfit"
	[read-no-buffer-above-agreed]="${rdma}.*$unfit"
	[read-sgl-above-length]="${rdma}.*$unfit"
	[read-bad-rkey]="${rdma}.*failed"
	[read-outside-buffer]="${rdma}.*failed"
	[stat-buffer-too-big]="${rdma}.*$unfit"
	[flush-with-buffer]="${rdma}.*$unfit"
	[trailing-bytes]="${rdma}.*$unfit"
	[hello-version]="${core}.*HELLO version $((wire_version - 1)), we speak $wire_version"
	[hello-unknown-host]="${core}.*HELLO refused: no key for host"
	[hello-unknown-key-id]="${core}.*HELLO refused: no key for host"
	[hello-unknown-device]="${core}.*HELLO refused: no key for host"
	[auth-skipped]="${rdma}.*request before AUTH"
	[auth-wrong-key]="${core}.*AUTH refused: wrong proof"
	[auth-replayed]="${core}.*AUTH refused: wrong proof"
	[auth-reflected]="${core}.*AUTH refused: wrong proof"
	[foreign-volume]="cvm_target: .*volume 9: refused host 2, which was not given the volume"
	[data-crc-mismatch]="${rdma}.*payload CRC mismatch"
	[flood-inline-writes]=-
	[flood-inline-reads]=-
	[flood-keyed-reads]=-
)

# dmesg_mark: the kernel log's length now, for logged_since.
dmesg_mark() { dmesg | wc -l; }

# logged_since MARK ERE: a line after MARK matches ERE (within 2 s: the
# target logs before it closes, so the line is there once the case ends).
logged_since() {
	local i
	for ((i = 0; i < 10; i++)); do
		dmesg | tail -n +"$(($1 + 1))" | grep -Eq -- "$2" && return 0
		sleep 0.2
	done
	echo "no kernel message matching '$2'; since the case:"
	dmesg | tail -n +"$(($1 + 1))" | grep cvm | tail -n 10
	return 1
}

# target_ids [ERE]: the target's rdma_cm ids on $EP other than its
# listener (`rdma res show cm_id`), only those matching ERE if given.
target_ids() {
	rdma res show cm_id | grep -F '[cvm_target]' | grep -F "src-addr $EP " |
		grep -v 'state LISTEN' | grep -E -- "${1:-.}"
}

# no_target_ids WHY [ERE]: target_ids [ERE] is empty within 10 s.
no_target_ids() {
	local i
	for ((i = 0; i < 50; i++)); do
		target_ids "${2:-}" >/dev/null || return 0
		sleep 0.2
	done
	echo "$1; still there:"
	target_ids "${2:-}" | head -n 10
	echo "($(target_ids "${2:-}" | wc -l) in all)"
	return 1
}

cleanup() {
	"${G[@]}" unlisten "$ADDR" "$PORT" --transport rdma >/dev/null 2>&1
	"${G[@]}" remove "$ID" >/dev/null 2>&1
	rmmod brd 2>/dev/null
}
trap cleanup EXIT

echo "# setup"
[[ -x "$R" ]] || { echo "cvm-rdma-wire not built: $R"; exit 1; }
check "rdma: Soft-RoCE rxe0 on eth0" cvm_rdma_up
rmmod brd 2>/dev/null
check "brd: 1 x 64 MiB" modprobe brd rd_nr=1 rd_size=65536
check "load cvm_target" cvm_load cvm_target
check "target: add device $ID on /dev/ram0" "${G[@]}" add "$ID" /dev/ram0 format
check "target: hosts 1 (every volume) and 2 (none) on device $ID" \
	"${G[@]}" hosts "$ID" "1:$SECRET1:0:all" "2:$SECRET2:0:some"
check "target: listen $EP (rdma)" \
	"${G[@]}" listen "$ADDR" "$PORT" --transport rdma
((failed)) && { echo "set-up failed: nothing to test"; check_summary; exit; }

echo "# cvm-rdma-wire usage"
check "no --device: refused" refuses '--device is required' "$R" "$EP" hello
check "bad --secret: refused" refuses 'secret' rw hello --secret xyz
check "unknown fuzz case: refused" refuses "no fuzz case 'nope'" \
	rw fuzz --case nope
check "bad ADDR:PORT: refused" refuses 'ADDR:PORT' "$R" "$ADDR" hello \
	--device "$ID"

echo "# a good session"
check "session: HELLO, WRITE inline and registered, READ, STAT, FLUSH" \
	rw session
check "hello: OK" rw hello
check "the target lets go of connections the initiator closed" \
	no_target_ids "the initiator disconnected"

echo "# fuzz, one case at a time"
cases=$("$R" cases | awk '{print $1}')
check "cvm-rdma-wire lists its fuzz cases" test -n "$cases"
for c in $cases; do
	t0=$(date +%s%N)
	m=$(dmesg_mark)
	check "fuzz $c" rw fuzz --case "$c"
	pat=${reason[$c]-}
	if [[ -z "$pat" ]]; then
		check "fuzz $c: this test knows what it should log" false
	elif [[ "$pat" != - ]]; then
		check "    dmesg: /$pat/" logged_since "$m" "$pat"
	fi
	# printk ratelimit: 10 messages per 5 s per call site; a case logs at
	# most two from the one that names a closing connection's reason, so
	# cases that log start at least 1.25 s apart.
	if [[ "$pat" != - ]]; then
		rest=$((1250 - ($(date +%s%N) - t0) / 1000000))
		((rest > 0)) && sleep "$((rest / 1000)).$(printf %03d $((rest % 1000)))"
	fi
done

echo "# afterwards"
check "no rdma_cm id left of a rejected connect request" \
	no_target_ids "rejected connect requests" 'state CONNECT'
check "the target still serves: session" rw session
check "the target lets go of every closed connection" \
	no_target_ids "closed connections"

echo "# teardown"
check "unlisten" "${G[@]}" unlisten "$ADDR" "$PORT" --transport rdma
check "no cvm_target rdma_cm id on $EP after unlisten" \
	no_target_ids "after unlisten"
check "remove device $ID" "${G[@]}" remove "$ID"

check_summary
