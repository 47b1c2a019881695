#!/usr/bin/env bash
# Install or remove the cvm modules with dkms, for Debian's installed kernel
# (or every kernel dkms knows, through AUTOINSTALL on kernel upgrades).
#
#   scripts/dkms.sh install|remove [VERSION]
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$TOP/scripts/kernel-release.sh"
action=${1:-}
ver=${2:-$(cat "$TOP/VERSION")}
src=/usr/src/cvm-$ver
rel=$(cvm_kernel_release)
command -v dkms >/dev/null || { echo "dkms.sh: dkms missing (run scripts/install-deps.sh)" >&2; exit 1; }

case "$action" in
install)
	if dkms status -m cvm -v "$ver" | grep -q .; then
		dkms remove -m cvm -v "$ver" --all
	fi
	rm -rf "$src"
	mkdir -p "$src"
	# dkms builds from a copy: just what kbuild needs.
	cp -a "$TOP/dkms.conf" "$TOP/VERSION" "$TOP/kernel" "$TOP/include" "$src/"
	find "$src/kernel" \( -name '*.o' -o -name '*.ko' -o -name '.*.cmd' -o -name '*.mod*' \
		-o -name modules.order -o -name Module.symvers \) -delete
	sed -i "s/^PACKAGE_VERSION=.*/PACKAGE_VERSION=\"$ver\"/" "$src/dkms.conf"
	dkms add -m cvm -v "$ver"
	dkms build -m cvm -v "$ver" -k "$rel"
	dkms install -m cvm -v "$ver" -k "$rel"
	;;
remove)
	dkms remove -m cvm -v "$ver" --all
	rm -rf "$src"
	;;
*)
	echo "usage: scripts/dkms.sh install|remove [VERSION]" >&2
	exit 2
	;;
esac
