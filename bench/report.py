#!/usr/bin/env python3
"""Turn fio's JSON output into the `make bench` results and tables.

  report.py summary FIO_JSON RW [FIO_JSON RW ...]
                                   a line per run: job, IOPS, MiB/s,
                                   latency p50/p99
  report.py assemble WORKDIR [--meta KEY=VALUE ...] [--ratio NUM/DEN ...]
            [--requested "DEV DEV ..."] [--complete 0|1]
                                   print the results JSON (bench/README.md)
  report.py table RESULTS_JSON     print the tables

bench/run-in-vm.sh writes, under WORKDIR, devices.tsv (name, path,
description, precondition seconds, status: "ok" or why the device has no
figures), jobs.tsv (name, rw, bs, iodepth) and one fio JSON file per run:
DEVICE/JOB.REP.json.  Standard library only: it runs in the test VM and on
the host.  Reads schema 1 files (no status, requested, complete) too.
"""
import argparse
import json
import os
import statistics
import sys

SCHEMA = 2
# Medians over the repeats, at the top of each result.  lat is fio's total
# latency (submission + completion): at iodepth 1, brd and nvme-tcp do most
# of an I/O inside io_submit(), where clat (completion only) does not see it.
METRICS = ("iops", "bw_mib_s", "lat_p50_us", "lat_p99_us", "clat_p50_us",
           "clat_p99_us")
TABLES = {"iops": "IOPS", "bw_mib_s": "bandwidth, MiB/s",
          "lat_p50_us": "latency p50, us (submission + completion)",
          "lat_p99_us": "latency p99, us (submission + completion)"}


class BadRun(Exception):
    pass


def fio_job(path):
    """The one job of a fio --output-format=json file."""
    try:
        with open(path) as f:
            text = f.read()
        # fio may print notes before the JSON document; start at its brace.
        job = json.loads(text[text.index("{"):])["jobs"][0]
    except (OSError, ValueError, KeyError, IndexError) as e:
        raise BadRun("%s: not fio JSON output (%s)" % (path, e))
    if job.get("error"):
        raise BadRun("%s: fio job error %s" % (path, job["error"]))
    return job


def fio_figures(path, rw):
    """The figures of the one job in a fio --output-format=json file."""
    job = fio_job(path)
    side = job["read" if rw in ("read", "randread") else "write"]
    lat = side["lat_ns"].get("percentile", {})
    clat = side["clat_ns"].get("percentile", {})
    return {
        "iops": side["iops"],
        "bw_mib_s": side["bw_bytes"] / 2**20,
        "lat_p50_us": lat.get("50.000000", 0) / 1000,
        "lat_p99_us": lat.get("99.000000", 0) / 1000,
        "clat_p50_us": clat.get("50.000000", 0) / 1000,
        "clat_p99_us": clat.get("99.000000", 0) / 1000,
        "lat_mean_us": side["lat_ns"]["mean"] / 1000,
        "slat_mean_us": side["slat_ns"]["mean"] / 1000,
        "clat_mean_us": side["clat_ns"]["mean"] / 1000,
        "ios": side["total_ios"],
        "usr_cpu": job["usr_cpu"],
        "sys_cpu": job["sys_cpu"],
    }


