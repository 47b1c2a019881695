#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Self-describing 4 KiB blocks for crash tests.

Every block written carries its block number, its writer, the writer's
sequence number and a CRC, so a block read back after a crash is either a
block some write really wrote there, or detectably not (a write hole).

  tagged_blocks.py fill DEV NBLOCKS WRITERS
      write every block once (sequence 0), in large direct writes
  tagged_blocks.py write DEV NBLOCKS WRITERS SEED
      WRITERS threads write 1..8 block runs at random places of the blocks
      they own, direct, until killed; after each completed write a thread
      prints "ack WRITER SEQ"
  tagged_blocks.py check DEV NBLOCKS WRITERS SEED [ACKLOG]
      read every block and check it: intact, for this place, written by a
      write that targeted it, and not older than the last write to it that
      ACKLOG says completed.  Prints counts; exit 1 on any bad block.

Writer w owns the groups of 8 blocks g with g % WRITERS == w and writes
inside one group at a time, so the writes to a block are exactly those of
its owner, reproducible from SEED: the checker replays them.
"""
import mmap
import os
import random
import struct
import sys
import threading
import zlib

BS = 4096
GROUP = 8
MAGIC = 0x48534152434D5643  # "CVMCRASH"
HEAD = struct.Struct("<QQIIQ")  # magic, block, writer, reserved, seq


def make_block(blk, writer, seq):
    head = HEAD.pack(MAGIC, blk, writer, 0, seq)
    body = random.Random((seq << 40) ^ (writer << 24) ^ blk).randbytes(
        BS - HEAD.size - 4)
    data = head + body
    return data + struct.pack("<I", zlib.crc32(data))


def parse_block(buf):
    """(block, writer, seq) of an intact block, or None.

    The CRC alone is not enough: CRC32 is linear, so the XOR of three
    tagged blocks (what parity rebuilds from a torn stripe) has a valid
    CRC and a plausible header.  The block must be byte for byte the one
    its header names.
    """
    (crc,) = struct.unpack_from("<I", buf, BS - 4)
    if zlib.crc32(buf[:BS - 4]) != crc:
        return None
    magic, blk, writer, _, seq = HEAD.unpack_from(buf, 0)
    if magic != MAGIC or bytes(buf) != make_block(blk, writer, seq):
        return None
    return blk, writer, seq


def owner(blk, writers):
    return (blk // GROUP) % writers


def writes_of(writer, nblocks, writers, seed):
    """Yield (seq, first block, count) of writer's writes, seq 1, 2, ..."""
    rng = random.Random(seed * 1000003 + writer)
    groups = [g for g in range(nblocks // GROUP) if g % writers == writer]
    seq = 0
    while True:
        seq += 1
        g = rng.choice(groups)
        first = rng.randrange(GROUP)
        count = rng.randint(1, GROUP - first)
        yield seq, g * GROUP + first, count


def open_direct(dev, write):
    return os.open(dev, (os.O_RDWR if write else os.O_RDONLY) | os.O_DIRECT)


def fill(dev, nblocks, writers):
    fd = open_direct(dev, True)
    chunk = 64
    buf = mmap.mmap(-1, chunk * BS)
    for first in range(0, nblocks, chunk):
        n = min(chunk, nblocks - first)
        buf.seek(0)
        for b in range(first, first + n):
            buf.write(make_block(b, owner(b, writers), 0))
        os.pwrite(fd, memoryview(buf)[:n * BS], first * BS)
    os.close(fd)
    print(f"filled {nblocks} blocks")


def writer_thread(dev, nblocks, writers, seed, w, lock):
    fd = open_direct(dev, True)
    buf = mmap.mmap(-1, GROUP * BS)
    for seq, first, count in writes_of(w, nblocks, writers, seed):
        buf.seek(0)
        for b in range(first, first + count):
            buf.write(make_block(b, w, seq))
        os.pwrite(fd, memoryview(buf)[:count * BS], first * BS)
        with lock:
            print(f"ack {w} {seq}", flush=True)


def write(dev, nblocks, writers, seed):
    lock = threading.Lock()
    threads = [threading.Thread(target=writer_thread, daemon=True,
                                args=(dev, nblocks, writers, seed, w, lock))
               for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def check(dev, nblocks, writers, seed, acklog):
    acked = [0] * writers
    if acklog:
        with open(acklog, errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[0] == "ack":
                    w, s = int(parts[1]), int(parts[2])
                    if 0 <= w < writers:
                        acked[w] = max(acked[w], s)
    fd = open_direct(dev, False)
    buf = mmap.mmap(-1, nblocks * BS)
    got = 0
    while got < nblocks * BS:
        n = os.preadv(fd, [memoryview(buf)[got:]], got)
        if n <= 0:
            sys.exit(f"short read at byte {got}")
        got += n
    os.close(fd)
    tags = [parse_block(buf[b * BS:(b + 1) * BS]) for b in range(nblocks)]

    # Replay each writer far enough to cover what is on disk and acked.
    top = [acked[w] for w in range(writers)]
    for t in tags:
        if t and t[1] < writers:
            top[t[1]] = max(top[t[1]], t[2])
    history = [[0] for _ in range(nblocks)]  # seqs that wrote each block
    for w in range(writers):
        for seq, first, count in writes_of(w, nblocks, writers, seed):
            if seq > top[w]:
                break
            for b in range(first, first + count):
                history[b].append(seq)

    counts = {"old": 0, "in-flight": 0, "garbage": 0, "misplaced": 0,
              "never written": 0, "older than acked": 0}
    bad = []
    for b, t in enumerate(tags):
        w = owner(b, writers)
        last_acked = max(s for s in history[b] if s <= acked[w])
        if t is None:
            kind = "garbage"
        elif t[0] != b or t[1] != w:
            kind = "misplaced"
        elif t[2] not in history[b]:
            kind = "never written"
        elif t[2] < last_acked:
            kind = "older than acked"
        elif t[2] > acked[w]:
            kind = "in-flight"
        else:
            kind = "old"
        counts[kind] += 1
        if kind not in ("old", "in-flight"):
            bad.append((b, kind, t))
    print(f"{nblocks} blocks: " +
          ", ".join(f"{v} {k}" for k, v in counts.items()))
    for b, kind, t in bad[:20]:
        print(f"  block {b}: {kind} {t}")
    return 1 if bad else 0


def main(argv):
    if len(argv) < 5 or argv[1] not in ("fill", "write", "check"):
        sys.exit(__doc__)
    cmd, dev = argv[1], argv[2]
    try:
        nblocks, writers = int(argv[3]), int(argv[4])
        seed = int(argv[5]) if len(argv) > 5 else 0
    except ValueError:
        sys.exit("NBLOCKS, WRITERS and SEED are integers")
    if nblocks % GROUP or nblocks // GROUP < writers or writers < 1:
        sys.exit(f"NBLOCKS must be a multiple of {GROUP} with a group "
                 "per writer at least")
    if cmd == "fill":
        fill(dev, nblocks, writers)
    elif cmd == "write":
        if len(argv) != 6:
            sys.exit(__doc__)
        write(dev, nblocks, writers, seed)
    else:
        if len(argv) not in (6, 7):
            sys.exit(__doc__)
        return check(dev, nblocks, writers, seed,
                     argv[6] if len(argv) == 7 else None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
