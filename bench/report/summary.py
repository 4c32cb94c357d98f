#!/usr/bin/env python3
"""Writes the benchmark report's short Markdown summary from a results file
(bench/report/run.sh): the host, one table of headline figures with their
baselines (QEMU microvm, the plain file, the serial console), what did not
run and why, and the plots found in --plots."""

import argparse
import json
import os
import sys

PLOTS = [
    ("boot.png", "Boot latency"),
    ("restore.png", "Restore latency"),
    ("restore-touch.png", "Restore time against pages touched"),
    ("density.png", "Density"),
    ("store.png", "Store write throughput"),
]


def ms(value):
    return f"{value:.2f} ms" if value is not None else "-"


def with_p90(result, prefix, unit="ms", tail="p90"):
    median = result.get(f"{prefix}_{unit}_median")
    spread = result.get(f"{prefix}_{unit}_{tail}")
    if median is None:
        return "-"
    return f"{median:.2f} {unit} ({tail} {spread:.2f})" if spread is not None else f"{median:.2f}"


def rows_boot(r):
    qemu = f"QEMU microvm {with_p90(r, 'qemu')}" if "qemu_ms_median" in r else "-"
    return [("process start to READY, median (p90)", with_p90(r, "snapvm"), qemu)]


def rows_boot_linux(r):
    return [(f"Linux guest, {figure}", ours, base) for figure, ours, base in rows_boot(r)]


def rows_restore(r):
    rows = []
    for case in r["cases"]:
        # the Linux guest has no heap (null)
        guest = f"heap {case['heap']}" if case.get("heap") is not None else "Linux guest"
        touch = case.get("touch")
        qemu = f"QEMU microvm {with_p90(case, 'qemu')}" if "qemu_ms_median" in case else "-"
        if "modes" not in case:  # the first bench restore: one snapvm series per heap
            rows.append((f"{guest}, to reply, median (p90)",
                         with_p90(case, "snapvm"), qemu))
            continue
        modes = ", ".join(f"{m['memory']} {m['ms_median']:.2f}" for m in case["modes"])
        if not touch:
            rows.append((f"{guest}, to the reply to \"{case.get('request', 'ping')}\""
                         ", median ms", modes, qemu))
            continue
        base = [f"floor {case['floor_ms']:.2f}"] if case.get("floor_ms") is not None else []
        if "qemu_ms_median" in case:
            base.append(f"QEMU microvm {case['qemu_ms_median']:.2f}")
        rows.append((f"{guest}, touch {touch} pages, median ms",
                     modes, ", ".join(base) or "-"))
    return rows


def rows_store(r):
    gib = r["image_bytes"] / 2**30
    plain = f"plain file {gib / r['plain_write_s']:.2f}"
    if r.get("plain_write_nonzero_s"):
        plain += f" (non-zero pages only {gib / r['plain_write_nonzero_s']:.2f})"
    return [
        (f"write a {gib:g} GiB image: first, again, 5% changed (GiB/s)",
         f"{r['first_gib_per_s']:.2f}, {r['again_gib_per_s']:.2f}, "
         f"{r['changed_gib_per_s']:.2f}", plain),
        ("read a random page, hot, median", f"{r['random_us_median']:.2f} us",
         f"plain pread {r['plain_random_us_median']:.2f} us"),
        ("read a working set cold (after relayout), pages/s",
         f"{r['order_cold_pages_per_s']:.0f} ({r['order_cold_relayout_pages_per_s']:.0f})",
         f"plain pread {r['plain_order_cold_pages_per_s']:.0f}"),
    ]


def rows_vsock(r):
    return [("ping/PONG round trip, median (p99)", with_p90(r, "vsock", "us", "p99"),
             f"serial console {r['console_us_median']:.1f} us")]


def rows_blk(r):
    rows = []
    for pattern in ("seq write", "seq read", "4k rand write", "4k rand read"):
        if f"{pattern}_guest_mib_s" in r:
            rows.append((f"{pattern}, MiB/s", f"{r[pattern + '_guest_mib_s']:.0f}",
                         f"host file {r[pattern + '_host_mib_s']:.0f}"))
    return rows


def rows_net(r):
    rows = []
    for backend in ("tap", "user"):
        ours, qemu = r.get(f"{backend}_snapvm"), r.get(f"{backend}_qemu")
        if not ours:
            continue
        figure = (f"{ours['us_median']:.1f} us (p99 {ours['us_p99']:.1f}), "
                  f"{ours['packets_per_s']:.0f} pkt/s")
        base = "-"
        if qemu:
            base = (f"QEMU microvm {qemu['us_median']:.1f} us (p99 {qemu['us_p99']:.1f}), "
                    f"{qemu['packets_per_s']:.0f} pkt/s")
        rows.append((f"UDP ping over {backend}, median (p99), packets/s", figure, base))
    return rows


