#!/usr/bin/env python3
"""cvm's generic netlink families, for bench/run-in-vm.sh: the two requests
whose arguments the command lines of tests/vm/lib/target_genl.py and
initiator_genl.py do not take (a listener's transport; a map whose devices
sit at different addresses).  Built on those two files as libraries.

  cvm_genl.py listen TRANSPORT ADDR PORT
        cvm_target.ko: listen on ADDR:PORT with TRANSPORT (tcp, rdma)
  cvm_genl.py map-set EPOCH TRANSPORT [--ec K,M] ADDR:PORT [ADDR:PORT ...]
        cvm.ko: install initiator_genl.test_map(EPOCH, N) (N hosts of one
        device each; pool 1 replicated(1), pool 3 replicated(min(3, N)),
        with --ec pool 5 ec(K,M)), device i reached at the i-th ADDR:PORT
        over TRANSPORT

Errors print the errno name and the extack text on stderr and exit 1.
"""
import errno
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "vm", "lib"))
import initiator_genl as ig  # noqa: E402
import target_genl as tg  # noqa: E402

mg = ig.mg


def paths_attr(endpoints, transport):
    """endpoints: [(addr, port)], device i at endpoints[i]."""
    body = b""
    for i, (addr, port) in enumerate(endpoints):
        p = mg.nla(ig.PATH_ATTR_DEVICE_ID, ig.u32(i))
        p += mg.nla(ig.PATH_ATTR_ADDR, addr.encode() + b"\0")
        p += mg.nla(ig.PATH_ATTR_PORT, struct.pack("=H", port))
        p += mg.nla(ig.PATH_ATTR_TRANSPORT, transport.encode() + b"\0")
        body += ig.nest(ig.MAP_PATHS_ATTR_PATH, p)
    return ig.nest(ig.ATTR_MAP_PATHS, body)


def endpoint(text):
    addr, _, port = text.rpartition(":")
    if not addr or not port.isdigit():
        raise SystemExit("cvm_genl: want ADDR:PORT, got %r" % text)
    return addr, int(port)


def main(argv):
    if len(argv) >= 5 and argv[1] == "listen":
        try:
            tg.Target().call("CVM_CMD_TARGET_LISTEN",
                             tg.listener(argv[3], int(argv[4]), argv[2]))
        except (tg.Refused, mg.Fail) as e:
            print("listen %s %s:%s: %s" % (argv[2], argv[3], argv[4], e),
                  file=sys.stderr)
            return 1
        return 0
    if len(argv) >= 5 and argv[1] == "map-set":
        epoch, transport, rest, ec = int(argv[2]), argv[3], argv[4:], None
        if rest[0] == "--ec" and len(rest) > 2:
            ec = tuple(int(x) for x in rest[1].split(","))
            rest = rest[2:]
        endpoints = [endpoint(a) for a in rest]
        blob = ig.test_map(epoch, hosts=len(endpoints), ec=ec)
        err, text = ig.Cvm().map_set(blob, paths_attr(endpoints, transport))
        if err:
            print("map-set over %s: %s: %s" % (
                transport, errno.errorcode.get(err, str(err)), text),
                file=sys.stderr)
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
