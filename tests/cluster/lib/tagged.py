#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Tagged blocks: a writer whose every acknowledged write can be checked
after a crash (tests/cluster/initiator_crash.sh).

The first TAGS 4 KiB blocks of each of OBJECTS objects (OBJ bytes apart)
are tagged: a block holds (magic, block index, seq), seq growing by one per
write over the whole run.  The writer logs "issue SEQ BLOCK" before and
"ok SEQ BLOCK" after each O_DIRECT write to LOG, a line at a time (on the
cluster's 9p share: it survives the writer's machine losing power).

  tagged.py write DEV LOG --objects N [--fill] [--count C]
      --fill: every tagged block once, in order; else C (default: until
      killed) writes of random tagged blocks.
  tagged.py check DEV LOG --objects N
      every tagged block holds a write that was issued for it and is not
      older than the last acknowledged one; prints the counts.
"""
import argparse
import mmap
import os
import random
import struct
import sys

MAGIC = b"CVMTAG01"
BLK = 4096
OBJ = 1 << 20
TAGS = 16


def blocks(objects):
    return [o * (OBJ // BLK) + j for o in range(objects) for j in range(TAGS)]


def read_log(path):
    issued, last_ok, top = {}, {}, 0
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) != 3:
                    continue        # the line a power cut tore
                what, seq, b = parts[0], int(parts[1]), int(parts[2])
                top = max(top, seq)
                if what == "issue":
                    issued.setdefault(b, set()).add(seq)
                elif what == "ok":
                    last_ok[b] = max(last_ok.get(b, 0), seq)
    except FileNotFoundError:
        pass
    return issued, last_ok, top


def write(a):
    _, _, seq = read_log(a.log)
    todo = blocks(a.objects)
    buf = mmap.mmap(-1, BLK)
    fd = os.open(a.dev, os.O_WRONLY | os.O_DIRECT)
    log = open(a.log, "a", buffering=1)
    n = 0
    while True:
        if a.fill:
            if n == len(todo):
                break
            b = todo[n]
        else:
            if a.count and n == a.count:
                break
            b = random.choice(todo)
        seq += 1
        n += 1
        buf.seek(0)
        buf.write(struct.pack("<8sQQ", MAGIC, b, seq).ljust(BLK, b"\0"))
        log.write("issue %d %d\n" % (seq, b))
        log.flush()
        os.pwrite(fd, buf, b * BLK)
        log.write("ok %d %d\n" % (seq, b))
        log.flush()
    os.close(fd)
    print("%d writes" % n)


def check(a):
    issued, last_ok, _ = read_log(a.log)
    fd = os.open(a.dev, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, BLK)
    bad = newer = 0
    todo = blocks(a.objects)
    for b in todo:
        os.preadv(fd, [buf], b * BLK)
        magic, blk, seq = struct.unpack_from("<8sQQ", buf, 0)
        if magic != MAGIC or blk != b:
            print("block %d: no tag of its own" % b)
            bad += 1
            continue
        if seq not in issued.get(b, ()):
            print("block %d: seq %d was never issued for it" % (b, seq))
            bad += 1
        elif seq < last_ok.get(b, 0):
            print("block %d: seq %d, older than acknowledged %d" %
                  (b, seq, last_ok[b]))
            bad += 1
        elif seq > last_ok.get(b, 0):
            newer += 1      # issued, not acknowledged: either is right
    os.close(fd)
    print("%d tagged blocks, %d wrong, %d hold an unacknowledged write" %
          (len(todo), bad, newer))
    return 1 if bad else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["write", "check"])
    p.add_argument("dev")
    p.add_argument("log")
    p.add_argument("--objects", type=int, required=True)
    p.add_argument("--fill", action="store_true")
    p.add_argument("--count", type=int, default=0)
    a = p.parse_args()
    if a.cmd == "write":
        write(a)
        return 0
    return check(a)


if __name__ == "__main__":
    sys.exit(main())
