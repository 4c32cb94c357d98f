# Shared helpers for the integration tests (sourced). $1 = build dir, $2 = source dir.
set -u
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
SNAPVM="$BUILD/snapvm"
GUEST="$BUILD/guest/snapguest.elf"
TMP=$(mktemp -d /tmp/snapvm-test.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
FAILURES=0

fail() {
	echo "FAIL: $*" >&2
	FAILURES=$((FAILURES + 1))
}

pass() {
	echo "ok: $*"
}

# skip REASON: exit with ctest's "skipped" code.
skip() {
	echo "SKIP: $*"
	exit 77
}

. "$SRC/scripts/kvm-detect.sh"

# missing WHAT: a test that cannot run here. Under scripts/run-tests.sh
# (SNAPVM_REQUIRE_PLATFORM=1), which picked this host for it, that is a
# failure; run by hand elsewhere, a skip that says why.
missing() {
	if [ "${SNAPVM_REQUIRE_PLATFORM:-0}" = 1 ]; then
		echo "FAIL: $* (platform: $(kvm_platform))" >&2
		exit 1
	fi
	skip "$*"
}

require_kvm() {
	kvm_usable || missing "no usable /dev/kvm on this host"
	echo "KVM: $(kvm_platform)"
}

# require_jailer: skips unless root (the jailer's need); sets JAIL, a fresh
# directory to jail clones in.
require_jailer() {
	[ "$(id -u)" = 0 ] || skip "the jailer needs root"
	JAIL="$TMP/jail"
	mkdir -p "$JAIL"
}

# snapshot_fn HEAP WHAT: stores the test guest, booted with heap=HEAP, as
# snapshot fn (in $SNAPVM_STORE); checks its exit code as WHAT.
snapshot_fn() {
	"$SNAPVM" run --kernel "$GUEST" --cmdline "heap=$1" --snapshot-on-ready fn \
		</dev/null >/dev/null 2>&1
	expect_eq "$2" "$?" 0
}

# start_daemon ARGS...: snapvm serve on $SOCK with store $STORE (both set by
# the test); sets DAEMON (its pid) once it says it listens.
start_daemon() {
	rm -f "$TMP/serve.out" # the last daemon's "listening" must not count for this one
	TMPDIR=$TMP "$SNAPVM" serve --listen "unix:$SOCK" --store "$STORE" "$@" \
		>"$TMP/serve.out" 2>"$TMP/serve.err" &
	DAEMON=$!
	for _ in $(seq 200); do
		grep -q "listening on unix:$SOCK" "$TMP/serve.out" 2>/dev/null && return
		sleep 0.05
	done
	fail "the daemon did not start: $(cat "$TMP/serve.err")"
}

# stop_daemon: SIGTERM, and its exit code in RC.
stop_daemon() {
	kill -TERM "$DAEMON"
	timeout 60 tail --pid="$DAEMON" -f /dev/null
	wait "$DAEMON"
	RC=$?
}

# SNAPVM_TEST_SCALE divides the counts of the heaviest VM tests: on the
# nested platform, where every instruction is emulated, scripts/run-tests.sh
# sets it to 10. Each behaviour stays tested, only fewer times.
# scaled N MIN: N divided by the scale, and at least MIN.
scaled() {
	local n=$(($1 / ${SNAPVM_TEST_SCALE:-1}))
	echo $((n < $2 ? $2 : n))
}

# expect_eq WHAT GOT WANT
expect_eq() {
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: got '$2', want '$3'"; fi
}

# run_guest INPUT ARGS...: boots the test guest with INPUT on its console;
# sets OUT (stdout), ERR (stderr) and RC. Bounded to 60 s.
run_guest() {
	local input=$1
	shift
	printf '%b' "$input" | timeout 60 "$SNAPVM" run --kernel "$GUEST" "$@" \
		>"$TMP/out" 2>"$TMP/err"
	RC=$?
	OUT=$(cat "$TMP/out")
	ERR=$(cat "$TMP/err")
}

# invoke_concurrently SOCK N OUTDIR: N concurrent POST /snapshots/fn/invoke
# {"request": "touch 20 I"} to the serve daemon on SOCK, reply I in OUTDIR/I.
# Each may take 120 s: the callers check replies, not latency. curl's status.
invoke_concurrently() {
	local sock=$1 n=$2 out=$3 i
	mkdir -p "$out"
	for i in $(seq "$n"); do
		printf 'next\nunix-socket = "%s"\nurl = "http://snapvm/snapshots/fn/invoke"\n' "$sock"
		printf 'data = "{\\"request\\": \\"touch 20 %d\\", \\"timeout_ms\\": 120000}"\n' "$i"
		printf 'output = "%s/%d"\n' "$out" "$i"
	done | sed 1d >"$TMP/curl.cfg"
	timeout 600 curl -s --no-progress-meter -Z --parallel-max "$n" -K "$TMP/curl.cfg"
}

finish() {
	if [ "$FAILURES" -ne 0 ]; then
		echo "$FAILURES check(s) failed" >&2
		exit 1
	fi
	echo "all checks passed"
}
