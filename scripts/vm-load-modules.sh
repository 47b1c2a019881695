#!/bin/bash
# Inside the test VM: load the freshly built cvm modules (dependencies from
# Debian's tree first).  Used by vm-guest-init.sh and by tests that reload.
set -e
top=${CVM_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
# On real hardware udev loads the CPU's CRC32C driver at boot, before
# libcrc32c picks an implementation; this VM's init runs no udev.  Without
# it every payload CRC runs the table-driven C code.
modprobe -q crc32c-intel 2>/dev/null || true
for ko in "$top/kernel/cvm_target.ko" "$top/kernel/cvm.ko"; do
	for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do
		modprobe "$dep"
	done
	insmod "$ko"
done
