#!/usr/bin/env bash
# A test cluster: N QEMU guests (Debian's 6.1 kernel, the host root over 9p
# under a tmpfs overlay, one vCPU each) on one virtual L2 network, and a
# scenario script on the host that drives them.
#
#   scripts/vm-cluster.sh [options] SCENARIO [ARG...]
#
#   --guests N       guests in the cluster, 1..6 (default 4)
#   --mem MB         memory per guest (default 768)
#   --disks K        disk files per guest, /dev/vda.. (default 1)
#   --disk-size S    size of each (truncate's units; default 256M)
#   --rdma           bind Soft-RoCE (rdma_rxe) to each guest's eth0
#   --no-modules     do not load cvm_target.ko and cvm.ko at boot
#   --no-boot        leave the guests off; the scenario boots them
#   --timeout SECS   stop the whole run after SECS (default 1800)
#   --keep           keep the run directory (disks, consoles) afterwards
#
# A scenario's leading comment block may give its cluster's shape, as
# options, in a line `# cluster: --guests 4 --rdma`; options given here
# come after them and win.
#
# The network is a vde_switch on a unix socket in the run directory: the
# guests reach each other (10.99.1.1, .2, ...) and nothing else, and no
# packet touches the host's own network stack.  SCENARIO runs with bash on
# the host, from the checkout, with CVM_CLUSTER set; it sources
# scripts/vm-cluster-lib.sh for guest_boot, guest_run, guest_poweroff,
# guest_wait and the rest (see there).
#
# The exit status is SCENARIO's, or non-zero when it outlived --timeout or
# when any guest's kernel reported an oops, BUG, WARNING, lockup or hung
# task (that console is shown).  At the end every guest is powered off and
# the switch stopped, whatever happened.  The run directory (build/cluster/
# run.*) is removed unless --keep or the run failed.  It prints how long
# the first boot of all guests took.  Takes the same machine-wide lock as
# scripts/vm-run.sh: one VM run at a time.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/vm-lib.sh
. "$TOP/scripts/vm-lib.sh"

guests=4 mem=768 ndisks=1 disk_size=256M rdma=0 modules=1 boot=1
timeout_s=1800 keep=0
# The scenario is the first argument that is not an option or its value.
args=("$@") scenario=
for ((i = 0; i < ${#args[@]}; i++)); do
	case "${args[i]}" in
	--guests | --mem | --disks | --disk-size | --timeout) i=$((i + 1)) ;;
	--) scenario=${args[i + 1]:-}; break ;;
	-*) ;;
	*) scenario=${args[i]}; break ;;
	esac
done
if [[ -f "$scenario" ]]; then
	read -ra shape <<<"$(sed -n '/^[^#]/q; s/^# cluster:[[:space:]]*//p' "$scenario")"
	set -- "${shape[@]}" "$@"
fi
while (($#)); do
	case "$1" in
	--guests) guests=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--disks) ndisks=$2; shift 2 ;;
	--disk-size) disk_size=$2; shift 2 ;;
	--rdma) rdma=1; shift ;;
	--no-modules) modules=0; shift ;;
	--no-boot) boot=0; shift ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	--) shift; break ;;
	-h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "vm-cluster: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
