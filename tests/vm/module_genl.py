#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Raw generic netlink checks of the cvm / cvm_target families.

Used by tests/vm/module_load.sh inside the test VM; needs no library beyond
Python's socket module, so it tests the kernel side on its own.

  module_genl.py family NAME            family registered as include/uapi/linux/cvm.h says
  module_genl.py status NAME ROLE VER   CVM_CMD_STATUS_GET answers correctly
  module_genl.py strict NAME            malformed requests are refused
  module_genl.py perm NAME              refused without CAP_NET_ADMIN
  module_genl.py absent NAME            family is not registered

Exit status 0 when the check passes; otherwise a reason on stderr.
"""
import errno
import os
import re
import socket
import struct
import sys

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_ACK_TLVS = 0x200
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSGERR_ATTR_MSG = 1
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF

GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
CTRL_ATTR_VERSION = 3
CTRL_ATTR_MAXATTR = 5
CTRL_ATTR_OPS = 6
CTRL_ATTR_MCAST_GROUPS = 7
CTRL_ATTR_OP_ID = 1
CTRL_ATTR_OP_FLAGS = 2
CTRL_ATTR_MCAST_GRP_NAME = 1
GENL_ADMIN_PERM = 0x01

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def enums(path):
    """{NAME: value} of every enum constant and plain #define in a uapi header."""
    text = open(path).read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = {}
    for name, value in re.findall(r"#define\s+(\w+)\s+(\d+)\s*$", text,
                                  flags=re.M):
        out[name] = int(value)
    for body in re.findall(r"enum\s+\w+\s*\{(.*?)\}", text, flags=re.S):
        val = -1
        for item in body.split(","):
            item = item.strip()
            if not item:
                continue
            if "=" in item:
                name, expr = [x.strip() for x in item.split("=", 1)]
                val = eval(expr, {}, dict(out))  # header constants only
            else:
                name = item
                val += 1
            out[name] = val
    # CVM_X_MAX is defined as (__CVM_X_MAX - 1).
    for name in list(out):
        if name.startswith("__") and name.endswith("_MAX"):
            out[name[2:]] = out[name] - 1
    return out


# The numbers come from the headers, so the checks follow them.
_UAPI = os.path.join(TOP, "include", "uapi", "linux")
C = enums(os.path.join(_UAPI, "cvm.h"))
C.update(enums(os.path.join(_UAPI, "cvm_wire.h")))
CVM_GENL_VERSION = C["CVM_GENL_VERSION"]
CVM_CMD_STATUS_GET = C["CVM_CMD_STATUS_GET"]
CVM_ATTR_STATUS = C["CVM_ATTR_STATUS"]
CVM_ATTR_MAX = C["CVM_ATTR_MAX"]
CVM_STATUS_ATTR_ROLE = C["CVM_STATUS_ATTR_ROLE"]
CVM_STATUS_ATTR_MODULE_VERSION = C["CVM_STATUS_ATTR_MODULE_VERSION"]
CVM_STATUS_ATTR_GENL_VERSION = C["CVM_STATUS_ATTR_GENL_VERSION"]
CVM_STATUS_ATTR_WIRE_VERSION = C["CVM_STATUS_ATTR_WIRE_VERSION"]
CVM_STATUS_ATTR_MAP_EPOCH = C["CVM_STATUS_ATTR_MAP_EPOCH"]
CVM_STATUS_ATTR_OBJECTS = C["CVM_STATUS_ATTR_OBJECTS"]
CVM_WIRE_VERSION = C["CVM_WIRE_VERSION"]


class Fail(Exception):
    pass


def nla(atype, payload):
    hdr = struct.pack("=HH", 4 + len(payload), atype)
    return hdr + payload + b"\0" * (-len(payload) % 4)