def rows_density(r):
    rows = [(f"clones started of {r['clones_requested']}, clones/s",
             f"{r['clones_started']}, {r['clones_per_s']:.1f}",
             f"failure: {r['failure']}" if r.get("failure") else "-")]
    if r.get("reply_ms_p50") is not None:
        rows.append((f"reply to \"{r.get('request', '?')}\", p50 (p99)",
                     f"{r['reply_ms_p50']:.2f} ms (p99 {r['reply_ms_p99']:.2f})", "-"))
    if r.get("host_mem_per_clone_bytes") is not None:
        pss = r.get("pss_per_clone_bytes")
        rows.append(("host memory per clone (PSS)",
                     f"{r['host_mem_per_clone_bytes'] / 2**20:.1f} MiB"
                     + (f" ({pss / 2**20:.1f} MiB)" if pss is not None else ""),
                     f"pages touched {r['touched_bytes_per_clone'] / 2**20:.1f} MiB"
                     if r.get("touched_bytes_per_clone") is not None else "-"))
    return rows


def rows_serve(r):
    rows = []
    for level in r["levels"]:
        rows.append((f"{level['clients']} clients, invocations/s, p50 (p99)",
                     f"snapvm serve {level['api_per_s']:.0f}/s, {level['api_ms_p50']:.2f} ms "
                     f"({level['api_ms_p99']:.2f})",
                     f"snapvm invoke processes {level['invoke_per_s']:.0f}/s, "
                     f"{level['invoke_ms_p50']:.2f} ms ({level['invoke_ms_p99']:.2f})"))
    return rows


def rows_generic(r):
    """Any other bench: its top-level numbers, as they come."""
    numbers = [f"{k} {v:g}" for k, v in r.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return [("figures", ", ".join(numbers[:8]) or "see the results file", "-")]


FORMATTERS = {"boot": rows_boot, "restore": rows_restore, "boot-linux": rows_boot_linux,
              "restore-linux": rows_restore, "store": rows_store,
              "vsock": rows_vsock, "blk": rows_blk, "net": rows_net, "density": rows_density,
              "serve": rows_serve}


def bench_rows(name, result):
    try:
        return FORMATTERS.get(name, rows_generic)(result)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return rows_generic(result)  # a bench whose output changed: still say something


def host_lines(results):
    h, s, q = results["host"], results["snapvm"], results.get("qemu")
    mem = f", {h['mem_bytes'] / 2**30:.0f} GiB" if h.get("mem_bytes") else ""
    load = h.get("load_before") or []
    lines = [
        f"- Host: {h.get('cpu_model')}, {h.get('cpus')} CPUs{mem}; Linux {h.get('kernel')}; "
        f"KVM: {h.get('kvm')} ({', '.join(h.get('kvm_modules', [])) or 'no module'})",
        f"- snapvm {s.get('describe') or s.get('revision')}; "
        f"QEMU {q['version'] if q else 'not installed'}",
        f"- {results['mode']} run, {results.get('wall_s', 0):.0f} s of benchmarks; load average "
        f"before {' '.join(f'{x:g}' for x in load) or '?'}",
    ]
    if str(h.get("kvm", "")).startswith("nested"):
        lines.append("- Nested platform: every instruction is emulated, so absolute times "
                     "mean nothing here; only the ratios to QEMU, measured in the same run, count.")
    return lines


def summary(results, plots_dir, md_dir):
    host = results["host"]
    out = [f"# snapvm benchmarks: {host.get('name')}, {results['date'][:10]}", ""]
    out += host_lines(results)
    out += ["", "| bench | figure | snapvm | baseline |", "| --- | --- | --- | --- |"]
    missing = []
    for name, bench in results["benches"].items():
        if bench["status"] != "ok":
            missing.append(f"- {name}: {bench['status']}: "
                           f"{bench.get('error') or bench.get('result', {}).get('skipped', '')}")
            continue
        for figure, ours, base in bench_rows(name, bench["result"]):
            out.append(f"| {name} | {figure} | {ours} | {base} |")
    dropped = [f"{name}: {' '.join(b['dropped_options'])}"
               for name, b in results["benches"].items() if b.get("dropped_options")]
    if dropped:
        out += ["", "Options left out because this snapvm's bench lacks them: "
                + "; ".join(dropped)]
    if missing:
        out += ["", "Not measured:", ""] + [line.replace("\n", " ") for line in missing]
    pictures = [(f, t) for f, t in PLOTS
                if plots_dir and os.path.exists(os.path.join(plots_dir, f))]
    if pictures:
        rel = os.path.relpath(plots_dir, md_dir)
        out.append("")
        out += [f"![{title}]({rel}/{f})" for f, title in pictures]
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", help="a results file (bench/results/HOST-DATE.json)")
    parser.add_argument("--plots", help="the directory with the plots, to link them")
    parser.add_argument("--out", required=True, help="the Markdown file to write")
    a = parser.parse_args()
    try:
        with open(a.results, encoding="utf-8") as f:
            results = json.load(f)
        text = summary(results, a.plots, os.path.dirname(os.path.abspath(a.out)))
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text)
    except (OSError, ValueError, KeyError) as e:
        print(f"bench summary: {a.out}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
