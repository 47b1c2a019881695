#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Loads a cvm_target store replayed from a dm-log-writes log, cut at
each point given, and checks it against the states recorded at the marks
(tests/vm/metadata_replay.sh).  One process for the whole loop: under TCG
each python start costs more than a cut.

  store_cuts.py LOG REPLAY_DEV STATE_DIR DATA_START CVM_WIRE HOST:PORT
                VOLUME NOBJ FENCE_STEP CUT...

STATE_DIR holds sK.sums and sK.stat (cvm-wire sums / stats of objects
0..NOBJ-1 after step K, marked "sK" in the log).  At the cut after log
entry N-1 the device must load as device 1, and each object must read and
STAT as at the last mark before the cut or as the step in flight left it
(the next mark's state).  From step FENCE_STEP on, a write of attach epoch
6 must be refused STALE_ATTACH.  Loading may write metadata (reclaiming a
bit without an entry), so the first DATA_START blocks are put back after
each cut.  Prints a line per bad cut and "N cuts, M bad"; exit 1 if any.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import log_writes  # noqa: E402
import target_genl  # noqa: E402


def main(argv):
    (log, dev, states, data_start, wire, ep, vol, nobj,
     fence_step) = argv[1:10]
    cuts = [int(c) for c in argv[10:]]
    meta_len = int(data_start) * 4096
    nobj = int(nobj)
    fence_step = int(fence_step)
    ss, entries = log_writes.read_log(log)
    steps = {e[4]: i for i, e in enumerate(entries)
             if e[2] & log_writes.MARK and e[4].startswith("s")}
    nsteps = len(steps)

    def expected(k, what):
        k = min(k, nsteps - 1)
        with open(os.path.join(states, "s%d.%s" % (k, what))) as f:
            return f.read().splitlines()

    def run(*args):
        return subprocess.run([wire, ep, *args, "--device", "1", "--volume",
                               vol], capture_output=True, text=True)

    t = target_genl.Target()
    applied, bad = 0, 0
    with open(log, "rb") as logf, open(dev, "r+b") as devf:
        for cut in cuts:
            log_writes.apply(entries[applied:cut], ss, logf, devf)
            applied = cut
            marks = [int(e[4][1:]) for e in entries[:cut]
                     if e[2] & log_writes.MARK and e[4] in steps]
            k = marks[-1] if marks else -1
            devf.seek(0)
            meta = devf.read(meta_len)
            why = check_cut(t, run, expected, k, nobj, fence_step)
            devf.seek(0)
            devf.write(meta)
            log_writes.sync(devf)
            if why:
                bad += 1
                print("cut after entry %d (step %d done): %s" % (cut - 1, k,
                                                                 why))
    print("%d cuts, %d bad" % (len(cuts), bad))
    return 1 if bad else 0


def check_cut(t, run, expected, k, nobj, fence_step):
    try:
        t.call("CVM_CMD_TARGET_DEVICE_ADD", target_genl.device(1, DEV_PATH))
    except target_genl.Refused as e:
        return "does not load: %s" % e
    why = []
    got = {"sums": run("sums", "--object", "0", "--count", str(nobj),
                       "--length", "65536"),
           "stat": run("stats", "--object", "0", "--count", str(nobj))}
    lines = {}
    for what, r in got.items():
        if r.returncode:
            why.append("%s failed: %s" % (what, r.stderr.strip()))
            return "; ".join(why) + remove(t)
        lines[what] = r.stdout.splitlines() + ["(none)"] * nobj
    old = list(zip(expected(k, "sums"), expected(k, "stat")))
    new = list(zip(expected(k + 1, "sums"), expected(k + 1, "stat")))
    for o in range(nobj):
        got_o = (lines["sums"][o], lines["stat"][o])
        if got_o in (old[o], new[o]):
            continue
        # Old bytes under the new entry, or new bytes under the old one, only
        # where the entry says the replicas may differ: its intent bit set.
        if (got_o[0] in (old[o][0], new[o][0]) and
                got_o[1] in (old[o][1], new[o][1]) and
                " intent 1 " in got_o[1]):
            continue
        why.append("object %d reads and STATs %s, want %s or %s" % (
            o, got_o, old[o], new[o]))
    if k >= fence_step:
        r = run("write", "--object", "3", "--length", "4096", "--pattern",
                "1", "--attach-epoch", "6")
        if r.returncode == 0 or "STALE_ATTACH" not in r.stderr:
            why.append("a write of attach epoch 6 was not refused: %s" %
                       r.stderr.strip())
    return "; ".join(why) + remove(t)


def remove(t):
    try:
        t.call("CVM_CMD_TARGET_DEVICE_REMOVE", target_genl.device(1))
    except target_genl.Refused as e:
        return "; remove: %s" % e
    return ""


DEV_PATH = None

if __name__ == "__main__":
    if len(sys.argv) < 11:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    DEV_PATH = sys.argv[2]
    sys.exit(main(sys.argv))
