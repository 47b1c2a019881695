#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tier: check (about 125 s)
# transports: tcp
#
# ec(4,2) volumes: fio verify healthy, degraded and after the rebuild;
# parity against ISA-L.  See tests/vm/lib/ec_fio.sh.  Runs INSIDE the
# test VM:
#
#	scripts/vm-run.sh tests/run-in-vm.sh tests/vm/ec42_fio.sh
EC_LAYOUT=4,2
. "${CVM_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/vm/lib/ec_fio.sh"
