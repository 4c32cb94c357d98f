#!/bin/bash
# The benchmark report's tooling without running a benchmark: from the
# committed sample results file, bench/report/plot.py draws every plot as a
# valid PNG of the asked size and summary.py writes the table that links
# them; assemble.py records benches that failed, printed no JSON, or are
# absent, instead of giving up. $1 = build dir, $2 = source dir.
. "$(dirname "$0")/../integration/lib.sh"

REPORT="$SRC/bench/report"
SAMPLE="$SRC/tests/bench/sample_results.json"
PLOTS="boot restore restore-touch density store"

command -v python3 >/dev/null || skip "python3 is not installed"
command -v gnuplot >/dev/null || skip "gnuplot is not installed (Debian package gnuplot-nox)"

# png_size FILE: prints "WIDTH HEIGHT" if FILE starts with the PNG signature
# and an IHDR chunk, nothing otherwise.
png_size() {
	local head
	head=$(od -A n -t x1 -N 24 "$1" | tr -d ' \n')
	[ "${head:0:16}" = 89504e470d0a1a0a ] || return 0
	[ "${head:24:8}" = 49484452 ] || return 0 # "IHDR", after its 4-byte length
	echo "$((16#${head:32:8})) $((16#${head:40:8}))"
}

# Every plot, at the size asked for.
if python3 "$REPORT/plot.py" "$SAMPLE" --out-dir "$TMP/plots" --size 640x400 \
	>"$TMP/plot.out" 2>"$TMP/plot.err"; then
	pass "plot.py draws the sample"
else
	fail "plot.py exited $?: $(cat "$TMP/plot.err")"
fi
for name in $PLOTS; do
	expect_eq "$name.png is a 640x400 PNG" "$(png_size "$TMP/plots/$name.png" 2>&1)" "640 400"
done

# The summary: the table, the failure, a link to each plot.
python3 "$REPORT/summary.py" "$SAMPLE" --plots "$TMP/plots" --out "$TMP/summary.md" 2>"$TMP/err" ||
	fail "summary.py exited $?: $(cat "$TMP/err")"
grep -q '^| boot | process start to READY' "$TMP/summary.md" && pass "summary has the boot row" ||
	fail "summary lacks the boot row"
grep -q '^- serve: failed: exit status 2' "$TMP/summary.md" &&
	pass "summary names the failed bench" || fail "summary does not name the failed bench"
for name in $PLOTS; do
	grep -qF "](plots/$name.png)" "$TMP/summary.md" || fail "summary does not link $name.png"
done

# Results without the figures a plot needs: skipped with the reason, and a
# stale picture from an earlier run goes rather than pass for this one's.
python3 - "$SAMPLE" "$TMP/bare.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
r["benches"] = {"boot": {"status": "failed", "exit_code": 1, "error": "exit status 1: no KVM"}}
json.dump(r, open(sys.argv[2], "w"))
EOF
python3 "$REPORT/plot.py" "$TMP/bare.json" --out-dir "$TMP/plots" >/dev/null 2>"$TMP/err"
expect_eq "plot.py exits 0 when benches lack figures" "$?" 0
grep -q 'skipped boot.png: bench boot failed: exit status 1: no KVM' "$TMP/err" &&
	pass "the skipped plot says why" || fail "no reason for the skipped plot: $(cat "$TMP/err")"
[ ! -e "$TMP/plots/boot.png" ] && pass "the stale boot.png is gone" || fail "a stale boot.png stays"

