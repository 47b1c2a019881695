#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 30 s)
# Load, query and unload cvm.ko and cvm_target.ko.  Runs INSIDE the test VM,
# from the repository root:
#
#	scripts/vm-run.sh tests/vm/module_load.sh
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/module_load.sh
#
# Checks each module's metadata, that loading registers its generic netlink
# family (version, GENL_ADMIN_PERM on every command, "events" group), that
# CVM_CMD_STATUS_GET answers with the right role and versions, that strict
# validation and the capability check refuse bad requests, that unloading
# removes everything, and that this holds over several load/unload cycles.
# Modules loaded when the test starts are loaded again when it ends.
#
# Prints "N passed, N failed"; exits 0 only if every check passed.  With
# CVM_TEST_VERBOSE=1 the output of passing checks is shown too.
set -u

top=${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
if [[ -z "${CVM_IN_VM:-}" ]]; then
	echo "module_load: run me inside the test VM: scripts/vm-run.sh $0" >&2
	exit 2
fi

CYCLES=${CVM_MODULE_CYCLES:-3}
version=$(cat VERSION)
genl_py=(python3 "$top/tests/vm/module_genl.py")
. "$top/tests/lib/check.sh"

is_loaded() { [[ -d /sys/module/$1 ]]; }

load() {
	local ko=kernel/$1.ko dep
	for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do
		modprobe "$dep" || return
	done
	insmod "$ko"
}

live() { [[ "$(cat "/sys/module/$1/initstate" 2>/dev/null)" == live ]]; }
module_version() { [[ "$(cat "/sys/module/$1/version")" == "$version" ]]; }
blk_major() { grep -Eq '^ *[0-9]+ cvm$' <(sed -n '/^Block devices:/,$p' /proc/devices); }
no_blk_major() { ! blk_major; }
modinfo_is() { [[ "$(modinfo -F "$2" "kernel/$1.ko")" == "$3" ]]; }

# name of the module, its genetlink family, its CVM_ROLE_*
modules=("cvm_target cvm_target 2" "cvm cvm 1")

was_loaded=()
for m in cvm cvm_target; do
	if is_loaded "$m"; then
		was_loaded+=("$m")
	fi
done

echo "# module files"
for spec in "${modules[@]}"; do
	read -r mod fam _ <<<"$spec"
	check "$mod.ko exists" test -f "kernel/$mod.ko"
	check "$mod.ko version $version" modinfo_is "$mod" version "$version"
	check "$mod.ko license GPL" modinfo_is "$mod" license GPL
	check "$mod.ko alias for family $fam" \
		grep -qx "net-pf-16-proto-16-family-$fam" \
		<(modinfo -F alias "kernel/$mod.ko")
	check "$mod.ko vermagic $(uname -r)" \
		grep -q "^$(uname -r) " <(modinfo -F vermagic "kernel/$mod.ko")
done

echo "# start from unloaded modules"
for m in cvm cvm_target; do
	if is_loaded "$m"; then
		check "rmmod $m (loaded by the VM runner)" rmmod "$m"
	fi
done

for ((cycle = 1; cycle <= CYCLES; cycle++)); do
	echo "# cycle $cycle of $CYCLES"
	for spec in "${modules[@]}"; do
		read -r mod fam role <<<"$spec"
		check "load $mod" load "$mod"
		check "$mod is live" live "$mod"
		check "$mod reports version $version" module_version "$mod"
		check "genl family $fam registered" "${genl_py[@]}" family "$fam"
		check "genl ctrl get name $fam" genl ctrl get name "$fam"
		check "$fam STATUS_GET" "${genl_py[@]}" status "$fam" "$role" "$version"
		# The refusals do not change with the cycle: once is enough.
		if ((cycle == 1)); then
			check "$fam strict validation" "${genl_py[@]}" strict "$fam"
			check "$fam needs CAP_NET_ADMIN" "${genl_py[@]}" perm "$fam"
		fi
	done
	check "block major cvm registered" blk_major
	check "loading cvm twice fails" eval '! insmod kernel/cvm.ko 2>/dev/null'

	for mod in cvm cvm_target; do
		check "rmmod $mod" rmmod "$mod"
		check "$mod gone from /sys/module" eval "! is_loaded $mod"
		check "genl family $mod gone" "${genl_py[@]}" absent "$mod"
	done
	check "block major cvm released" no_blk_major
done

echo "# restore the modules loaded at the start"
for m in cvm_target cvm; do
	for w in "${was_loaded[@]}"; do
		[[ "$w" == "$m" ]] && check "reload $m" load "$m"
	done
done

check_summary
