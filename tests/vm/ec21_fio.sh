#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: full (about 90 s; in check, ec(2,1) writes, degraded
# attach and rebuild run in tests/crash/ec_write_hole.sh)
# transports: tcp
#
# ec(2,1) volumes: fio verify healthy, degraded and after the rebuild;
# parity against ISA-L.  See tests/vm/lib/ec_fio.sh.  Runs INSIDE the
# test VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/ec21_fio.sh
EC_LAYOUT=2,1
. "${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/vm/lib/ec_fio.sh"
