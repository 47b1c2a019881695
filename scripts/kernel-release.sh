# Sourced: the release of Debian's installed kernel, the one the test VM boots
# and the modules build against.  Never `uname -r`: that names the sandbox's
# own kernel, which cannot load modules.
cvm_kernel_release() {
	if [[ -n "${CVM_KERNEL_RELEASE:-}" ]]; then
		echo "$CVM_KERNEL_RELEASE"
		return
	fi
	local d rel=
	for d in /lib/modules/*/build; do
		[[ -e "$d" ]] || continue
		rel=$(basename "$(dirname "$d")")
	done
	if [[ -z "$rel" ]]; then
		echo "no kernel headers under /lib/modules (run scripts/install-deps.sh)" >&2
		return 1
	fi
	echo "$rel"
}
