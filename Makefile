# CVM: distributed block storage.  `make demo` and `make check` do all set-up
# on a fresh Debian 12 machine (packages via scripts/install-deps.sh).

VERSION := $(shell cat VERSION)
KRELEASE ?= $(shell bash -c '. scripts/kernel-release.sh && cvm_kernel_release' 2>/dev/null)
KDIR ?= /lib/modules/$(KRELEASE)/build
BUILD ?= build
JOBS ?= 2

.PHONY: all deps modules userspace check kunit vm-test unit-test demo bench \
	install dkms-install dkms-remove format clean

all: modules userspace

deps:
	@scripts/install-deps.sh

modules:
	$(MAKE) -C kernel KDIR=$(KDIR) CVM_VERSION=$(VERSION)

userspace:
	cmake -S userspace -B $(BUILD)/userspace -DCVM_VERSION=$(VERSION) >/dev/null
	cmake --build $(BUILD)/userspace -j $(JOBS)

# Everything: GoogleTest, KUnit on UML, and the integration tests in the VM.
check: deps
	$(MAKE) all
	scripts/check.sh

unit-test: userspace
	ctest --test-dir $(BUILD)/userspace --output-on-failure -j $(JOBS)

kunit: deps
	scripts/kunit.sh

vm-test: all
	scripts/vm-run.sh tests/run-in-vm.sh

demo: deps
	$(MAKE) all
	scripts/vm-run.sh --timeout 900 scripts/demo.sh

# fio on raw brd, NVMe-oF/RDMA and /TCP, md raid1 and cvm over rdma and tcp in one VM: bench/README.md.
bench: all
	bench/run.sh

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