def read_tsv(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def ratio(num, den):
    return round(num / den, 4) if den else None


def assemble(workdir, meta, ratio_specs, requested=None, complete=True):
    devices = [{"name": r[0], "path": r[1], "description": r[2],
                "precondition_s": float(r[3]) if r[3] else None,
                "status": r[4] if len(r) > 4 else "ok"}
               for r in read_tsv(os.path.join(workdir, "devices.tsv"))]
    requested = requested or [d["name"] for d in devices]
    jobs = [{"name": r[0], "rw": r[1], "bs": r[2], "iodepth": int(r[3])}
            for r in read_tsv(os.path.join(workdir, "jobs.tsv"))]
    results = {}
    for d in devices:
        results[d["name"]] = {}
        for j in jobs:
            runs, rep = [], 1
            while True:
                p = os.path.join(workdir, d["name"],
                                 "%s.%d.json" % (j["name"], rep))
                if not os.path.exists(p):
                    break
                try:
                    runs.append(fio_figures(p, j["rw"]))
                except (BadRun, KeyError) as e:
                    print("report: left out: %s" % e, file=sys.stderr)
                rep += 1
            if not runs:
                continue
            # Median of each figure over the repeats (one run: itself).
            r = {m: round(statistics.median(x[m] for x in runs), 3)
                 for m in METRICS}
            iops = [x["iops"] for x in runs]
            r["iops_spread"] = (round((max(iops) - min(iops)) / r["iops"], 4)
                                if r["iops"] else None)
            r["runs"] = runs
            results[d["name"]][j["name"]] = r
    ratios = []
    for spec in ratio_specs:
        num, den = spec.split("/", 1)
        if num not in requested or den not in requested:
            continue
        per_job = {}
        for j in jobs:
            a = results.get(num, {}).get(j["name"])
            b = results.get(den, {}).get(j["name"])
            if not a or not b:
                continue
            per_job[j["name"]] = {
                "iops": ratio(a["iops"], b["iops"]),
                # Latency only means something without queueing.
                "lat_p50": (ratio(a["lat_p50_us"], b["lat_p50_us"])
                            if j["iodepth"] == 1 else None),
            }
        ratios.append({"name": spec, "numerator": num, "denominator": den,
                       "missing": [d for d in (num, den)
                                   if not results.get(d)],
                       "jobs": per_job})
    out = {"schema": SCHEMA}
    out.update(meta)
    out.update({"complete": complete, "requested": requested,
                "devices": devices, "jobs": jobs, "results": results,
                "ratios": ratios})
    return out


def fmt(v, metric):
    if v is None:
        return "-"
    if metric == "iops":
        return "{:,.0f}".format(v)
    if metric == "bw_mib_s":
        return "{:,.1f}".format(v)
    return "{:,.0f}".format(v) if v >= 100 else "{:.1f}".format(v)


def column_groups(names, first, width, limit=100):
    """Split columns into groups that fit in `limit` characters."""
    per = max(1, (limit - first) // width)
    return [names[i:i + per] for i in range(0, len(names), per)]


def table(doc, out=sys.stdout):
    # Every device asked for gets a column; those without figures show "-".
    devs = doc.get("requested") or [d["name"] for d in doc["devices"]]
    info = {d["name"]: d for d in doc["devices"]}
    jobs = doc["jobs"]
    jw = max([len(j["name"]) for j in jobs] + [3]) + 2
    cw = max([len(d) for d in devs] + [9]) + 2
    w = out.write
    w("CVM bench: kernel %s, %s, %ss per job, repeat %s (median), %s MiB "
      "region, commit %s\n" % (doc.get("kernel"), doc.get("date"),
                               doc.get("runtime_s"), doc.get("repeat"),
                               doc.get("size_mib"), doc.get("commit", "?")))
    if not doc.get("complete", True):
        w("INCOMPLETE: the run stopped before its end (see its log); "
          "these are the devices measured until then\n")
    for name in devs:
        d = info.get(name)
        if d is None:
            w("  %-*s MISSING: not run\n" % (cw, name))
        elif d.get("status", "ok") != "ok" and doc["results"].get(name):
            w("  %-*s PARTIAL: %s; %s\n" % (cw, name, d["status"],
                                            d["description"]))
        elif d.get("status", "ok") != "ok":
            w("  %-*s MISSING: %s\n" % (cw, name, d["status"]))
        else:
            w("  %-*s %s\n" % (cw, name, d["description"]))
    for m in TABLES:
        for group in column_groups(devs, jw, cw):
            w("\n%s\n" % TABLES[m])
            w("%-*s" % (jw, "job") +
              "".join("%*s" % (cw, d) for d in group) + "\n")
            for j in jobs:
                w("%-*s" % (jw, j["name"]))
                for d in group:
                    r = doc["results"].get(d, {}).get(j["name"])
                    w("%*s" % (cw, fmt(r[m] if r else None, m)))
                w("\n")
    # How far apart the repeats were: (max - min) / median of the IOPS.
    if (doc.get("repeat") or 1) > 1:
        for group in column_groups(devs, jw, cw):
            w("\nIOPS spread over the %s repeats, (max - min) / median, %%\n"
              % doc["repeat"])
            w("%-*s" % (jw, "job") +
              "".join("%*s" % (cw, d) for d in group) + "\n")
            for j in jobs:
                w("%-*s" % (jw, j["name"]))
                for d in group:
                    r = doc["results"].get(d, {}).get(j["name"])
                    x = r.get("iops_spread") if r else None
                    w("%*s" % (cw, "-" if x is None else "%.0f" % (100 * x)))
                w("\n")
    if not doc["ratios"]:
        return
    rw = max([len(r["name"]) for r in doc["ratios"]] + [15]) + 2
    for group in column_groups(doc["ratios"], jw, rw):
        w("\nratios, same run: IOPS (<1: slower than the baseline); "
          "p50 for iodepth 1 (>1: slower)\n")
        w("%-*s" % (jw, "job") +
          "".join("%*s" % (rw, r["name"]) for r in group) + "\n")
        for j in jobs:
            w("%-*s" % (jw, j["name"]))
            for r in group:
                x = r["jobs"].get(j["name"])
                cell = "-"
                if x and x["iops"] is not None:
                    cell = "%.2f" % x["iops"]
                    if x["lat_p50"] is not None:
                        cell += " p50 %.2f" % x["lat_p50"]
                w("%*s" % (rw, cell))
            w("\n")
    for r in doc["ratios"]:
        if r.get("missing"):
            w("%s: no figures for %s\n" % (r["name"],
                                           " and ".join(r["missing"])))


def main(argv):
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("summary")
    p.add_argument("fio_json_rw", nargs="+", metavar="FIO_JSON RW")
    p = sub.add_parser("assemble")
    p.add_argument("workdir")
    p.add_argument("--meta", action="append", default=[])
    p.add_argument("--ratio", action="append", default=[])
    p.add_argument("--requested", default="")
    p.add_argument("--complete", type=int, choices=(0, 1), default=1)
    p = sub.add_parser("table")
    p.add_argument("results_json")
    a = ap.parse_args(argv[1:])
    if a.cmd == "summary":
        if len(a.fio_json_rw) % 2:
            ap.error("summary wants FIO_JSON RW pairs")
        bad = 0
        for path, rw in zip(a.fio_json_rw[::2], a.fio_json_rw[1::2]):
            try:
                name = fio_job(path).get("jobname", "?")
                r = fio_figures(path, rw)
            except (BadRun, KeyError) as e:
                print("   %s" % e)
                bad = 1
                continue
            print("   %-18s %8s IOPS %7s MiB/s  lat p50 %7s p99 %7s us" %
                  (name, fmt(r["iops"], "iops"), fmt(r["bw_mib_s"], "bw_mib_s"),
                   fmt(r["lat_p50_us"], "lat"), fmt(r["lat_p99_us"], "lat")))
        return bad
    elif a.cmd == "assemble":
        meta = {}
        for kv in a.meta:
            k, v = kv.split("=", 1)
            # Numbers stay numbers in the JSON.
            try:
                v = int(v)
            except ValueError:
                pass
            meta[k] = v
        json.dump(assemble(a.workdir, meta, a.ratio, a.requested.split(),
                           bool(a.complete)), sys.stdout, indent=1)
        print()
    else:
        with open(a.results_json) as f:
            table(json.load(f))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
