#!/usr/bin/env bash
# Install every Debian package CVM needs to build, test and demo.
# Idempotent: packages already present are not touched, and apt is not
# called at all when nothing is missing.
set -euo pipefail

PKGS=(
	# toolchain and kernel build
	build-essential cmake pkg-config make gcc g++ bc bison flex
	libelf-dev libssl-dev xz-utils kmod cpio perl python3 sparse
	linux-image-amd64 linux-headers-amd64 linux-source-6.1 dkms
	# userspace libraries
	librocksdb-dev libnl-3-dev libnl-genl-3-dev
	libboost-program-options-dev libfmt-dev libgtest-dev libisal-dev
	nlohmann-json3-dev clang-format
	# cvmd's systemd unit, checked with systemd-analyze
	systemd
	# the cluster store: etcd (server for tests and nodes, etcdctl to look),
	# reached through its v3 JSON gateway with cpp-httplib
	etcd-server etcd-client libcpp-httplib-dev
	# certificates for etcd over TLS (scripts/etcd-certs.sh)
	openssl
	# userspace rdma client (cvm-rdma-wire)
	librdmacm-dev libibverbs-dev
	# test VM and what runs inside it
	qemu-system-x86 busybox-static fio e2fsprogs iproute2 util-linux nftables
	# the test cluster: guests on one unix-socket switch; caches for rebuilds
	vde2 ccache
	# crash tests: a copy-on-write view of the crashed disks per check
	dmsetup
	# bench: NVMe-oF anchors, perf to see where time goes in the guest, md raid1
	nvme-cli linux-perf mdadm
)

missing=()
for p in "${PKGS[@]}"; do
	# dpkg-query exits non-zero for unknown packages and prints the status otherwise
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[[ "$st" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
	echo "install-deps: all ${#PKGS[@]} packages present"
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	echo "install-deps: missing packages: ${missing[*]}" >&2
	echo "install-deps: run as root (or: sudo $0)" >&2
	exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
