#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Drive cvm.ko's "cvm" generic netlink family from tests (raw netlink).

A map encoder for kernel/common/map_codec.h and the MAP_SET, VOLUME_ATTACH,
VOLUME_DETACH, VOLUME_LIST and STATUS_GET requests, on top of the raw
netlink client of tests/vm/module_genl.py.  Used as a library by
tests/vm/initiator_*.sh through its command line:

  initiator_genl.py map-set EPOCH [--hosts N] [--port-base P]
        [--addr A[,A...]] [--transport T[,T...]] [--chunk BYTES]
                                        device i at address i (the last
                                        one for the rest), port P + i
  initiator_genl.py attach ID POOL SIZE [--object-size B] [--epoch E]
        [--name N]                      prints the minor
  initiator_genl.py detach ID [--force]
  initiator_genl.py list                prints "id pool size minor name"
  initiator_genl.py status              prints "epoch N volumes N"
  initiator_genl.py stale               prints the stale object count
  initiator_genl.py events SECONDS      prints "path-down|path-up DEV ADDR
                                        STALE" per event for SECONDS
  initiator_genl.py refusals            malformed requests are refused

Errors print "ERRNO-NAME: extack text" on stderr and exit 1.
"""
import argparse
import errno
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
import module_genl as mg  # noqa: E402

# include/uapi/linux/cvm.h, read by module_genl.py: the numbers follow it.
C = mg.C
CMD_STATUS_GET = C["CVM_CMD_STATUS_GET"]
CMD_MAP_SET = C["CVM_CMD_MAP_SET"]
CMD_VOLUME_ATTACH = C["CVM_CMD_VOLUME_ATTACH"]
CMD_VOLUME_DETACH = C["CVM_CMD_VOLUME_DETACH"]
CMD_VOLUME_LIST = C["CVM_CMD_VOLUME_LIST"]
ATTR_STATUS = C["CVM_ATTR_STATUS"]
ATTR_MAP_CHUNK = C["CVM_ATTR_MAP_CHUNK"]
ATTR_MAP_OFFSET = C["CVM_ATTR_MAP_OFFSET"]
ATTR_MAP_TOTAL_LEN = C["CVM_ATTR_MAP_TOTAL_LEN"]
ATTR_MAP_PATHS = C["CVM_ATTR_MAP_PATHS"]
ATTR_CLUSTER_ID = C["CVM_ATTR_CLUSTER_ID"]
ATTR_HOST_ID = C["CVM_ATTR_HOST_ID"]
ATTR_HOST_KEY = C["CVM_ATTR_HOST_KEY"]
ATTR_KEY_ID = C["CVM_ATTR_KEY_ID"]
# target_genl.py's test host: what every raw test's cvm.ko speaks for.
TEST_HOST_ID = 1
TEST_SECRET = bytes(range(1, 33))


def test_credentials(host_id=TEST_HOST_ID, secret=TEST_SECRET, key_id=0):
    return (mg.nla(ATTR_HOST_ID, struct.pack("=Q", host_id)) +
            mg.nla(ATTR_HOST_KEY, secret) +
            mg.nla(ATTR_KEY_ID, struct.pack("=I", key_id)))
ATTR_VOLUME = C["CVM_ATTR_VOLUME"]
MAP_PATHS_ATTR_PATH = C["CVM_MAP_PATHS_ATTR_PATH"]
PATH_ATTR_DEVICE_ID = C["CVM_PATH_ATTR_DEVICE_ID"]
PATH_ATTR_ADDR = C["CVM_PATH_ATTR_ADDR"]
PATH_ATTR_PORT = C["CVM_PATH_ATTR_PORT"]
PATH_ATTR_TRANSPORT = C["CVM_PATH_ATTR_TRANSPORT"]
VOL_ID = C["CVM_VOLUME_ATTR_ID"]
VOL_POOL_ID = C["CVM_VOLUME_ATTR_POOL_ID"]
VOL_SIZE = C["CVM_VOLUME_ATTR_SIZE"]
VOL_OBJECT_SIZE = C["CVM_VOLUME_ATTR_OBJECT_SIZE"]
VOL_ATTACH_EPOCH = C["CVM_VOLUME_ATTR_ATTACH_EPOCH"]
VOL_NAME = C["CVM_VOLUME_ATTR_NAME"]
VOL_MINOR = C["CVM_VOLUME_ATTR_MINOR"]
VOL_FLAGS = C["CVM_VOLUME_ATTR_FLAGS"]
VOL_STRIPE_UNIT = C["CVM_VOLUME_ATTR_STRIPE_UNIT"]
VOLUME_F_FORCE = 1 << 0  # CVM_VOLUME_F_FORCE
STATUS_ATTR_MAP_EPOCH = C["CVM_STATUS_ATTR_MAP_EPOCH"]
STATUS_ATTR_OBJECTS = C["CVM_STATUS_ATTR_OBJECTS"]
STATUS_ATTR_STALE_OBJECTS = C["CVM_STATUS_ATTR_STALE_OBJECTS"]
CMD_EVENT_PATH_DOWN = C["CVM_CMD_EVENT_PATH_DOWN"]
CMD_EVENT_PATH_UP = C["CVM_CMD_EVENT_PATH_UP"]
ATTR_EVENT = C["CVM_ATTR_EVENT"]
EVENT_ATTR_DEVICE_ID = C["CVM_EVENT_ATTR_DEVICE_ID"]
EVENT_ATTR_ADDR = C["CVM_EVENT_ATTR_ADDR"]
EVENT_ATTR_STALE_OBJECTS = C["CVM_EVENT_ATTR_STALE_OBJECTS"]
CTRL_ATTR_MCAST_GRP_ID = 2
NETLINK_ADD_MEMBERSHIP = 1
CHUNK_MAX = C["CVM_MAP_CHUNK_MAX"]

# kernel/common/map_codec.h, placement.h
MAP_MAGIC = 0x4D4D5643
MAP_VERSION = 3
MAP_HEADER_LEN = 48
TYPE_HOST = 1
TYPE_ROOT = 4
DEV_UP_IN = 0x3
POOL_REPLICATED = 1
POOL_EC = 2
EC_POOL_ID = 5


def crc32c(data, crc=0xFFFFFFFF):
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc


def encode_map(epoch, devices, buckets, pools):
    """devices: [(id, weight, state)]; buckets: [(id, type, [child ids])];
    pools: [(id, pg_num, kind, k, m, failure_domain[, min_size
    [, device_class]])]."""
    body = b""
    for d in devices:
        body += struct.pack("<III", *d)
    for b in buckets:
        body += struct.pack("<iII", b[0], b[1], len(b[2]))
    nr_children = 0
    for b in buckets:
        for c in b[2]:
            body += struct.pack("<i", c)
            nr_children += 1
    for p in pools:
        body += struct.pack("<IIBBBBBB2x", *(tuple(p) + (0,) * (8 - len(p))))
    total = MAP_HEADER_LEN + len(body)
    hdr = struct.pack("<IHHII", MAP_MAGIC, MAP_VERSION, MAP_HEADER_LEN,
                      total, 0)
    hdr += struct.pack("<QIIIIII", epoch, len(devices), len(buckets),
                       nr_children, len(pools), 0, 0)
    blob = hdr + body
    crc = crc32c(blob[16:], crc32c(blob[:12])) ^ 0xFFFFFFFF
    return blob[:12] + struct.pack("<I", crc) + blob[16:]


def test_map(epoch, hosts=3, pg_num=64, extra_devices=0, ec=None, min_size=0,
             ec_min_size=0):
    """hosts hosts of one device each (device i on host -(i+2)), under one
    root; pool 1 replicated(1), pool 3 replicated(min(3, hosts)), and with
    ec=(k, m) pool 5 ec(k,m) (hosts must be at least k + m); min_size and
    ec_min_size: of pools 3 and 5 (0: the policy's default).
    extra_devices adds more devices, spread over the hosts (to grow the
    blob)."""
    devices = [(i, 0x10000, DEV_UP_IN) for i in range(hosts + extra_devices)]
    buckets = [(-1, TYPE_ROOT, [-(i + 2) for i in range(hosts)])]
    for i in range(hosts):
        kids = [i] + list(range(hosts + i, hosts + extra_devices, hosts))
        buckets.append((-(i + 2), TYPE_HOST, kids))
    pools = [(1, pg_num, POOL_REPLICATED, 1, 0, TYPE_HOST),
             (3, pg_num, POOL_REPLICATED, min(3, hosts), 0, TYPE_HOST,
              min_size)]
    if ec:
        pools.append((EC_POOL_ID, pg_num, POOL_EC, ec[0], ec[1], TYPE_HOST,
                      ec_min_size))
    return encode_map(epoch, devices, buckets, pools)


def u32(v):
    return struct.pack("=I", v)


def u64(v):
    return struct.pack("=Q", v)


def nest(atype, payload):
    return mg.nla(atype | mg.NLA_F_NESTED, payload)


def paths_attr(devices, addr="127.0.0.1", port_base=7001, transport="tcp"):
    """Device i is served at port_base + i, at addr, or at addr[i] when
    addr is a list (its last address for the devices past its end); the
    same for transport."""
    body = b""
    for i in devices:
        a = addr if isinstance(addr, str) else addr[min(i, len(addr) - 1)]
        t = transport
        if t and not isinstance(t, str):
            t = t[min(i, len(t) - 1)]
        p = mg.nla(PATH_ATTR_DEVICE_ID, u32(i))
        p += mg.nla(PATH_ATTR_ADDR, a.encode() + b"\0")
        p += mg.nla(PATH_ATTR_PORT, struct.pack("=H", port_base + i))
        if t:
            p += mg.nla(PATH_ATTR_TRANSPORT, t.encode() + b"\0")
        body += nest(MAP_PATHS_ATTR_PATH, p)
    return nest(ATTR_MAP_PATHS, body)


class Cvm:
    def __init__(self):
        self.g = mg.Genl()
        self.fid = self.g.family_id("cvm")

    def req(self, cmd, attrs=b""):
        return self.g.request(self.fid, cmd, attrs)

    def dump(self, cmd, attrs=b""):
        """NLM_F_DUMP request; returns (replies, errno, extack)."""
        return self.g.dump(self.fid, cmd, attrs)

    def map_set(self, blob, paths, chunk=CHUNK_MAX, extra=None,
                total=None):
        """Upload blob in chunks; paths/extra (default: the test host's
        credentials) go with the last chunk."""
        total = len(blob) if total is None else total
        if extra is None:
            extra = test_credentials()
        off = 0
        while True:
            piece = blob[off:off + chunk]
            last = off + len(piece) >= len(blob)
            attrs = mg.nla(ATTR_MAP_CHUNK, piece)
            if off or not last or total != len(blob):
                attrs += mg.nla(ATTR_MAP_OFFSET, u32(off))
                attrs += mg.nla(ATTR_MAP_TOTAL_LEN, u32(total))
            if last:
                attrs += paths + extra
            _, err, text = self.req(CMD_MAP_SET, attrs)
            if err or last:
                return err, text
            off += len(piece)

    def status(self):
        replies, err, text = self.req(CMD_STATUS_GET)
        if err:
            raise mg.Fail("STATUS_GET: %s %s" % (os.strerror(err), text))
        st = mg.parse_attrs(mg.parse_attrs(replies[0][4:])[ATTR_STATUS][0][1])
        epoch = struct.unpack("=Q", st[STATUS_ATTR_MAP_EPOCH][0][1])[0]
        vols = struct.unpack("=I", st[STATUS_ATTR_OBJECTS][0][1])[0]
        return epoch, vols

    def stale(self):
        replies, err, text = self.req(CMD_STATUS_GET)
        if err:
            raise mg.Fail("STATUS_GET: %s %s" % (os.strerror(err), text))
        st = mg.parse_attrs(mg.parse_attrs(replies[0][4:])[ATTR_STATUS][0][1])
        if STATUS_ATTR_STALE_OBJECTS not in st:
            raise mg.Fail("STATUS_GET without STALE_OBJECTS")
        return struct.unpack("=Q", st[STATUS_ATTR_STALE_OBJECTS][0][1])[0]

    def events(self, seconds):
        """Join the "events" group; print each event for seconds."""
        fam = self.g.family("cvm")
        group = None
        for entries in mg.parse_attrs(
                fam[mg.CTRL_ATTR_MCAST_GROUPS][0][1]).values():
            for _, body in entries:
                grp = mg.parse_attrs(body)
                name = grp[mg.CTRL_ATTR_MCAST_GRP_NAME][0][1]
                if name.rstrip(b"\0") == b"events":
                    group = struct.unpack(
                        "=I", grp[CTRL_ATTR_MCAST_GRP_ID][0][1])[0]
        if group is None:
            raise mg.Fail("no events group")
        sock = self.g.sock
        sock.setsockopt(mg.SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
        print("listening", flush=True)
        deadline = time.monotonic() + seconds
        names = {CMD_EVENT_PATH_DOWN: "path-down",
                 CMD_EVENT_PATH_UP: "path-up"}
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                return
            off = 0
            while off + 16 <= len(data):
                mlen, mtype = struct.unpack_from("=IH", data, off)
                payload = data[off + 16:off + mlen]
                off += (mlen + 3) & ~3
                if mtype != self.fid or payload[0] not in names:
                    continue
                ev = mg.parse_attrs(mg.parse_attrs(payload[4:])[ATTR_EVENT][0][1])
                dev = struct.unpack("=I", ev[EVENT_ATTR_DEVICE_ID][0][1])[0]
                addr = ev[EVENT_ATTR_ADDR][0][1].rstrip(b"\0").decode()
                nst = struct.unpack("=Q", ev[EVENT_ATTR_STALE_OBJECTS][0][1])[0]
                print("%s %d %s %d" % (names[payload[0]], dev, addr, nst),
                      flush=True)


def volume_attrs(vid=None, pool=None, size=None, object_size=None,
                 epoch=None, name=None, flags=None, minor=None,
                 stripe_unit=None):
    body = b""
    if vid is not None:
        body += mg.nla(VOL_ID, u64(vid))
    if pool is not None:
        body += mg.nla(VOL_POOL_ID, u32(pool))
    if size is not None:
        body += mg.nla(VOL_SIZE, u64(size))
    if object_size is not None:
        body += mg.nla(VOL_OBJECT_SIZE, u32(object_size))
    if epoch is not None:
        body += mg.nla(VOL_ATTACH_EPOCH, u64(epoch))
    if name is not None:
        body += mg.nla(VOL_NAME, name.encode() + b"\0")
    if flags is not None:
        body += mg.nla(VOL_FLAGS, u32(flags))
    if minor is not None:
        body += mg.nla(VOL_MINOR, u32(minor))
    if stripe_unit is not None:
        body += mg.nla(VOL_STRIPE_UNIT, u32(stripe_unit))
    return nest(ATTR_VOLUME, body)


def parse_volume(payload):
    v = mg.parse_attrs(mg.parse_attrs(payload[4:])[ATTR_VOLUME][0][1])

    def get(t, fmt):
        return struct.unpack(fmt, v[t][0][1])[0]
    return {"id": get(VOL_ID, "=Q"), "pool": get(VOL_POOL_ID, "=I"),
            "size": get(VOL_SIZE, "=Q"),
            "object_size": get(VOL_OBJECT_SIZE, "=I"),
            "epoch": get(VOL_ATTACH_EPOCH, "=Q"),
            "name": v[VOL_NAME][0][1].rstrip(b"\0").decode(),
            "minor": get(VOL_MINOR, "=I")}


def fail(err, text):
    print("%s: %s" % (errno.errorcode.get(err, str(err)), text),
          file=sys.stderr)
    return 1


def expect(c, what, cmd, attrs, want_err, want_text=None):
    replies, err, text = c.req(cmd, attrs)
    if err != want_err:
        raise mg.Fail("%s: got %s (%r), want %s" % (
            what, errno.errorcode.get(err, "success"), text,
            errno.errorcode.get(want_err, "success")))
    if want_text is not None and want_text not in text:
        raise mg.Fail("%s: extack %r, want %r" % (what, text, want_text))
    print("ok   %s: %s %r" % (what, errno.errorcode.get(err, "OK"), text))


def refusals(c):
    """Malformed requests, each refused with a reason; nothing changes."""
    epoch, vols = c.status()
    good = test_map(epoch + 1)
    paths = paths_attr(range(3))
    chunk = lambda b: mg.nla(ATTR_MAP_CHUNK, b)  # noqa: E731
    expect(c, "MAP_SET without a chunk", CMD_MAP_SET, paths, errno.EINVAL)
    expect(c, "MAP_SET without paths", CMD_MAP_SET, chunk(good),
           errno.EINVAL, "CVM_ATTR_MAP_PATHS")
    expect(c, "MAP_SET truncated blob", CMD_MAP_SET,
           chunk(good[:-4]) + paths, errno.EBADMSG, "truncated")
    expect(c, "MAP_SET header only", CMD_MAP_SET, chunk(good[:20]) + paths,
           errno.EBADMSG)
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    expect(c, "MAP_SET bad CRC", CMD_MAP_SET, chunk(bytes(bad)) + paths,
           errno.EBADMSG)
    expect(c, "MAP_SET trailing bytes", CMD_MAP_SET,
           chunk(good + b"\0\0\0\0") + paths, errno.EBADMSG)
    bad = bytearray(good)
    bad[0] ^= 1
    expect(c, "MAP_SET bad magic", CMD_MAP_SET, chunk(bytes(bad)) + paths,
           errno.EBADMSG, "magic")
    expect(c, "MAP_SET epoch 0", CMD_MAP_SET,
           chunk(test_map(0)) + paths, errno.ESTALE)
    if epoch:
        expect(c, "MAP_SET same epoch", CMD_MAP_SET,
               chunk(test_map(epoch)) + paths, errno.ESTALE)
    expect(c, "MAP_SET path for unknown device", CMD_MAP_SET,
           chunk(good) + paths_attr(range(4)), errno.EINVAL,
           "not in the map")
    expect(c, "MAP_SET bad address", CMD_MAP_SET,
           chunk(good) + paths_attr(range(3), addr="host.example"),
           errno.EINVAL, "numeric")
    expect(c, "MAP_SET unknown transport", CMD_MAP_SET,
           chunk(good) + paths_attr(range(3), transport="carrier-pigeon"),
           errno.EPROTONOSUPPORT)
    expect(c, "MAP_SET port 0", CMD_MAP_SET,
           chunk(good) + paths_attr(range(3), port_base=0), errno.ERANGE)
    expect(c, "MAP_SET short host key", CMD_MAP_SET,
           chunk(good) + paths + mg.nla(ATTR_HOST_KEY, b"x" * 8), errno.ERANGE)
    expect(c, "MAP_SET chunk beyond total", CMD_MAP_SET,
           chunk(good) + mg.nla(ATTR_MAP_OFFSET, u32(8)) +
           mg.nla(ATTR_MAP_TOTAL_LEN, u32(len(good))), errno.EINVAL)
    expect(c, "MAP_SET middle chunk without start", CMD_MAP_SET,
           chunk(good[8:16]) + mg.nla(ATTR_MAP_OFFSET, u32(8)) +
           mg.nla(ATTR_MAP_TOTAL_LEN, u32(len(good))), errno.ENOENT)
    expect(c, "MAP_SET paths on a first chunk", CMD_MAP_SET,
           chunk(good[:16]) + mg.nla(ATTR_MAP_TOTAL_LEN, u32(len(good))) +
           paths, errno.EINVAL, "last map chunk")
    expect(c, "MAP_SET total over the limit", CMD_MAP_SET,
           chunk(good[:16]) + mg.nla(ATTR_MAP_TOTAL_LEN, u32(1 << 30)),
           errno.ERANGE)
    bad_pool = encode_map(epoch + 1, [(0, 0x10000, 3)],
                          [(-1, TYPE_ROOT, [-2]), (-2, TYPE_HOST, [0])],
                          [(1, 3, POOL_REPLICATED, 1, 0, TYPE_HOST)])
    expect(c, "MAP_SET pg_num not a power of two", CMD_MAP_SET,
           chunk(bad_pool) + paths_attr([0]), errno.EINVAL)

    va = volume_attrs
    expect(c, "ATTACH without volume", CMD_VOLUME_ATTACH, b"", errno.EINVAL)
    expect(c, "ATTACH without size", CMD_VOLUME_ATTACH,
           va(vid=900, pool=1, object_size=1 << 22, epoch=1), errno.EINVAL)
    expect(c, "ATTACH size not 4K aligned", CMD_VOLUME_ATTACH,
           va(vid=900, pool=1, size=(1 << 20) + 512, object_size=1 << 22,
              epoch=1), errno.EINVAL, "4096")
    expect(c, "ATTACH size 0", CMD_VOLUME_ATTACH,
           va(vid=900, pool=1, size=0, object_size=1 << 22, epoch=1),
           errno.EINVAL)
    expect(c, "ATTACH object size not a power of two", CMD_VOLUME_ATTACH,
           va(vid=900, pool=1, size=1 << 20, object_size=3 << 20, epoch=1),
           errno.EINVAL, "power of two")
    expect(c, "ATTACH object size 1 KiB", CMD_VOLUME_ATTACH,
           va(vid=900, pool=1, size=1 << 20, object_size=1 << 10, epoch=1),
           errno.EINVAL)
    expect(c, "ATTACH object size 128 MiB", CMD_VOLUME_ATTACH,
           va(vid=900, pool=1, size=1 << 30, object_size=1 << 27, epoch=1),
           errno.EINVAL)
    expect(c, "ATTACH epoch 0", CMD_VOLUME_ATTACH,
           va(vid=900, pool=1, size=1 << 20, object_size=1 << 22, epoch=0),
           errno.EINVAL)
    expect(c, "ATTACH with flags", CMD_VOLUME_ATTACH,
           va(vid=900, pool=1, size=1 << 20, object_size=1 << 22, epoch=1,
              flags=VOLUME_F_FORCE), errno.EINVAL)
    expect(c, "ATTACH unknown flags", CMD_VOLUME_ATTACH,
           va(vid=900, pool=1, size=1 << 20, object_size=1 << 22, epoch=1,
              flags=2), errno.EINVAL)
    expect(c, "ATTACH with minor", CMD_VOLUME_ATTACH,
           va(vid=900, pool=1, size=1 << 20, object_size=1 << 22, epoch=1,
              minor=3), errno.EINVAL, "only sent in replies")
    expect(c, "ATTACH name too long", CMD_VOLUME_ATTACH,
           va(vid=900, pool=1, size=1 << 20, object_size=1 << 22, epoch=1,
              name="n" * 64), errno.EINVAL)
    expect(c, "ATTACH unknown pool", CMD_VOLUME_ATTACH,
           va(vid=900, pool=77, size=1 << 20, object_size=1 << 22, epoch=1),
           errno.ENOENT if epoch else errno.ENOENT)
    expect(c, "DETACH unknown volume", CMD_VOLUME_DETACH, va(vid=901),
           errno.ENOENT)
    expect(c, "DETACH without id", CMD_VOLUME_DETACH, va(flags=1),
           errno.EINVAL)
    if c.status() != (epoch, vols):
        raise mg.Fail("refused requests changed the state: %s -> %s" % (
            (epoch, vols), c.status()))


def main(argv):
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("map-set")
    p.add_argument("epoch", type=int)
    p.add_argument("--hosts", type=int, default=3)
    p.add_argument("--extra-devices", type=int, default=0)
    p.add_argument("--pg-num", type=int, default=64)
    p.add_argument("--addr", default="127.0.0.1")
    p.add_argument("--port-base", type=int, default=7001)
    p.add_argument("--transport", default="tcp")
    p.add_argument("--chunk", type=int, default=CHUNK_MAX)
    p.add_argument("--no-paths", action="store_true")
    p.add_argument("--ec", default=None, metavar="K,M",
                   help="add pool %d, ec(K,M)" % EC_POOL_ID)
    p.add_argument("--min-size", type=int, default=0,
                   help="min_size of pool 3 (0: the default)")
    p.add_argument("--ec-min-size", type=int, default=0,
                   help="min_size of pool %d (0: the default)" % EC_POOL_ID)
    p.add_argument("--host-id", type=int, default=TEST_HOST_ID,
                   help="the host this cvm.ko speaks for (test secret)")
    p = sub.add_parser("attach")
    p.add_argument("id", type=int)
    p.add_argument("pool", type=int)
    p.add_argument("size", type=int)
    p.add_argument("--object-size", type=int, default=1 << 22)
    p.add_argument("--epoch", type=int, default=1)
    p.add_argument("--name", default=None)
    p.add_argument("--stripe-unit", type=int, default=None)
    p = sub.add_parser("detach")
    p.add_argument("id", type=int)
    p.add_argument("--force", action="store_true")
    sub.add_parser("list")
    sub.add_parser("status")
    sub.add_parser("stale")
    p = sub.add_parser("events")
    p.add_argument("seconds", type=float)
    sub.add_parser("refusals")
    a = ap.parse_args(argv[1:])

    c = Cvm()
    if a.cmd == "map-set":
        ec = tuple(int(x) for x in a.ec.split(",")) if a.ec else None
        blob = test_map(a.epoch, a.hosts, a.pg_num, a.extra_devices, ec,
                        a.min_size, a.ec_min_size)
        devs = range(a.hosts)
        paths = paths_attr([] if a.no_paths else devs, a.addr.split(","),
                           a.port_base, a.transport.split(","))
        err, text = c.map_set(blob, paths, a.chunk,
                              extra=test_credentials(a.host_id))
        if err:
            return fail(err, text)
        print("map epoch %d installed (%d bytes)" % (a.epoch, len(blob)))
    elif a.cmd == "attach":
        replies, err, text = c.req(CMD_VOLUME_ATTACH, volume_attrs(
            a.id, a.pool, a.size, a.object_size, a.epoch, a.name,
            stripe_unit=a.stripe_unit))
        if err:
            return fail(err, text)
        print(parse_volume(replies[0])["minor"])
    elif a.cmd == "detach":
        _, err, text = c.req(CMD_VOLUME_DETACH, volume_attrs(
            a.id, flags=VOLUME_F_FORCE if a.force else None))
        if err:
            return fail(err, text)
    elif a.cmd == "list":
        replies, err, text = c.dump(CMD_VOLUME_LIST)
        if err:
            return fail(err, text)
        for r in replies:
            v = parse_volume(r)
            print("%(id)d %(pool)d %(size)d %(minor)d %(name)s" % v)
    elif a.cmd == "status":
        print("epoch %d volumes %d" % c.status())
    elif a.cmd == "stale":
        print(c.stale())
    elif a.cmd == "events":
        c.events(a.seconds)
    elif a.cmd == "refusals":
        refusals(c)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except mg.Fail as e:
        print("FAIL: %s" % e, file=sys.stderr)
        sys.exit(1)
