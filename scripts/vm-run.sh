#!/usr/bin/env bash
# Run a command inside a QEMU VM booting Debian's own kernel, with this
# machine's root filesystem as the guest's root (9p, read-only, with a tmpfs
# overlay on top), the freshly built cvm modules loaded.
#
#   scripts/vm-run.sh [options] [--] COMMAND [ARG...]
#
#   --timeout SECS   kill the VM after SECS (default 600; env CVM_VM_TIMEOUT)
#   --mem MB         guest memory (default 2048)
#   --smp N          guest CPUs (default 2)
#   --no-modules     do not load cvm.ko / cvm_target.ko before COMMAND
#   --quiet          do not stream COMMAND's output while it runs
#   --disk FILE      attach FILE (raw) as a virtio disk, /dev/vda, vdb, ...
#                    in order; it outlives the VM (crash tests)
#
# COMMAND runs with bash in the current directory.  The exit status is
# COMMAND's, or non-zero when the guest panics, hangs past the timeout, or
# logs an oops, BUG, WARNING or sanitizer report (the console log is shown).
# One VM at a time: runs are serialised with a lock.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/vm-lib.sh
. "$TOP/scripts/vm-lib.sh"

timeout_s=${CVM_VM_TIMEOUT:-600}
mem=2048
smp=2
load_modules=1
quiet=0
disks=()
while (($#)); do
	case "$1" in
	--timeout) timeout_s=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--no-modules) load_modules=0; shift ;;
	--quiet) quiet=1; shift ;;
	--disk)
		[[ -f "${2:-}" ]] || { echo "vm-run: --disk wants an existing file" >&2; exit 2; }
		disks+=(-drive "file=$2,format=raw,if=virtio,cache=writeback")
		shift 2 ;;
	--) shift; break ;;
	-h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "vm-run: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
(($#)) || { echo "vm-run: no command given (see --help)" >&2; exit 2; }
[[ "$timeout_s" =~ ^[0-9]+$ ]] || { echo "vm-run: --timeout wants seconds" >&2; exit 2; }

KERNEL=$(cvm_vm_kernel) || { echo "vm-run: cannot boot" >&2; exit 1; }

if ((load_modules)); then
	for ko in "$TOP/kernel/cvm.ko" "$TOP/kernel/cvm_target.ko"; do
		[[ -f "$ko" ]] || { echo "vm-run: $ko not built (run make modules)" >&2; exit 1; }
	done
fi

VMDIR=$TOP/build/vm
mkdir -p "$VMDIR"

cvm_vm_lock vm-run
INITRD=$(cvm_vm_initramfs "$VMDIR")

# --- the run ---------------------------------------------------------------
RUN=$(mktemp -d "$VMDIR/run.XXXXXX")
trap 'kill "${tail_pid:-}" 2>/dev/null || true; rm -rf "$RUN"' EXIT
: >"$RUN/output.log"
{
	printf 'cd %q || exit 91\n' "$PWD"
	printf 'export CVM_TOP=%q CVM_LOAD_MODULES=%d CVM_IN_VM=1\n' "$TOP" "$load_modules"
} >"$RUN/env.sh"
{
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$RUN/cmd.sh"

read -ra accel <<<"$(cvm_vm_accel)"

if ((!quiet)); then
	tail -n +1 -F "$RUN/output.log" 2>/dev/null &
	tail_pid=$!
fi

start=$(date +%s)
set +e
timeout -s KILL "$timeout_s" qemu-system-x86_64 "${accel[@]}" \
	-m "$mem" -smp "$smp" -nographic -no-reboot \
	-kernel "$KERNEL" -initrd "$INITRD" \
	-append "console=ttyS0 panic=-1 oops=panic softlockup_panic=1 hung_task_panic=1 loglevel=4 cvm.stage2=$TOP/scripts/vm-guest-init.sh" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-virtfs local,path="$RUN",mount_tag=cvmrun,security_model=none \
	-netdev user,id=n0,restrict=on -device virtio-net-pci,netdev=n0 \
	"${disks[@]}" </dev/null >"$RUN/console.log" 2>&1
qemu_rc=$?
set -e
elapsed=$(($(date +%s) - start))
sleep 0.3
if [[ -n "${tail_pid:-}" ]]; then kill "$tail_pid" 2>/dev/null || true; wait "$tail_pid" 2>/dev/null || true; fi
((quiet)) && cat "$RUN/output.log"

show_console() {
	echo "vm-run: ---- guest console (last 150 lines) ----" >&2
	tail -n 150 "$RUN/console.log" >&2
	echo "vm-run: ---- end of guest console ----" >&2
}

if ((qemu_rc == 137 || qemu_rc == 124)); then
	echo "vm-run: guest did not finish within ${timeout_s}s; killed" >&2
	show_console
	exit 124
fi
if [[ ! -f "$RUN/rc" ]]; then
	echo "vm-run: guest stopped without reporting a result (panic or crash?), qemu exit $qemu_rc" >&2
	show_console
	exit 125
fi
rc=$(cat "$RUN/rc")

# Kernel trouble anywhere in the run fails it, even when COMMAND passed.
bad=$CVM_VM_BAD
if grep -Eq "$bad" "$RUN/dmesg.log" "$RUN/console.log" 2>/dev/null; then
	echo "vm-run: the guest kernel reported a problem:" >&2
	grep -Eh -A 25 "$bad" "$RUN/dmesg.log" 2>/dev/null | head -n 80 >&2 ||
		grep -Eh -A 25 "$bad" "$RUN/console.log" | head -n 80 >&2
	show_console
	((rc != 0)) || rc=126
fi
echo "vm-run: guest exit status $rc after ${elapsed}s" >&2
exit "$rc"
