#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Device-mapper without dmsetup (not in the test VM): just the ioctls
the tests need (linux/dm-ioctl.h, interface version 4).

  dm_table.py create NAME DEV     NAME maps DEV one to one (linear)
  dm_table.py error NAME          every I/O to NAME fails from now on
  dm_table.py remove NAME
"""
import fcntl
import os
import struct
import sys

DM_IOCTL_SIZE = 312
DM_DEV_CREATE, DM_DEV_REMOVE, DM_DEV_SUSPEND, DM_TABLE_LOAD = 3, 4, 6, 9


def ioctl_nr(nr):
    return (3 << 30) | (DM_IOCTL_SIZE << 16) | (0xFD << 8) | nr


def call(nr, name, targets=()):
    """One dm ioctl on NAME with `targets`: (start, length, type, params)."""
    body = b""
    for i, (start, length, ttype, params) in enumerate(targets):
        p = params.encode() + b"\0"
        p += b"\0" * (-(40 + len(p)) % 8)
        nxt = 40 + len(p) if i + 1 < len(targets) else 0
        body += struct.pack("=QQiI16s", start, length, 0, nxt,
                            ttype.encode()) + p
    hdr = struct.pack("=3IIIIiIII", 4, 0, 0, DM_IOCTL_SIZE + len(body),
                      DM_IOCTL_SIZE, len(targets), 0, 0, 0, 0)
    hdr += struct.pack("=Q", 0) + name.encode().ljust(128, b"\0")
    hdr = hdr.ljust(DM_IOCTL_SIZE, b"\0")
    buf = bytearray(hdr + body)
    fd = os.open("/dev/mapper/control", os.O_RDWR)
    try:
        fcntl.ioctl(fd, ioctl_nr(nr), buf)
    finally:
        os.close(fd)


def sectors(dev):
    with open(f"/sys/class/block/{os.path.basename(dev)}/size") as f:
        return int(f.read())


def dm_sectors(name):
    for b in os.listdir("/sys/block"):
        try:
            with open(f"/sys/block/{b}/dm/name") as f:
                if f.read().strip() == name:
                    return sectors(b)
        except OSError:
            pass
    raise SystemExit(f"no device-mapper device {name}")


def main():
    op, name = sys.argv[1], sys.argv[2]
    if op == "create":
        dev = sys.argv[3]
        call(DM_DEV_CREATE, name)
        call(DM_TABLE_LOAD, name, [(0, sectors(dev), "linear", f"{dev} 0")])
        call(DM_DEV_SUSPEND, name)  # resume: the table goes live
    elif op == "error":
        call(DM_TABLE_LOAD, name, [(0, dm_sectors(name), "error", "")])
        call(DM_DEV_SUSPEND, name)
    elif op == "remove":
        call(DM_DEV_REMOVE, name)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
