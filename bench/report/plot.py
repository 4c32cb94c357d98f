#!/usr/bin/env python3
"""Draws the benchmark report's plots (PNG, with gnuplot) from a results file
written by bench/report/run.sh:

  boot.png           boot latency distribution, snapvm beside QEMU microvm
  restore.png        restore latency distribution, per memory mode, beside QEMU
  restore-touch.png  restore time against pages touched, per mode, with the floor
  density.png        host memory and time as clones start (the density run)
  store.png          the store's write throughput beside a plain file's

A plot whose bench is absent, failed or lacks the figures is skipped with the
reason; the exit status is 1 only if gnuplot fails on one that had data."""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

PLOTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plots")
QEMU_COLOR = "#777777"
MODE_COLORS = {"eager": "#1f77b4", "lazy": "#ff7f0e", "prefetch": "#2ca02c", "mmap": "#9467bd",
               "mmap-huge": "#d62728"}
OTHER_COLORS = ["#8c564b", "#e377c2", "#17becf", "#bcbd22"]


class Skip(Exception):
    """The results lack what a plot needs; the message says what."""


def median(values):
    ordered = sorted(values)
    n = len(ordered)
    return (ordered[n // 2] + ordered[(n - 1) // 2]) / 2


def bench_result(results, name):
    bench = results.get("benches", {}).get(name)
    if bench is None or bench.get("status") == "absent":
        raise Skip(f"bench {name} did not run (absent from this snapvm)")
    if bench.get("status") != "ok":
        raise Skip(f"bench {name} {bench.get('status')}: {bench.get('error', '')}".strip())
    return bench["result"]


def mode_color(name, index):
    return MODE_COLORS.get(name, OTHER_COLORS[index % len(OTHER_COLORS)])


def cdf_block(title, samples):
    """A data block: its title on the first line, then (time, fraction) rows."""
    ordered = sorted(samples)
    rows = [f"{v:.4f} {(i + 1) / len(ordered):.5f}" for i, v in enumerate(ordered)]
    return json.dumps(title) + "\n" + "\n".join(rows) + "\n"


def samples_title(name, samples):
    return f"{name} (median {median(samples):.2f} ms, {len(samples)} runs)"


def plot_boot(results):
    r = bench_result(results, "boot")
    if not r.get("snapvm_ms"):
        raise Skip("bench boot's output has no samples (snapvm_ms)")
    blocks = [cdf_block(samples_title("snapvm", r["snapvm_ms"]), r["snapvm_ms"])]
    colors = [MODE_COLORS["eager"]]
    if r.get("qemu_ms"):
        blocks.append(cdf_block(samples_title("QEMU microvm", r["qemu_ms"]), r["qemu_ms"]))
        colors.append(QEMU_COLOR)
    title = f"Boot: process start to the test guest's READY, --mem {r.get('mem', '?')}"
    return "cdf.gp", "\n\n".join(blocks), {
        "plot_title": title,
        "xlabel": "milliseconds (log scale)",
        "series": len(blocks),
        "colors": " ".join(colors),
    }


def restore_latency_case(cases):
    """The case the latency plot shows: the plain restore (no pages touched)."""
    for case in cases:
        if not case.get("touch"):
            return case
    return cases[0]


def plot_restore(results):
    r = bench_result(results, "restore")
    cases = r.get("cases") or []
    if not cases or not any(m.get("ms") for c in cases for m in c.get("modes", [])):
        raise Skip("bench restore's output has no per-mode samples (modes[].ms)")
    case = restore_latency_case(cases)
    blocks, colors = [], []
    for i, mode in enumerate(case.get("modes", [])):
        if mode.get("ms"):
            blocks.append(cdf_block(samples_title(f"snapvm, {mode['memory']}", mode["ms"]),
                                    mode["ms"]))
            colors.append(mode_color(mode["memory"], i))
    if case.get("qemu_ms"):
        blocks.append(cdf_block(samples_title("QEMU microvm", case["qemu_ms"]), case["qemu_ms"]))
        colors.append(QEMU_COLOR)
    request = case.get("request", "ping")
    title = (f"Restore: process start to the reply to \"{request}\", "
             f"heap {case.get('heap', '?')}, --mem {r.get('mem', '?')}")
    return "cdf.gp", "\n\n".join(blocks), {
        "plot_title": title,
        "xlabel": "milliseconds (log scale)",
        "series": len(blocks),
        "colors": " ".join(colors),
    }


def number(value):
    return "NaN" if value is None else f"{value:.4f}"


def plot_restore_touch(results):
    r = bench_result(results, "restore")
    touched = [c for c in r.get("cases") or [] if c.get("touch")]
    if not touched:
        raise Skip("bench restore ran no case that touches pages (--touch)")
    heap = touched[0].get("heap")
    touched = sorted((c for c in touched if c.get("heap") == heap), key=lambda c: c["touch"])
    modes = []
    for case in touched:
        for mode in case.get("modes", []):
            if mode["memory"] not in modes:
                modes.append(mode["memory"])
    if not modes:
        raise Skip("bench restore's touch cases have no memory modes")
    header = ["touch", "floor", "QEMU microvm"] + [f"snapvm, {m}" for m in modes]
    rows = [" ".join(json.dumps(h) for h in header)]
    for case in touched:
        by_mode = {m["memory"]: m.get("ms_median") for m in case.get("modes", [])}
        row = [str(case["touch"]), number(case.get("floor_ms")), number(case.get("qemu_ms_median"))]
        rows.append(" ".join(row + [number(by_mode.get(m)) for m in modes]))
    title = (f"Restore then touch N pages of a {heap} heap, --mem {r.get('mem', '?')} "
             f"(median of {r.get('runs', '?')} runs)")
    return "restore-touch.gp", "\n".join(rows) + "\n", {
        "plot_title": title,
        "ncols": len(header),
        "colors": " ".join(mode_color(m, i) for i, m in enumerate(modes)),
    }


def plot_density(results):
    r = bench_result(results, "density")
    curve = r.get("curve") or []
    if not curve:
        raise Skip("bench density's output has no curve")
    rows = ["# clones elapsed_ms host_mem_bytes reply_ms"]
    for point in curve:
        rows.append(f"{point['clones']} {number(point.get('elapsed_ms'))} "
                    f"{number(point.get('host_mem_bytes'))} {number(point.get('reply_ms'))}")
    per_clone = r.get("host_mem_per_clone_bytes")
    title = (f"Density: {r.get('clones_started', '?')} of {r.get('clones_requested', '?')} "
             f"clones, --mem {r.get('mem', '?')}, heap {r.get('heap', '?')}, "
             f"{r.get('memory', '?')}, request \"{r.get('request', '?')}\"")
    if per_clone:
        title += f"\n{per_clone / 1048576:.1f} MiB of host memory per clone"
    if r.get("clones_per_s"):
        title += f", {r['clones_per_s']:.0f} clones/s"
    if r.get("reply_ms_p50") is not None:
        title += f"; reply p50 {r['reply_ms_p50']:.2f} ms, p99 {r.get('reply_ms_p99', 0):.2f} ms"
    reply_curve = any(point.get("reply_ms") is not None for point in curve)
    if not reply_curve and r.get("reply_ms_p50") is None:
        raise Skip("bench density's output has no reply times")
    return "density.gp", "\n".join(rows) + "\n", {
        "plot_title": title,
        "reply_curve": int(reply_curve),
        "reply_p50": r.get("reply_ms_p50", math.nan),
        "reply_p99": r.get("reply_ms_p99", math.nan),
    }


def plot_store(results):
    r = bench_result(results, "store")
    needed = ("image_bytes", "plain_write_s", "first_gib_per_s")
    if any(k not in r for k in needed):
        raise Skip("bench store's output lacks " + ", ".join(k for k in needed if k not in r))
    gib = r["image_bytes"] / 2**30
    bars = [("store|first write", r["first_gib_per_s"], 0x1f77b4)]
    if "again_gib_per_s" in r:
        bars.append(("store|same image again", r["again_gib_per_s"], 0x1f77b4))
    if "changed_gib_per_s" in r:
        bars.append(("store|5% of pages changed", r["changed_gib_per_s"], 0x1f77b4))
    bars.append(("plain file|write + fsync", gib / r["plain_write_s"], 0x777777))
    if r.get("plain_write_nonzero_s"):
        bars.append(("plain file|zero pages as holes", gib / r["plain_write_nonzero_s"], 0x777777))
    rows = [" ".join(json.dumps(part) for part in label.split("|")) + f" {value:.4f} {color}"
            for label, value, color in bars]
    title = (f"Store writes: a {gib:.2f} GiB guest image, "
             f"{r.get('nonzero_bytes', 0) / 2**20:.0f} MiB of it non-zero")
    return "store.gp", "\n".join(rows) + "\n", {"plot_title": title, "bars": len(bars)}


PLOTS = [
    ("boot.png", plot_boot),
    ("restore.png", plot_restore),
    ("restore-touch.png", plot_restore_touch),
    ("density.png", plot_density),
    ("store.png", plot_store),
]


def gnuplot_string(value):
    if isinstance(value, (int, float)):
        return "NaN" if value is None or math.isnan(value) else str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + text + '"'


def draw(script, data, variables, png, size, scratch):
    data_path = os.path.join(scratch, os.path.basename(png) + ".dat")
    with open(data_path, "w", encoding="utf-8") as f:
        f.write(data)
    width, height = size
    assigned = dict(variables, data=data_path, out=png, width=width, height=height,
                    dir=PLOTS_DIR)
    assignments = "; ".join(f"{k}={gnuplot_string(v)}" for k, v in assigned.items())
    done = subprocess.run(["gnuplot", "-e", assignments, os.path.join(PLOTS_DIR, script)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0 or not os.path.exists(png):
        raise RuntimeError(done.stderr.strip() or f"gnuplot exited {done.returncode}")


def parse_size(text):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not WIDTHxHEIGHT") from None
    if not (200 <= width <= 4000 and 200 <= height <= 4000):
        raise argparse.ArgumentTypeError(f"'{text}': each side must be 200-4000 pixels")
    return width, height


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="a results file (bench/results/HOST-DATE.json)")
    parser.add_argument("--out-dir", required=True, help="where the PNGs go")
    parser.add_argument("--size", type=parse_size, default=(900, 540),
                        help="WIDTHxHEIGHT of each PNG (default 900x540)")
    a = parser.parse_args()
    try:
        with open(a.results, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        print(f"bench plot: cannot read {a.results}: {e}", file=sys.stderr)
        return 2
    os.makedirs(a.out_dir, exist_ok=True)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="snapvm-plot.") as scratch:
        for name, make in PLOTS:
            png = os.path.join(a.out_dir, name)
            try:
                script, data, variables = make(results)
                draw(script, data, variables, png, a.size, scratch)
                print(f"bench plot: {png}")
            except Skip as e:
                print(f"bench plot: skipped {name}: {e}", file=sys.stderr)
                if os.path.exists(png):
                    os.unlink(png)  # a stale picture would pass for this run's
            except (RuntimeError, OSError, KeyError, TypeError, ValueError) as e:
                print(f"bench plot: {name} failed: {e}", file=sys.stderr)
                failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
