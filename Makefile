# CVM: distributed block storage.  `make demo` and `make check` do all set-up
# on a fresh Debian 12 machine (packages via scripts/install-deps.sh).

VERSION := $(shell cat VERSION)
KRELEASE ?= $(shell bash -c '. scripts/kernel-release.sh && cvm_kernel_release' 2>/dev/null)
KDIR ?= /lib/modules/$(KRELEASE)/build
BUILD ?= build
JOBS ?= 2
# Build caches shared by every checkout on this machine, outside the clone:
# ccache for the C++ objects, the KUnit UML build (scripts/kunit.sh).  An
# empty or missing cache only makes a build slower.  CCACHE_BASEDIR and
# CCACHE_NOHASHDIR let two clones at different paths share objects.
CVM_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/cvm
export CVM_CACHE
CCACHE := $(shell command -v ccache 2>/dev/null)
ifneq ($(CCACHE),)
CMAKE_LAUNCHER := -DCMAKE_C_COMPILER_LAUNCHER=$(CCACHE) -DCMAKE_CXX_COMPILER_LAUNCHER=$(CCACHE)
export CCACHE_DIR ?= $(CVM_CACHE)/ccache
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1
endif

.PHONY: all deps modules userspace check check-fast check-full kunit vm-test \
	unit-test cluster-test demo bench \
	install dkms-install dkms-remove format clean

all: modules userspace

deps:
	@scripts/install-deps.sh

modules:
	$(MAKE) -C kernel KDIR=$(KDIR) CVM_VERSION=$(VERSION)

userspace:
	cmake -S userspace -B $(BUILD)/userspace -DCVM_VERSION=$(VERSION) $(CMAKE_LAUNCHER) >/dev/null
	cmake --build $(BUILD)/userspace -j $(JOBS)

# The test tiers (scripts/check.sh): check is what CI runs, each failure
# mode once and short; check-fast is for iteration (unit, style, KUnit, a
# VM smoke test); check-full adds the long variants, run by hand.
check: deps
	scripts/check.sh check

check-fast: deps
	scripts/check.sh fast

check-full: deps
	scripts/check.sh full

unit-test: userspace
	ctest --test-dir $(BUILD)/userspace --output-on-failure -j $(JOBS)

kunit: deps
	scripts/kunit.sh

# Every VM test, the full tier's runs included.
vm-test: all
	scripts/vm-run.sh --timeout 4500 env CVM_TIER=full tests/run-in-vm.sh

# The cross-machine scenarios, each on a cluster of its own.
cluster-test: all
	for t in tests/cluster/*.sh; do scripts/vm-cluster.sh $$t || exit; done

demo: deps
	$(MAKE) all
	scripts/vm-run.sh --timeout 900 scripts/demo.sh

# fio on raw brd, NVMe-oF/RDMA and /TCP, md raid1 and cvm over rdma and tcp in one VM: bench/README.md.
bench: all
	bench/run.sh
	bench/recovery.sh

install: all
	$(MAKE) -C $(KDIR) M=$(CURDIR)/kernel modules_install
	cmake --install $(BUILD)/userspace
	depmod -a $(KRELEASE)

dkms-install:
	scripts/dkms.sh install $(VERSION)

dkms-remove:
	scripts/dkms.sh remove $(VERSION)

format:
	find userspace -name '*.cc' -o -name '*.h' | xargs clang-format -i

clean:
	-$(MAKE) -C kernel KDIR=$(KDIR) clean
	rm -rf $(BUILD)/userspace $(BUILD)/vm
