#!/bin/bash
# Inside the test VM: load the freshly built cvm modules (dependencies from
# Debian's tree first).  Used by vm-guest-init.sh and by tests that reload.
set -e
top=${CVM_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
for ko in "$top/kernel/cvm_target.ko" "$top/kernel/cvm.ko"; do
	for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do
		modprobe "$dep"
	done
	insmod "$ko"
done
