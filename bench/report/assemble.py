#!/usr/bin/env python3
"""Assembles the benchmark report's results file from what bench/report/run.sh
left in its scratch directory (per bench: NAME.args, .dropped, .out, .err, .rc,
.seconds, and .bench, the snapvm bench it ran) and from the host: CPU, kernel,
KVM flavour, snapvm's git revision, QEMU's version. A bench that is absent,
skipped or failed is recorded with its reason."""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

FORMAT = 1


def read(path, default=""):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def command_output(argv):
    """First line of a command's output, or None if it cannot run."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0] if lines else ""


def kvm_flavour():
    """'pvm', 'hardware', 'none' or the nested platform's name, with the kvm
    modules loaded. scripts/nested-kvm.sh names its platform in
    SNAPVM_PLATFORM ("nested svm (tcg)"): there only ratios mean anything."""
    modules = sorted(m for m in os.listdir("/sys/module") if m.startswith("kvm"))
    if os.environ.get("SNAPVM_PLATFORM"):
        return os.environ["SNAPVM_PLATFORM"], modules
    flags = set()
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    if not os.path.exists("/dev/kvm"):
        flavour = "none"
    elif "kvm_pvm" in modules:
        flavour = "pvm"
    elif ("kvm_intel" in modules or "kvm_amd" in modules) and flags & {"vmx", "svm"}:
        flavour = "hardware"
    else:
        flavour = "unknown"
    return flavour, modules


def host_info(raw):
    cpu_model = None
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    mem_bytes = None
    for line in read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_bytes = int(line.split()[1]) * 1024
    flavour, modules = kvm_flavour()
    uname = platform.uname()
    return {
        "name": uname.node.split(".")[0],
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "mem_bytes": mem_bytes,
        "kernel": uname.release,
        "kernel_version": uname.version,
        "kvm": flavour,
        "kvm_modules": modules,
        "load_before": [float(x) for x in read(f"{raw}/loadavg.before").split()],
        "load_after": [float(x) for x in read(f"{raw}/loadavg.after").split()],
    }


def snapvm_info(src, snapvm):
    git = ["git", "-C", src]
    status = command_output(git + ["status", "--porcelain", "--untracked-files=no"])
    return {
        "revision": command_output(git + ["rev-parse", "HEAD"]),
        "describe": command_output(git + ["describe", "--always", "--dirty"]),
        "dirty": bool(status),
        "binary_version": command_output([snapvm, "--version"]),
    }


def qemu_info():
    line = command_output(["qemu-system-x86_64", "--version"])
    if line is None:
        return None
    prefix = "QEMU emulator version "
    return {"version": line[len(prefix):] if line.startswith(prefix) else line}


def parse_json_output(text):
    """The bench's JSON object; a line of noise before it is tolerated."""
    text = text.strip()
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in its output")
    value, _ = json.JSONDecoder().raw_decode(text[start:])
    if not isinstance(value, dict):
        raise ValueError("its output is not a JSON object")
    return value


def last_lines(text, count=5):
    return "\n".join(text.strip().splitlines()[-count:])


def bench_record(raw, name):
    # the snapvm bench the entry ran: boot-linux is bench boot with the Linux guest
    command = read(f"{raw}/{name}.bench").strip() or name
    rc_text = read(f"{raw}/{name}.rc").strip()
    if rc_text in ("", "absent"):
        return {"status": "absent", "error": f"this snapvm has no 'bench {command}'"}
    if rc_text == "skipped":  # run.sh did not start it, for the reason in NAME.err
        return {"status": "skipped", "error": last_lines(read(f"{raw}/{name}.err"))}
    args = read(f"{raw}/{name}.args").split()
    record = {
        "status": "ok",
        "command": " ".join(["snapvm", "bench", command] + args),
        "dropped_options": read(f"{raw}/{name}.dropped").split(),
        "seconds": round(float(read(f"{raw}/{name}.seconds", "0") or 0), 2),
    }
    rc = int(rc_text)
    err = read(f"{raw}/{name}.err")
    if rc != 0:
        record["status"] = "failed"
        record["exit_code"] = rc
        why = "timed out" if rc in (124, 137) else f"exit status {rc}"
        record["error"] = f"{why}: {last_lines(err)}" if err.strip() else why
        return record
    try:
        record["result"] = parse_json_output(read(f"{raw}/{name}.out"))
    except ValueError as e:
        record["status"] = "failed"
        record["error"] = f"{e}: {last_lines(read(f'{raw}/{name}.out'))}"
        return record
    if "skipped" in record["result"]:
        record["status"] = "skipped"
    return record


def to_json(value, indent=""):
    """JSON with one key per line, but lists of numbers (the samples) on one line."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {to_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [inner + to_json(v, inner) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + indent + "]"
    return json.dumps(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", required=True, help="run.sh's scratch directory")
    parser.add_argument("--mode", choices=("full", "quick"), default="full")
    parser.add_argument("--src", required=True, help="snapvm's source tree (for git)")
    parser.add_argument("--snapvm", required=True, help="the snapvm binary that ran")
    parser.add_argument("--benches", required=True, help="the benches, space-separated")
    parser.add_argument("--out", required=True, help="the results file to write")
    a = parser.parse_args()

    results = {
        "format": FORMAT,
        "mode": a.mode,
        "date": read(f"{a.raw}/started").strip()
        or datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": host_info(a.raw),
        "snapvm": snapvm_info(a.src, a.snapvm),
        "qemu": qemu_info(),
        "benches": {name: bench_record(a.raw, name) for name in a.benches.split()},
    }
    results["wall_s"] = round(sum(b.get("seconds", 0) for b in results["benches"].values()), 1)
    tmp = a.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(to_json(results) + "\n")
    os.replace(tmp, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