# assemble.py from a scratch directory as run.sh leaves it.
RAW="$TMP/raw"
mkdir "$RAW"
python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps(r["benches"]["boot"]["result"]))' "$SAMPLE" >"$RAW/boot.out"
printf -- '--json\n--vs-qemu\n' >"$RAW/boot.args"
echo --touch=256 >"$RAW/boot.dropped"
echo 0 >"$RAW/boot.rc"
echo 1.5 >"$RAW/boot.seconds"
echo "snapvm bench blk: cannot open /dev/kvm" >"$RAW/blk.err"
echo 1 >"$RAW/blk.rc"
echo "not json" >"$RAW/vsock.out"
echo 0 >"$RAW/vsock.rc"
echo absent >"$RAW/serve.rc"
echo "0.5 0.4 0.3" >"$RAW/loadavg.before"
# the Linux guest's entries: bench restore with a case without a heap, and one run.sh skipped
echo restore >"$RAW/restore-linux.bench"
printf -- '--json\n--kernel=bzImage\n' >"$RAW/restore-linux.args"
echo 0 >"$RAW/restore-linux.rc"
cat >"$RAW/restore-linux.out" <<'EOF'
{"bench": "restore", "kernel": "linux", "runs": 1, "mem": "256M", "memory": ["prefetch"],
 "cases": [{"heap": null, "touch": 0, "request": "ping", "snapvm_memory": "prefetch",
  "snapvm_ms_median": 660.07, "snapvm_ms_p90": 706.74,
  "modes": [{"memory": "prefetch", "ms_median": 660.07, "ms_p90": 706.74, "ms": [660.07]}],
  "qemu_ms_median": 3186.69, "qemu_ms_p90": 3588.12, "qemu_ms": [3186.69]}]}
EOF
echo boot >"$RAW/boot-linux.bench"
echo skipped >"$RAW/boot-linux.rc"
echo "no Linux guest in build/guest/linux (make guest-linux builds it)" >"$RAW/boot-linux.err"
if python3 "$REPORT/assemble.py" --raw "$RAW" --src "$SRC" --snapvm "$BUILD/snapvm" \
	--benches "boot blk vsock serve boot-linux restore-linux" --out "$TMP/results.json" \
	2>"$TMP/err"; then
	pass "assemble.py writes the results"
else
	fail "assemble.py exited $?: $(cat "$TMP/err")"
fi
got=$(python3 - "$TMP/results.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
b = r["benches"]
print(b["boot"]["status"], len(b["boot"]["result"]["snapvm_ms"]) > 0, b["boot"]["dropped_options"])
print(b["blk"]["status"], b["blk"]["exit_code"], b["blk"]["error"])
print(b["vsock"]["status"], b["vsock"]["error"].startswith("no JSON object"))
print(b["serve"]["status"])
print(b["boot-linux"]["status"], b["boot-linux"]["error"])
print(b["restore-linux"]["status"], b["restore-linux"]["command"])
print(r["host"]["kvm"] in ("pvm", "hardware", "none", "unknown"), r["host"]["load_before"])
print(bool(r["snapvm"]["revision"]), r["format"])
EOF
)
expect_eq "assemble.py records each bench's outcome" "$got" \
	"ok True ['--touch=256']
failed 1 exit status 1: snapvm bench blk: cannot open /dev/kvm
failed True
absent
skipped no Linux guest in build/guest/linux (make guest-linux builds it)
ok snapvm bench restore --json --kernel=bzImage
True [0.5, 0.4, 0.3]
True 1"
python3 "$REPORT/summary.py" "$TMP/results.json" --out "$TMP/results.md" 2>"$TMP/err" ||
	fail "summary.py exited $?: $(cat "$TMP/err")"
grep -qF '| restore-linux | Linux guest, to the reply to "ping", median ms | prefetch 660.07 |' \
	"$TMP/results.md" && pass "summary has the Linux guest's restore row" ||
	fail "summary lacks the Linux guest's restore row: $(cat "$TMP/results.md")"
grep -q '^- boot-linux: skipped: no Linux guest' "$TMP/results.md" &&
	pass "summary says why boot-linux did not run" || fail "summary lacks boot-linux's reason"

# The runner's own errors.
"$REPORT/run.sh" --help | grep -q '^usage: bench/report/run.sh' && pass "run.sh --help" ||
	fail "run.sh --help"
"$REPORT/run.sh" --bogus >/dev/null 2>"$TMP/err"
expect_eq "run.sh refuses an unknown option" "$?:$(cat "$TMP/err")" \
	"2:bench report: unknown option '--bogus' (see --help)"
"$REPORT/run.sh" --build "$TMP/nowhere" >/dev/null 2>"$TMP/err"
expect_eq "run.sh needs a build" "$?" 2

finish
