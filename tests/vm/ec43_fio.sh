#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: full (about 150 s: Reed-Solomon, m = 3; check runs ec42_fio, the same
# code with m = 2)
# transports: tcp
#
# ec(4,3) volumes: fio verify healthy, degraded and after the rebuild;
# parity against ISA-L.  See tests/vm/lib/ec_fio.sh.  Runs INSIDE the
# test VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/ec43_fio.sh
EC_LAYOUT=4,3
. "${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/vm/lib/ec_fio.sh"
