#!/bin/bash
# Runs every `snapvm bench` measurement on this machine in one go, with the
# QEMU microvm column where a bench has one, and writes the report: one
# results file (every figure, plus host, KVM flavour, snapvm revision, QEMU
# version), a short Markdown summary and the plots. A bench that is missing
# from this build or fails is recorded as such; the others still run.
set -u

SRC=$(cd "$(dirname "$0")/../.." && pwd)
REPORT="$SRC/bench/report"
BUILD="$SRC/build"
OUT=""
MODE=full
ONLY=""

usage() {
	cat <<EOF
usage: bench/report/run.sh [--quick] [--build DIR] [--out DIR] [--only LIST]

Runs each 'snapvm bench' measurement of DIR/snapvm with --json (and
--vs-qemu where the bench has it), then writes
  OUT/HOST-DATE.json   every figure, the host's CPU, kernel, KVM flavour,
                       snapvm's git revision, the QEMU version
  OUT/HOST-DATE.md     a short summary table
  OUT/HOST-DATE/*.png  the plots (gnuplot)
and prints the summary. A bench this build lacks is recorded as absent, one
that fails as failed with its error; the exit status is 1 if any failed.
boot-linux and restore-linux are bench boot and bench restore with the
Linux guest of DIR/guest/linux (make guest-linux); where it is not built,
or where Linux cannot boot (PVM), they are recorded as skipped, with why.

  --quick      fewer runs and smaller sizes: about a minute on 2 cores
  --build DIR  where snapvm is built (default: build/ in the source tree)
  --out DIR    default bench/results/ (full) or DIR/bench-results/ (quick)
  --only LIST  comma-separated benches to run (default: all of them)
EOF
}

die() {
	echo "bench report: $*" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--quick) MODE=quick ;;
	--build) [ $# -ge 2 ] || die "--build needs a directory"; BUILD=$2; shift ;;
	--out) [ $# -ge 2 ] || die "--out needs a directory"; OUT=$2; shift ;;
	--only) [ $# -ge 2 ] || die "--only needs a list"; ONLY=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
	shift
done

SNAPVM="$BUILD/snapvm"
[ -x "$SNAPVM" ] || die "no snapvm in $BUILD (make build first, or pass --build)"
command -v python3 >/dev/null || die "python3 is missing (Debian package python3)"
if [ -z "$OUT" ]; then
	if [ "$MODE" = quick ]; then OUT="$BUILD/bench-results"; else OUT="$SRC/bench/results"; fi
fi
mkdir -p "$OUT" || die "cannot make $OUT"
STEM="$OUT/$(hostname -s)-$(date +%F)"
RAW=$(mktemp -d "${TMPDIR:-/tmp}/snapvm-bench-report.XXXXXX") ||
	die "cannot make a scratch directory"
trap 'rm -rf "$RAW"' EXIT

# The Linux guest that boot-linux and restore-linux boot (make guest-linux).
LINUX_GUEST="$BUILD/guest/linux"
LINUX_ARGS="--kernel=$LINUX_GUEST/bzImage --initrd=$LINUX_GUEST/initramfs.cpio"

# bench_command NAME: the snapvm bench that report entry NAME runs
# (NAME-linux is bench NAME with the Linux guest).
bench_command() {
	echo "${1%-linux}"
}

# The options each bench gets, full run and quick run. An option that the
# bench's --help does not mention is left out (and recorded): benches change.
bench_options() {
	local name=$1
	case "$MODE:$name" in
	full:boot) echo "--vs-qemu --runs=200" ;;
	quick:boot) echo "--vs-qemu --runs=20" ;;
	# every memory mode (its default); heap=0 is always measured
	full:restore) echo "--vs-qemu --runs=30 --heap=64M --touch=256,1024,4096,16384" ;;
	quick:restore) echo "--vs-qemu --runs=5 --heap=64M --touch=256,4096" ;;
	# the Linux guest: seconds a boot on the nested platform, so fewer runs
	full:boot-linux) echo "--vs-qemu --runs=20 $LINUX_ARGS" ;;
	quick:boot-linux) echo "--vs-qemu --runs=5 $LINUX_ARGS" ;;
	full:restore-linux) echo "--vs-qemu --runs=10 $LINUX_ARGS" ;;
	quick:restore-linux) echo "--vs-qemu --runs=5 $LINUX_ARGS" ;;
	full:store) echo "" ;;
	quick:store) echo "--size=256M --reads=5000" ;;
	full:vsock) echo "--runs=10000" ;;
	quick:vsock) echo "--runs=500" ;;
	full:blk) echo "--size=256M --random=10000" ;;
	quick:blk) echo "--size=32M --random=500" ;;
	full:net) echo "--requests=10000" ;;
	quick:net) echo "--requests=500" ;;
	full:density) echo "" ;;
	quick:density) echo "--clones=100" ;;
	full:serve) echo "" ;;
	quick:serve) echo "--requests=50 --concurrency=1,8" ;;
	*) echo "--vs-qemu" ;; # a bench added later: its defaults
	esac
}

# A hang guard per bench; ten times longer on the nested platform
# (scripts/nested-kvm.sh names it in SNAPVM_PLATFORM), where all is emulated.
bench_timeout() {
	local limit=1800
	[ "$MODE" = quick ] && limit=90
	[ -n "${SNAPVM_PLATFORM:-}" ] && limit=$((limit * 10))
	echo $limit
}

# The measurements this snapvm has: the names under "measurements:" in its help.
available=$("$SNAPVM" bench --help 2>/dev/null | awk '/^measurements:/ { on = 1; next }
	on && /^  [a-z]/ { print $1 } on && /^$/ { on = 0 }')
[ -n "$available" ] || die "'$SNAPVM bench --help' lists no measurements"
known="boot restore boot-linux restore-linux store vsock blk net density serve"
benches=$known
for name in $available; do
	case " $known " in *" $name "*) ;; *) benches="$benches $name" ;; esac
done
if [ -n "$ONLY" ]; then
	benches=$(echo "$ONLY" | tr ',' ' ')
fi

# bench_skip NAME WHY: records NAME as not run, and why.
bench_skip() {
	echo "skipped" >"$RAW/$1.rc"
	echo "$2" >"$RAW/$1.err"
	echo "bench report: $1: skipped: $2" >&2
}

# run_bench NAME: runs one bench and leaves RAW/NAME.{bench,args,dropped,out,err,rc,seconds}.
run_bench() {
	local name=$1 command help opt flag start end rc
	local args=() dropped=()

	command=$(bench_command "$name")
	echo "$command" >"$RAW/$name.bench"
	if ! echo "$available" | grep -qx "$command"; then
		echo "absent" >"$RAW/$name.rc"
		echo "bench report: $name: this snapvm has no 'bench $command'" >&2
		return
	fi
	if [ "$name" != "$command" ] &&
		{ [ ! -r "$LINUX_GUEST/bzImage" ] || [ ! -r "$LINUX_GUEST/initramfs.cpio" ]; }; then
		bench_skip "$name" "no Linux guest in $LINUX_GUEST (make guest-linux builds it)"
		return
	fi
	help=$("$SNAPVM" bench "$command" --help 2>&1)
	for opt in --json $(bench_options "$name"); do
		flag=${opt%%=*}
		if grep -qE -- "${flag}([^a-z-]|\$)" <<<"$help"; then args+=("$opt"); else dropped+=("$opt"); fi
	done
	printf '%s\n' "${args[@]}" >"$RAW/$name.args"
	printf '%s\n' "${dropped[@]}" >"$RAW/$name.dropped"
	echo "bench report: $name: snapvm bench $command ${args[*]}" >&2
	start=$(date +%s.%N)
	timeout --kill-after=10 "$(bench_timeout)" "$SNAPVM" bench "$command" "${args[@]}" \
		</dev/null >"$RAW/$name.out" 2>"$RAW/$name.err"
	rc=$?
	end=$(date +%s.%N)
	echo "$rc" >"$RAW/$name.rc"
	echo "$end - $start" | bc >"$RAW/$name.seconds"
	if [ "$rc" -ne 0 ]; then
		echo "bench report: $name: failed (exit $rc): $(tail -n 1 "$RAW/$name.err")" >&2
	fi
}

date -Is >"$RAW/started"
cut -d' ' -f1-3 /proc/loadavg >"$RAW/loadavg.before"
for name in $benches; do
	run_bench "$name"
done
cut -d' ' -f1-3 /proc/loadavg >"$RAW/loadavg.after"

python3 "$REPORT/assemble.py" --raw "$RAW" --mode "$MODE" --src "$SRC" --snapvm "$SNAPVM" \
	--benches "$benches" --out "$STEM.json" || die "cannot assemble $STEM.json"
plots_ok=1
if command -v gnuplot >/dev/null; then
	python3 "$REPORT/plot.py" "$STEM.json" --out-dir "$STEM" || plots_ok=0
else
	echo "bench report: gnuplot is missing (Debian package gnuplot-nox): no plots" >&2
	plots_ok=0
fi
python3 "$REPORT/summary.py" "$STEM.json" --plots "$STEM" --out "$STEM.md" ||
	die "cannot write $STEM.md"
cat "$STEM.md"
echo "bench report: wrote $STEM.json, $STEM.md and $STEM/" >&2

failed=$(python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
print(" ".join(n for n, b in r["benches"].items() if b["status"] == "failed"))' "$STEM.json")
if [ -n "$failed" ]; then
	echo "bench report: failed: $failed (see their \"error\" in $STEM.json)" >&2
	exit 1
fi
[ "$plots_ok" = 1 ] || exit 1
exit 0
