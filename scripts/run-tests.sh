#!/bin/bash
# Runs a build's whole test suite, each test on a platform that can run it:
#
#   label    needs                          where it runs
#   (none)   nothing of KVM                 here
#   kvm      a usable /dev/kvm (PVM too)    here if /dev/kvm works, else nested
#   hwvirt   KVM on VT-x or AMD-V           here on such a host, else nested
#
# "nested" is scripts/nested-kvm.sh: an L1 Linux under QEMU's TCG with a
# standard AMD KVM inside. All the nested tests share one L1 boot. With
# --nested, every KVM test runs there even where /dev/kvm works, so a PVM or
# Intel host also checks AMD. No test is skipped for lack of KVM: a host with
# neither /dev/kvm nor QEMU fails with one line (SNAPVM_REQUIRE_PLATFORM makes
# the tests fail rather than skip if the platform chosen for them is not
# what it should be).
#
# usage: scripts/run-tests.sh [--nested] BUILD_DIR [CTEST_ARGS...]
# env:   SNAPVM_NESTED_MEM, the L1's memory (default 12G: density's 1030
#        clones need more than 4G)
# The last line is "tests: N passed, N failed, N skipped" over every run.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
NESTED=0
if [ "${1:-}" = --nested ]; then
	NESTED=1
	shift
fi
case "${1:-}" in
-h | --help | "")
	sed -n '2,/^set -u/p' "$0" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//'
	[ -n "${1:-}" ]
	exit
	;;
esac
BUILD=$(cd "$1" && pwd) || exit 2
shift
CTEST_ARGS=(--output-on-failure "$@")
LOG=$(mktemp /tmp/snapvm-run-tests.XXXXXX)
trap 'rm -f "$LOG"' EXIT
export SNAPVM_REQUIRE_PLATFORM=1
# what the nested platform's runs divide the heaviest VM tests' counts by
NESTED_SCALE=${SNAPVM_TEST_SCALE:-10}

. "$HERE/kvm-detect.sh"
native_kvm="no usable /dev/kvm"
kvm_usable && native_kvm=$(kvm_platform)

# Which labels run nested: none, hwvirt only (PVM), or both.
if [ $NESTED = 1 ] || ! kvm_usable; then
	nested_labels='^(kvm|hwvirt)$'
elif ! hardware_virtualization; then
	nested_labels='^hwvirt$'
else
	nested_labels=""
fi

if [ -n "$nested_labels" ] && ! command -v qemu-system-x86_64 >/dev/null; then
	echo "run-tests: the VM tests need KVM: this host has $native_kvm and no" \
		"qemu-system-x86_64 for the nested platform (make deps installs it)" >&2
	exit 1
fi

# run_ctest WHERE ARGS...: one ctest run in the build dir, its output kept for the count.
run_ctest() {
	local where=$1
	shift
	echo "== run-tests: $(basename "$BUILD"): $where"
	(cd "$BUILD" && "$@") 2>&1 | tee -a "$LOG"
	return "${PIPESTATUS[0]}"
}

status=0
if [ -z "$nested_labels" ]; then
	run_ctest "every test, KVM $native_kvm" ctest "${CTEST_ARGS[@]}" || status=1
else
	run_ctest "tests without the labels $nested_labels here, KVM $native_kvm" \
		ctest -LE "$nested_labels" "${CTEST_ARGS[@]}" || status=1
	run_ctest "tests labelled $nested_labels on the nested platform (nested svm (tcg))" \
		env SNAPVM_TEST_SCALE="$NESTED_SCALE" \
		"$HERE/nested-kvm.sh" --mem "${SNAPVM_NESTED_MEM:-12G}" -- \
		sh -c 'cd "$1" && shift && exec ctest "$@"' sh "$BUILD" \
		-L "$nested_labels" "${CTEST_ARGS[@]}" || status=1
fi

# ctest's own summaries, added up: "N% tests passed, F tests failed out of T".
total=$(sed -nE 's/.*tests passed, [0-9]+ tests? failed out of ([0-9]+).*/\1/p' "$LOG" |
	awk '{ s += $1 } END { print s + 0 }')
failed=$(sed -nE 's/.*tests passed, ([0-9]+) tests? failed out of.*/\1/p' "$LOG" |
	awk '{ s += $1 } END { print s + 0 }')
skipped=$(grep -cE '\*\*\*Skipped|Not Run' "$LOG")
# a run that died before its summary (L1 did not boot, say) counts as a failure
[ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
echo "tests: $((total - failed - skipped)) passed, $failed failed, $skipped skipped"
exit $status