(($#)) || { echo "vm-cluster: no scenario given (see --help)" >&2; exit 2; }
[[ -f "$1" ]] || { echo "vm-cluster: no scenario file '$1'" >&2; exit 2; }
[[ "$guests" =~ ^[1-6]$ ]] || { echo "vm-cluster: --guests wants 1..6" >&2; exit 2; }
[[ "$ndisks" =~ ^[0-9]$ ]] || { echo "vm-cluster: --disks wants 0..9" >&2; exit 2; }
for n in "$mem" "$timeout_s"; do
	[[ "$n" =~ ^[0-9]+$ ]] || { echo "vm-cluster: '$n' is not a number" >&2; exit 2; }
done
command -v vde_switch >/dev/null ||
	{ echo "vm-cluster: vde_switch missing (run scripts/install-deps.sh)" >&2; exit 1; }
kernel=$(cvm_vm_kernel) || { echo "vm-cluster: cannot boot" >&2; exit 1; }
if ((modules)); then
	for ko in "$TOP/kernel/cvm.ko" "$TOP/kernel/cvm_target.ko"; do
		[[ -f "$ko" ]] || { echo "vm-cluster: $ko not built (run make modules)" >&2; exit 1; }
	done
fi

cvm_vm_lock vm-cluster
initrd=$(cvm_vm_initramfs "$TOP/build/vm")
mkdir -p "$TOP/build/cluster"
CVM_CLUSTER=$(mktemp -d "$TOP/build/cluster/run.XXXXXX")
export CVM_CLUSTER

teardown() {
	local rc=$? i pid
	for ((i = 0; i < guests; i++)); do
		pid=$(cat "$CVM_CLUSTER/g$i/qemu.pid" 2>/dev/null) || continue
		kill -KILL "$pid" 2>/dev/null
	done
	[[ -f "$CVM_CLUSTER/switch.pid" ]] && kill "$(cat "$CVM_CLUSTER/switch.pid")" 2>/dev/null
	wait 2>/dev/null
	# The last word on every console, whatever the scenario checked.
	# shellcheck source=scripts/vm-cluster-lib.sh
	(set +e; . "$TOP/scripts/vm-cluster-lib.sh"
	 for ((i = 0; i < guests; i++)); do _console_check "$i" || true; done)
	if [[ -s "$CVM_CLUSTER/failed" ]]; then
		echo "vm-cluster: a guest's kernel reported a problem: $(tr '\n' ' ' <"$CVM_CLUSTER/failed")" >&2
		((rc != 0)) || rc=126
	fi
	[[ -f "$CVM_CLUSTER/boots.log" ]] && sed 's/^/vm-cluster: /' "$CVM_CLUSTER/boots.log" | head -n 6 >&2
	if ((keep || rc != 0)); then
		echo "vm-cluster: run directory kept: $CVM_CLUSTER" >&2
	else
		rm -rf "$CVM_CLUSTER"
	fi
	exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

{
	printf 'CLUSTER_GUESTS=%d CLUSTER_MEM=%d CLUSTER_RDMA=%d CLUSTER_MODULES=%d\n' \
		"$guests" "$mem" "$rdma" "$modules"
	printf 'CLUSTER_TOP=%q CLUSTER_KERNEL=%q CLUSTER_INITRD=%q\n' "$TOP" "$kernel" "$initrd"
} >"$CVM_CLUSTER/config"
{
	echo "127.0.0.1 localhost"
	for ((i = 0; i < guests; i++)); do
		echo "10.99.1.$((i + 1)) cvm-g$i"
	done
} >"$CVM_CLUSTER/hosts"
for ((i = 0; i < guests; i++)); do
	mkdir -p "$CVM_CLUSTER/g$i"
	cp "$CVM_CLUSTER/hosts" "$CVM_CLUSTER/g$i/hosts"
	for ((k = 0; k < ndisks; k++)); do
		truncate -s "$disk_size" "$CVM_CLUSTER/g$i/disk$k.img"
	done
done

vde_switch -s "$CVM_CLUSTER/switch" -p "$CVM_CLUSTER/switch.pid" -d >/dev/null
for ((i = 0; i < 50; i++)); do
	[[ -S "$CVM_CLUSTER/switch/ctl" ]] && break
	sleep 0.1
done
[[ -S "$CVM_CLUSTER/switch/ctl" ]] ||
	{ echo "vm-cluster: vde_switch did not start" >&2; exit 1; }

start=$SECONDS
if ((boot)); then
	# shellcheck disable=SC2046 # one argument per guest
	(set +e; . "$TOP/scripts/vm-cluster-lib.sh"; guest_boot $(seq 0 $((guests - 1)))) ||
		{ echo "vm-cluster: the guests did not all boot" >&2; exit 1; }
	echo "vm-cluster: $guests guests up in $((SECONDS - start)) s" >&2
fi

set +e
timeout -s TERM -k 10 "$timeout_s" bash "$@"
rc=$?
set -e
((rc == 124)) && echo "vm-cluster: the scenario did not finish within ${timeout_s}s; stopped" >&2
echo "vm-cluster: scenario exit status $rc after $((SECONDS - start)) s" >&2
exit "$rc"
