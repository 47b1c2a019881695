# shellcheck shell=bash
# Sourced by the host-side VM runners (scripts/vm-run.sh, one guest;
# scripts/vm-cluster.sh, several): what every guest boot shares.
#
#   CVM_VM_BAD             the kernel log lines that fail a run
#   cvm_vm_kernel          prints /boot/vmlinuz-REL, or fails saying why
#   cvm_vm_initramfs DIR   prints the busybox initramfs that mounts the host
#                          root (built into DIR once per kernel release)
#   cvm_vm_accel           prints the QEMU accelerator arguments
#   cvm_vm_lock            one VM run at a time on this machine (waits)

# shellcheck source=scripts/kernel-release.sh
. "$(dirname "${BASH_SOURCE[0]}")/kernel-release.sh"

CVM_VM_BAD='Oops|BUG:|WARNING:|KASAN|UBSAN|general protection fault|Kernel panic|kernel BUG|list_(add|del) corruption|refcount_t:|INFO: task .* blocked'

cvm_vm_kernel() {
	local rel
	rel=$(cvm_kernel_release) || return
	if [[ ! -r /boot/vmlinuz-$rel ]]; then
		echo "/boot/vmlinuz-$rel missing (run scripts/install-deps.sh)" >&2
		return 1
	fi
	if ! command -v qemu-system-x86_64 >/dev/null; then
		echo "qemu-system-x86_64 missing (run scripts/install-deps.sh)" >&2
		return 1
	fi
	echo "/boot/vmlinuz-$rel"
}

# The initramfs: busybox and the modules that mount the host root over 9p
# under a tmpfs overlay, then switch_root into the script named by
# cvm.stage2= on the kernel command line.
_cvm_vm_build_initramfs() {
	local img=$1 rel=$2 dir m
	dir=$(mktemp -d)
	mkdir -p "$dir"/{bin,dev,proc,sys,lower,upper,newroot,mods}
	cp /bin/busybox "$dir/bin/busybox"
	for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev \
		 virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay; do
		cp "$(modinfo -k "$rel" -n "$m")" "$dir/mods/$m.ko"
	done
	cat >"$dir/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "cvm-initramfs: $*"; echo o >/proc/sysrq-trigger; sleep 10; }
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev \
	 virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay; do
	insmod /mods/$m.ko || fail "insmod $m failed"
done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 hostroot /lower ||
	fail "cannot mount the host root over 9p"
mount -t tmpfs -o size=70% tmpfs /upper
mkdir -p /upper/upper /upper/work
mount -t overlay overlay \
	-o lowerdir=/lower,upperdir=/upper/upper,workdir=/upper/work /newroot ||
	fail "cannot mount the overlay root"
stage2=
for arg in $(cat /proc/cmdline); do
	case "$arg" in cvm.stage2=*) stage2=${arg#cvm.stage2=} ;; esac
done
[ -n "$stage2" ] || fail "no cvm.stage2= on the command line"
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
exec switch_root /newroot /bin/bash "$stage2"
INIT
	chmod +x "$dir/init"
	(cd "$dir" && find . | cpio -o -H newc --quiet | gzip -1) >"$img.tmp"
	mv "$img.tmp" "$img"
	rm -rf "$dir"
}

cvm_vm_initramfs() {
	local rel img
	rel=$(cvm_kernel_release) || return
	mkdir -p "$1"
	img=$1/initramfs-$rel.cpio.gz
	if [[ ! -s "$img" || "$img" -ot "${BASH_SOURCE[0]}" ]]; then
		_cvm_vm_build_initramfs "$img" "$rel" || return
	fi
	echo "$img"
}

cvm_vm_accel() {
	if [[ "${CVM_VM_ACCEL:-tcg}" == kvm ]]; then
		# Opt-in only: on these machines KVM is present but does not boot (VM.md).
		echo "-accel kvm -cpu host"
	else
		echo "-accel tcg -cpu max"
	fi
}

# One VM run at a time on this machine, whichever checkout starts it: TCG
# guests on two cores only slow each other down.  Holds fd 9.
cvm_vm_lock() {
	exec 9>"${CVM_VM_LOCK:-/tmp/cvm-vm.lock}"
	if ! flock -n 9; then
		echo "$1: waiting for another VM run to finish" >&2
		flock 9
	fi
}