def parse_attrs(buf):
    attrs = {}
    off = 0
    while off + 4 <= len(buf):
        alen, atype = struct.unpack_from("=HH", buf, off)
        if alen < 4 or off + alen > len(buf):
            raise Fail("malformed attribute at offset %d" % off)
        attrs.setdefault(atype & NLA_TYPE_MASK, []).append(
            (atype, buf[off + 4:off + alen]))
        off += (alen + 3) & ~3
    return attrs


def one(attrs, atype, what):
    vals = attrs.get(atype)
    if not vals or len(vals) != 1:
        raise Fail("expected exactly one %s attribute" % what)
    return vals[0][1]


class Genl:
    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW,
                                  NETLINK_GENERIC)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        self.sock.bind((0, 0))
        self.sock.settimeout(5)
        self.seq = 0

    def request(self, family, cmd, attrs=b"", version=1, reserved=0):
        """Send one request; return (replies, errno, extack message)."""
        self.seq += 1
        body = struct.pack("=BBH", cmd, version, reserved) + attrs
        msg = struct.pack("=IHHII", 16 + len(body), family,
                          NLM_F_REQUEST | NLM_F_ACK, self.seq, 0) + body
        self.sock.send(msg)
        replies = []
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                mlen, mtype, mflags, mseq, _ = struct.unpack_from(
                    "=IHHII", data, off)
                if mlen < 16 or off + mlen > len(data):
                    raise Fail("malformed netlink message")
                payload = data[off + 16:off + mlen]
                off += (mlen + 3) & ~3
                if mseq != self.seq:
                    continue
                if mtype == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", payload, 0)
                    text = ""
                    if mflags & NLM_F_ACK_TLVS:
                        # errno, then the echoed header (16 bytes); for
                        # errors also the request body, unless capped.
                        tlv_off = 4 + 16
                        if err and not (mflags & 0x100):  # NLM_F_CAPPED
                            tlv_off = 4 + len(msg)
                        tlvs = parse_attrs(payload[tlv_off:])
                        if NLMSGERR_ATTR_MSG in tlvs:
                            text = tlvs[NLMSGERR_ATTR_MSG][0][1]
                            text = text.rstrip(b"\0").decode()
                    return replies, -err, text
                if mtype == NLMSG_DONE:
                    return replies, 0, ""
                replies.append(payload)

    def dump(self, family, cmd, attrs=b""):
        """NLM_F_DUMP request; returns (replies, errno, extack)."""
        self.seq += 1
        body = struct.pack("=BBH", cmd, 1, 0) + attrs
        msg = struct.pack("=IHHII", 16 + len(body), family,
                          NLM_F_REQUEST | NLM_F_DUMP, self.seq, 0) + body
        self.sock.send(msg)
        replies = []
        while True:
            data = self.sock.recv(1 << 20)
            off = 0
            while off + 16 <= len(data):
                mlen, mtype, _, mseq, _ = struct.unpack_from("=IHHII", data,
                                                             off)
                payload = data[off + 16:off + mlen]
                off += (mlen + 3) & ~3
                if mseq != self.seq:
                    continue
                if mtype == NLMSG_DONE:
                    return replies, 0, ""
                if mtype == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", payload, 0)
                    return replies, -err, ""
                replies.append(payload)

    def family(self, name):
        """Return the parsed CTRL_CMD_GETFAMILY reply, or None if absent."""
        replies, err, _ = self.request(
            GENL_ID_CTRL, CTRL_CMD_GETFAMILY,
            nla(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0"))
        if err == errno.ENOENT:
            return None
        if err:
            raise Fail("CTRL_CMD_GETFAMILY %s: %s" % (name, os.strerror(err)))
        if len(replies) != 1:
            raise Fail("CTRL_CMD_GETFAMILY %s: %d replies" % (name, len(replies)))
        return parse_attrs(replies[0][4:])

    def family_id(self, name):
        attrs = self.family(name)
        if attrs is None:
            raise Fail("family %s is not registered" % name)
        return struct.unpack("=H", one(attrs, CTRL_ATTR_FAMILY_ID, "FAMILY_ID")[:2])[0]


def u32(b):
    if len(b) != 4:
        raise Fail("u32 attribute of %d bytes" % len(b))
    return struct.unpack("=I", b)[0]


def check_family(name):
    attrs = Genl().family(name)
    if attrs is None:
        raise Fail("family %s is not registered" % name)
    version = u32(one(attrs, CTRL_ATTR_VERSION, "VERSION"))
    if version != CVM_GENL_VERSION:
        raise Fail("version %d, want %d" % (version, CVM_GENL_VERSION))
    maxattr = u32(one(attrs, CTRL_ATTR_MAXATTR, "MAXATTR"))
    if maxattr != CVM_ATTR_MAX:
        raise Fail("maxattr %d, want %d" % (maxattr, CVM_ATTR_MAX))
    ops = parse_attrs(one(attrs, CTRL_ATTR_OPS, "OPS"))
    cmds = set()
    for entries in ops.values():
        for _, body in entries:
            op = parse_attrs(body)
            cmd = u32(one(op, CTRL_ATTR_OP_ID, "OP_ID"))
            flags = u32(one(op, CTRL_ATTR_OP_FLAGS, "OP_FLAGS"))
            if not flags & GENL_ADMIN_PERM:
                raise Fail("command %d lacks GENL_ADMIN_PERM" % cmd)
            cmds.add(cmd)
    if CVM_CMD_STATUS_GET not in cmds:
        raise Fail("CVM_CMD_STATUS_GET missing; commands %s" % sorted(cmds))
    groups = []
    for entries in parse_attrs(one(attrs, CTRL_ATTR_MCAST_GROUPS,
                                   "MCAST_GROUPS")).values():
        for _, body in entries:
            grp = parse_attrs(body)
            groups.append(one(grp, CTRL_ATTR_MCAST_GRP_NAME,
                              "GRP_NAME").rstrip(b"\0").decode())
    if groups != ["events"]:
        raise Fail("multicast groups %s, want ['events']" % groups)
    print("%s: version %d, commands %s, all GENL_ADMIN_PERM, groups %s"
          % (name, version, sorted(cmds), groups))


def check_status(name, role, module_version):
    g = Genl()
    fid = g.family_id(name)
    replies, err, text = g.request(fid, CVM_CMD_STATUS_GET)
    if err:
        raise Fail("STATUS_GET: %s %s" % (os.strerror(err), text))
    if len(replies) != 1:
        raise Fail("STATUS_GET: %d replies" % len(replies))
    cmd, version, reserved = struct.unpack_from("=BBH", replies[0], 0)
    if cmd != CVM_CMD_STATUS_GET or reserved:
        raise Fail("reply genlmsghdr cmd %d reserved %d" % (cmd, reserved))
    top = parse_attrs(replies[0][4:])
    if set(top) != {CVM_ATTR_STATUS}:
        raise Fail("reply top-level attributes %s" % sorted(top))
    atype, body = top[CVM_ATTR_STATUS][0]
    if not atype & NLA_F_NESTED:
        raise Fail("CVM_ATTR_STATUS without NLA_F_NESTED")
    st = parse_attrs(body)
    got = {
        "role": u32(one(st, CVM_STATUS_ATTR_ROLE, "ROLE")),
        "module_version": one(st, CVM_STATUS_ATTR_MODULE_VERSION,
                              "MODULE_VERSION").rstrip(b"\0").decode(),
        "genl_version": u32(one(st, CVM_STATUS_ATTR_GENL_VERSION,
                                "GENL_VERSION")),
        "wire_version": u32(one(st, CVM_STATUS_ATTR_WIRE_VERSION,
                                "WIRE_VERSION")),
        "map_epoch": struct.unpack("=Q", one(st, CVM_STATUS_ATTR_MAP_EPOCH,
                                             "MAP_EPOCH"))[0],
        "objects": u32(one(st, CVM_STATUS_ATTR_OBJECTS, "OBJECTS")),
    }
    want = {
        "role": role,
        "module_version": module_version,
        "genl_version": CVM_GENL_VERSION,
        "wire_version": CVM_WIRE_VERSION,
        "map_epoch": 0,
        "objects": 0,
    }
    if got != want:
        raise Fail("status %s, want %s" % (got, want))
    print("%s: status %s" % (name, got))


def expect_refused(g, name, fid, what, want_err, want_text=None, **kw):
    replies, err, text = g.request(fid, **kw)
    if err != want_err:
        raise Fail("%s: got %s, want %s" % (
            what, os.strerror(err) if err else "success",
            os.strerror(want_err)))
    if replies:
        raise Fail("%s: refused request still produced a reply" % what)
    if want_text is not None and text != want_text:
        raise Fail("%s: extack %r, want %r" % (what, text, want_text))
    print("%s: %s refused (%s%s)" % (name, what, errno.errorcode[err],
                                     ", " + repr(text) if text else ""))


def check_strict(name):
    g = Genl()
    fid = g.family_id(name)
    expect_refused(g, name, fid, "CVM_ATTR_STATUS in a request", errno.EINVAL,
                   "CVM_ATTR_STATUS is only sent in replies",
                   cmd=CVM_CMD_STATUS_GET, attrs=nla(CVM_ATTR_STATUS, b""))
    # Strict parsing checks the nesting flag before the policy's type.
    expect_refused(g, name, fid, "nested CVM_ATTR_STATUS in a request",
                   errno.EINVAL, cmd=CVM_CMD_STATUS_GET,
                   attrs=nla(CVM_ATTR_STATUS | NLA_F_NESTED, b""))
    expect_refused(g, name, fid, "unknown attribute", errno.EINVAL,
                   cmd=CVM_CMD_STATUS_GET, attrs=nla(42, struct.pack("=I", 1)))
    expect_refused(g, name, fid, "attribute type 0", errno.EINVAL,
                   cmd=CVM_CMD_STATUS_GET, attrs=nla(0, b""))
    expect_refused(g, name, fid, "truncated attribute", errno.EINVAL,
                   cmd=CVM_CMD_STATUS_GET,
                   attrs=struct.pack("=HH", 12, CVM_ATTR_STATUS))
    expect_refused(g, name, fid, "nonzero genlmsghdr.reserved", errno.EINVAL,
                   cmd=CVM_CMD_STATUS_GET, reserved=1)
    expect_refused(g, name, fid, "unknown command", errno.EOPNOTSUPP, cmd=200)
    expect_refused(g, name, fid, "CVM_CMD_UNSPEC", errno.EOPNOTSUPP, cmd=0)


def check_perm(name):
    fid = Genl().family_id(name)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            # An unprivileged uid has no capabilities left after setuid().
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            expect_refused(Genl(), name, fid, "STATUS_GET without CAP_NET_ADMIN",
                           errno.EPERM, cmd=CVM_CMD_STATUS_GET)
            code = 0
        except Fail as e:
            print("FAIL: %s" % e, file=sys.stderr)
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status):
        raise Fail("unprivileged check failed")


def check_absent(name):
    if Genl().family(name) is not None:
        raise Fail("family %s is still registered" % name)
    print("%s: not registered" % name)


def main(argv):
    usage = __doc__.split("\n\n")[2]
    checks = {
        "family": (check_family, 1),
        "status": (check_status, 3),
        "strict": (check_strict, 1),
        "perm": (check_perm, 1),
        "absent": (check_absent, 1),
    }
    if len(argv) < 2 or argv[1] not in checks or \
            len(argv) - 2 != checks[argv[1]][1]:
        print(usage, file=sys.stderr)
        return 2
    fn, _ = checks[argv[1]]
    args = argv[2:]
    if argv[1] == "status":
        args = [args[0], int(args[1]), args[2]]
    try:
        fn(*args)
    except (Fail, OSError) as e:
        print("FAIL: %s %s: %s" % (argv[1], " ".join(argv[2:]), e),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
