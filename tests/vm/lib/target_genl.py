#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Raw generic netlink client of the "cvm_target" family, for the VM tests.

  target_genl.py add ID PATH [format] [force]   TARGET_DEVICE_ADD
  target_genl.py remove ID                       TARGET_DEVICE_REMOVE
  target_genl.py listen ADDR PORT [--transport T]
  target_genl.py hosts DEV [HOST_ID:SECRETHEX:KEY_ID:all|some ...]
  target_genl.py unlisten ADDR PORT [--transport T]
  target_genl.py fence VOLUME EPOCH [DEVICE]     TARGET_VOLUME_FENCE (every
                                                 device, or DEVICE)
  target_genl.py list                            TARGET_DEVICE_LIST: a line
                                                 per device: id path
                                                 capacity used objects
                                                 intents
  target_genl.py objects                         print STATUS_GET's OBJECTS
  target_genl.py conns | pinned                  ... CONNECTIONS, PINNED_BYTES
  target_genl.py malformed                       malformed requests refused

--transport names the listener's transport (tcp, rdma); without it no
TRANSPORT attribute is sent and the module takes tcp.  Command and
attribute numbers are read from include/uapi/linux/cvm.h, so
this follows the header.  Exit 0 on success; otherwise the errno name and
the extack text on stderr, exit 1.
"""
import errno
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import module_genl as mg  # noqa: E402

TOP = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


C = mg.C

# The raw tests' host: cvm.ko set up by initiator_genl.py and cvm-wire speak
# for host TEST_HOST_ID with secret TEST_SECRET (cvm_wire.h,
# "Authentication"); "add" lets that host at every volume of the device.
TEST_HOST_ID = 1
TEST_SECRET = bytes(range(1, 33))


def derive_key(secret, device_id, host_id=TEST_HOST_ID, cluster_id=0):
    import hashlib
    import hmac
    return hmac.new(secret, b"cvm-host-key" + struct.pack(
        "<QQI", cluster_id, host_id, device_id), hashlib.sha256).digest()


def host_entry(host_id, key, key_id=0, flags=0):
    return mg.nla(1 | 0x8000,
                  mg.nla(C["CVM_TARGET_HOST_ATTR_HOST_ID"], u64(host_id)) +
                  mg.nla(C["CVM_TARGET_HOST_ATTR_KEY_ID"], u32(key_id)) +
                  mg.nla(C["CVM_TARGET_HOST_ATTR_KEY"], key) +
                  mg.nla(C["CVM_TARGET_HOST_ATTR_FLAGS"], u32(flags)))


def hosts_attr(entries):
    return mg.nla(C["CVM_ATTR_TARGET_HOSTS"] | 0x8000, entries)


def hosts_set(t, dev_id, specs):
    """specs: [(host_id, secret, key_id, all_volumes)]"""
    ents = b"".join(host_entry(h, derive_key(sec, dev_id, h), kid,
                               1 if allv else 0)
                    for h, sec, kid, allv in specs)
    t.call("CVM_CMD_TARGET_HOSTS_SET",
           device(dev_id) + mg.nla(C["CVM_ATTR_TARGET_HOSTS"] | 0x8000, ents))
FORMAT, FORCE = 1, 2


class Refused(Exception):
    pass


def nest(atype, payload):
    return mg.nla(atype | mg.NLA_F_NESTED, payload)


def u32(v):
    return struct.pack("=I", v)


def u16(v):
    return struct.pack("=H", v)


def u64(v):
    return struct.pack("=Q", v)


def strz(s):
    return s.encode() + b"\0"


def device(dev_id=None, path=None, flags=None):
    p = b""
    if dev_id is not None:
        p += mg.nla(C["CVM_TARGET_DEVICE_ATTR_ID"], u32(dev_id))
    if path is not None:
        p += mg.nla(C["CVM_TARGET_DEVICE_ATTR_PATH"], strz(path))
    if flags is not None:
        p += mg.nla(C["CVM_TARGET_DEVICE_ATTR_FLAGS"], u32(flags))
    return nest(C["CVM_ATTR_TARGET_DEVICE"], p)


def listener(addr=None, port=None, transport=None):
    p = b""
    if transport is not None:
        p += mg.nla(C["CVM_TARGET_LISTENER_ATTR_TRANSPORT"], strz(transport))
    if addr is not None:
        p += mg.nla(C["CVM_TARGET_LISTENER_ATTR_ADDR"], strz(addr))
    if port is not None:
        p += mg.nla(C["CVM_TARGET_LISTENER_ATTR_PORT"], u16(port))
    return nest(C["CVM_ATTR_TARGET_LISTENER"], p)


def volume(vol_id=None, epoch=None):
    p = b""
    if vol_id is not None:
        p += mg.nla(C["CVM_VOLUME_ATTR_ID"], u64(vol_id))
    if epoch is not None:
        p += mg.nla(C["CVM_VOLUME_ATTR_ATTACH_EPOCH"], u64(epoch))
    return nest(C["CVM_ATTR_VOLUME"], p)


class Target:
    def __init__(self):
        self.g = mg.Genl()
        self.fid = self.g.family_id("cvm_target")

    def call(self, cmd, attrs):
        replies, err, text = self.g.request(self.fid, C[cmd], attrs)
        if err:
            raise Refused("%s: %s%s" % (cmd, errno.errorcode.get(err, err),
                                        " (%s)" % text if text else ""))
        return replies

    def dump(self, cmd, attrs=b""):
        """NLM_F_DUMP request; returns the replies."""
        replies, err, _ = self.g.dump(self.fid, C[cmd], attrs)
        if err:
            raise Refused("%s: %s" % (cmd, errno.errorcode.get(err, err)))
        return replies

    def expect(self, what, cmd, attrs, want_err, want_text=None):
        replies, err, text = self.g.request(self.fid, C[cmd], attrs)
        if err != want_err:
            raise mg.Fail("%s: got %s, want %s" % (
                what, errno.errorcode.get(err, "success"),
                errno.errorcode[want_err]))
        if want_text and want_text not in (text or ""):
            raise mg.Fail("%s: extack %r does not say %r" % (
                what, text, want_text))
        print("ok   %s refused: %s%s" % (what, errno.errorcode[err],
                                         " (%s)" % text if text else ""))


def malformed(t):
    add, rm = "CVM_CMD_TARGET_DEVICE_ADD", "CVM_CMD_TARGET_DEVICE_REMOVE"
    lst, ul = "CVM_CMD_TARGET_LISTEN", "CVM_CMD_TARGET_UNLISTEN"
    fence = "CVM_CMD_TARGET_VOLUME_FENCE"
    hs = "CVM_CMD_TARGET_HOSTS_SET"
    cases = [
        ("DEVICE_ADD without attributes", add, b"", errno.EINVAL),
        ("DEVICE_ADD without path", add, device(dev_id=9), errno.EINVAL),
        ("DEVICE_ADD without id", add, device(path="/dev/null"), errno.EINVAL),
        ("DEVICE_ADD id as u16", add,
         nest(C["CVM_ATTR_TARGET_DEVICE"],
              mg.nla(C["CVM_TARGET_DEVICE_ATTR_ID"], u16(9)) +
              mg.nla(C["CVM_TARGET_DEVICE_ATTR_PATH"], strz("/dev/ram0"))),
         errno.EINVAL),
        ("DEVICE_ADD unknown flag bit", add,
         device(9, "/dev/ram0", 1 << 7), errno.EINVAL),
        ("DEVICE_ADD FORCE without FORMAT", add,
         device(9, "/dev/ram0", FORCE), errno.EINVAL),
        ("DEVICE_ADD path too long", add, device(9, "/" + "x" * 300),
         errno.EINVAL),
        ("DEVICE_ADD path not NUL-terminated", add,
         nest(C["CVM_ATTR_TARGET_DEVICE"],
              mg.nla(C["CVM_TARGET_DEVICE_ATTR_ID"], u32(9)) +
              mg.nla(C["CVM_TARGET_DEVICE_ATTR_PATH"], b"/dev/ram0")),
         errno.EINVAL),
        ("DEVICE_ADD nonexistent path", add, device(9, "/dev/nonexistent"),
         errno.ENOENT),
        ("DEVICE_ADD with USED (sent only in replies)", add,
         nest(C["CVM_ATTR_TARGET_DEVICE"],
              mg.nla(C["CVM_TARGET_DEVICE_ATTR_ID"], u32(9)) +
              mg.nla(C["CVM_TARGET_DEVICE_ATTR_PATH"], strz("/dev/ram0")) +
              mg.nla(C["CVM_TARGET_DEVICE_ATTR_USED"], u64(0))),
         errno.EINVAL),
        ("DEVICE_ADD not nested", add,
         mg.nla(C["CVM_ATTR_TARGET_DEVICE"], u32(9)), errno.EINVAL),
        ("DEVICE_ADD unknown nested attribute", add,
         nest(C["CVM_ATTR_TARGET_DEVICE"], mg.nla(40, u32(1))), errno.EINVAL),
        ("DEVICE_REMOVE unknown id", rm, device(dev_id=12345), errno.ENODEV),
        ("DEVICE_REMOVE with a path", rm, device(12345, "/dev/ram0"),
         errno.EINVAL),
        ("DEVICE_REMOVE without id", rm, device(), errno.EINVAL),
        ("LISTEN without port", lst, listener(addr="127.0.0.1"), errno.EINVAL),
        ("LISTEN port 0", lst, listener("127.0.0.1", 0), errno.ERANGE),
        ("LISTEN bad address", lst, listener("not-an-ip", 4420),
         errno.EINVAL),
        ("LISTEN unknown transport", lst,
         listener("127.0.0.1", 4420, "carrier-pigeon"), errno.EPROTONOSUPPORT),
        ("LISTEN with a cluster id (no unauthenticated mode)", lst,
         listener("127.0.0.1", 4420) +
         mg.nla(C["CVM_ATTR_CLUSTER_ID"], u64(1)), errno.EINVAL),
        ("HOSTS_SET without a device", hs, b"", errno.EINVAL),
        ("HOSTS_SET short key", hs,
         device(dev_id=9) + hosts_attr(host_entry(1, b"abc")), errno.ERANGE),
        ("HOSTS_SET entry without a key", hs,
         device(dev_id=9) + hosts_attr(mg.nla(
             1 | 0x8000,
             mg.nla(C["CVM_TARGET_HOST_ATTR_HOST_ID"], u64(1)) +
             mg.nla(C["CVM_TARGET_HOST_ATTR_KEY_ID"], u32(0)))),
         errno.EINVAL),
        ("HOSTS_SET unknown flag", hs,
         device(dev_id=9) + hosts_attr(host_entry(1, bytes(32), 0, 1 << 5)),
         errno.EINVAL),
        ("HOSTS_SET one host twice with one key id", hs,
         device(dev_id=9) + hosts_attr(host_entry(1, bytes(32)) +
                                       host_entry(1, bytes(32))),
         errno.EINVAL, "twice"),
        ("HOSTS_SET one host's entries differ in FLAGS", hs,
         device(dev_id=9) + hosts_attr(host_entry(1, bytes(32), 0, 1) +
                                       host_entry(1, bytes(32), 1, 0)),
         errno.EINVAL, "FLAGS"),
        ("HOSTS_SET with a path", hs, device(9, "/dev/ram0"), errno.EINVAL),
        ("UNLISTEN not listening", ul, listener("127.0.0.1", 1), errno.ENOENT),
        ("DEVICE_ADD with a LISTEN attribute", add,
         device(9, "/dev/ram0") + listener("127.0.0.1", 4420), errno.EINVAL),
        ("VOLUME_FENCE without attributes", fence, b"", errno.EINVAL),
        ("VOLUME_FENCE without epoch", fence, volume(3), errno.EINVAL),
        ("VOLUME_FENCE epoch 0", fence, volume(3, 0), errno.ERANGE),
        ("VOLUME_FENCE epoch as u32", fence,
         nest(C["CVM_ATTR_VOLUME"],
              mg.nla(C["CVM_VOLUME_ATTR_ID"], u64(3)) +
              mg.nla(C["CVM_VOLUME_ATTR_ATTACH_EPOCH"], u32(2))),
         errno.EINVAL),
        ("VOLUME_FENCE with a volume size", fence,
         nest(C["CVM_ATTR_VOLUME"],
              mg.nla(C["CVM_VOLUME_ATTR_ID"], u64(3)) +
              mg.nla(C["CVM_VOLUME_ATTR_ATTACH_EPOCH"], u64(2)) +
              mg.nla(C["CVM_VOLUME_ATTR_SIZE"], u64(4096))),
         errno.EINVAL),
        ("VOLUME_FENCE device not served", fence,
         volume(3, 2) + device(dev_id=12345), errno.ENODEV),
        ("VOLUME_FENCE device with a path", fence,
         volume(3, 2) + device(0, "/dev/ram0"), errno.EINVAL),
    ]
    for case in cases:
        t.expect(*case)
    try:
        t.dump("CVM_CMD_TARGET_DEVICE_LIST", device(dev_id=1))
    except Refused as e:
        if "EINVAL" not in str(e):
            raise mg.Fail("DEVICE_LIST with an attribute: %s" % e)
        print("ok   DEVICE_LIST with an attribute refused: EINVAL")
    else:
        raise mg.Fail("DEVICE_LIST with an attribute: accepted")


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    t = Target()
    cmd, args = argv[1], argv[2:]
    transport = None
    if "--transport" in args:
        i = args.index("--transport")
        if i + 1 >= len(args):
            print("--transport wants a name", file=sys.stderr)
            return 2
        transport = args[i + 1]
        del args[i:i + 2]
    try:
        if cmd == "add":
            flags = (FORMAT if "format" in args else 0) | \
                    (FORCE if "force" in args else 0)
            t.call("CVM_CMD_TARGET_DEVICE_ADD",
                   device(int(args[0]), args[1], flags if flags else None))
            hosts_set(t, int(args[0]), [(TEST_HOST_ID, TEST_SECRET, 0, True)])
        elif cmd == "hosts":
            # hosts DEV [HOST_ID:SECRETHEX:KEY_ID:all|some ...]
            specs = []
            for spec in args[1:]:
                h, sec, kid, scope = spec.split(":")
                specs.append((int(h), bytes.fromhex(sec), int(kid),
                              scope == "all"))
            hosts_set(t, int(args[0]), specs)
        elif cmd == "remove":
            t.call("CVM_CMD_TARGET_DEVICE_REMOVE", device(int(args[0])))
        elif cmd == "listen":
            t.call("CVM_CMD_TARGET_LISTEN",
                   listener(args[0], int(args[1]), transport))
        elif cmd == "unlisten":
            t.call("CVM_CMD_TARGET_UNLISTEN",
                   listener(args[0], int(args[1]), transport))
        elif cmd == "fence":
            # fence VOLUME EPOCH [DEVICE [HOST_ID]]
            attrs = volume(int(args[0]), int(args[1]))
            if len(args) >= 3 and int(args[2]) >= 0:
                attrs += device(dev_id=int(args[2]))
            if len(args) >= 4:
                attrs += mg.nla(C["CVM_ATTR_HOST_ID"], u64(int(args[3])))
            t.call("CVM_CMD_TARGET_VOLUME_FENCE", attrs)
        elif cmd in ("objects", "conns", "pinned"):
            replies = t.call("CVM_CMD_STATUS_GET", b"")
            attrs = mg.parse_attrs(replies[0][4:])
            st = mg.parse_attrs(mg.one(attrs, C["CVM_ATTR_STATUS"], "STATUS"))
            name = {"objects": "OBJECTS", "conns": "CONNECTIONS",
                    "pinned": "PINNED_BYTES"}[cmd]
            v = mg.one(st, C["CVM_STATUS_ATTR_" + name], name)
            print(struct.unpack("=Q", v)[0] if cmd == "pinned" else mg.u32(v))
        elif cmd == "list":
            for r in t.dump("CVM_CMD_TARGET_DEVICE_LIST"):
                top = mg.parse_attrs(r[4:])
                d = mg.parse_attrs(mg.one(top, C["CVM_ATTR_TARGET_DEVICE"],
                                          "TARGET_DEVICE"))

                def get(name):
                    v = mg.one(d, C["CVM_TARGET_DEVICE_ATTR_" + name], name)
                    return struct.unpack("=Q", v)[0] if len(v) == 8 \
                        else mg.u32(v)
                path = mg.one(d, C["CVM_TARGET_DEVICE_ATTR_PATH"], "PATH")
                print(get("ID"), path.rstrip(b"\0").decode(),
                      *(get(n) for n in ("CAPACITY", "USED", "OBJECTS",
                                         "INTENTS")))
        elif cmd == "malformed":
            malformed(t)
        else:
            print("unknown command %s" % cmd, file=sys.stderr)
            return 2
    except (Refused, mg.Fail) as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
