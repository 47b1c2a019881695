#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Reads and replays a dm-log-writes log (Debian ships no replay-log).

  log_writes.py entries LOG          a line per entry: index, sector,
                                     sectors, flags (F=flush U=fua
                                     D=discard M=mark), mark name
  log_writes.py replay LOG DEV FROM TO
                                     applies entries FROM .. TO-1 to DEV
                                     (discarded ranges are zeroed)

The format is the kernel's (drivers/md/dm-log-writes.c): a super block in
the first sector (magic, version, nr_entries, sectorsize), then per entry
one sector holding struct log_write_entry (sector, nr_sectors, flags,
data_len; a mark's name follows it) and, for a write, its nr_sectors of
data.  Sector numbers are in the log's sectorsize.  dm-log-writes logs a
write only once a FLUSH made it durable (FUA writes at once), so the log
up to any entry is what the disk held if power was cut there.
"""
import os
import struct
import sys

MAGIC = 0x6a736677736872
FLUSH, FUA, DISCARD, MARK = 1, 2, 4, 8
ENTRY = struct.Struct("<QQQQ")


class Bad(Exception):
    pass


def read_log(path):
    """Returns (sectorsize, [(sector, nr_sectors, flags, data_at, mark)])."""
    with open(path, "rb") as f:
        magic, version, nr, ss = struct.unpack("<QQQI", f.read(28))
        if magic != MAGIC:
            raise Bad("%s: not a dm-log-writes log (magic %#x)" % (path, magic))
        if version != 1 or ss not in (512, 1024, 2048, 4096):
            raise Bad("%s: version %d, sectorsize %d" % (path, version, ss))
        out, pos = [], 1
        for _ in range(nr):
            f.seek(pos * ss)
            head = f.read(ss)
            sector, nr_sectors, flags, data_len = ENTRY.unpack_from(head)
            mark = ""
            if flags & MARK:
                mark = head[ENTRY.size:ENTRY.size + data_len].decode(
                    errors="replace").rstrip("\0")
            pos += 1
            out.append((sector, nr_sectors, flags, pos * ss, mark))
            if not flags & DISCARD:
                pos += nr_sectors
        return ss, out


def apply(entries, ss, log, dev):
    """Writes @entries (of read_log()) from the open @log onto the open
    @dev, discarded ranges as zeroes, and makes them durable on the disk
    and out of the page cache: the target reads the disk with bios."""
    for sector, n, flags, data_at, _ in entries:
        if flags & MARK or not n:
            continue
        dev.seek(sector * ss)
        if flags & DISCARD:
            dev.write(bytes(n * ss))
        else:
            log.seek(data_at)
            dev.write(log.read(n * ss))
    sync(dev)


def sync(f):
    f.flush()
    os.fsync(f.fileno())
    os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def flag_text(flags):
    return "".join(c for bit, c in ((FLUSH, "F"), (FUA, "U"), (DISCARD, "D"),
                                    (MARK, "M")) if flags & bit) or "-"


def main(argv):
    if len(argv) < 3 or argv[1] not in ("entries", "replay"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        ss, entries = read_log(argv[2])
        if argv[1] == "entries":
            for i, (sector, n, flags, _, mark) in enumerate(entries):
                print(i, sector, n, flag_text(flags), mark or "-")
            return 0
        if len(argv) != 6:
            print(__doc__, file=sys.stderr)
            return 2
        first, end = int(argv[4]), int(argv[5])
        if not 0 <= first <= end <= len(entries):
            raise Bad("entries %d..%d: the log has %d" % (first, end,
                                                          len(entries)))
        with open(argv[2], "rb") as log, open(argv[3], "r+b") as dev:
            apply(entries[first:end], ss, log, dev)
    except (Bad, OSError, struct.error) as e:
        print("log_writes: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
