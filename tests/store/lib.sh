# Shared by the store's scripted tests (sourced after tests/integration/lib.sh).
TOOL="$BUILD/tests/store/store_tool"
STORE="$TMP/store"

# The store CLI: build/snapvm once it has the command, else the stand-alone build of it.
if "$SNAPVM" store --help >/dev/null 2>&1; then
	STORE_CLI=("$SNAPVM" store)
else
	STORE_CLI=("$BUILD/tests/store/snapvm-store")
	echo "note: build/snapvm has no 'store' command yet; using $BUILD/tests/store/snapvm-store"
fi

# cli ARGS...: runs `snapvm store ARGS --store $STORE`; sets OUT, ERR, RC.
cli() {
	"${STORE_CLI[@]}" "$@" --store "$STORE" >"$TMP/cli.out" 2>"$TMP/cli.err"
	RC=$?
	OUT=$(cat "$TMP/cli.out")
	ERR=$(cat "$TMP/cli.err")
}

# expect_rc WHAT WANT: checks RC from the last cli call, showing stderr when it differs.
expect_rc() {
	if [ "$RC" = "$2" ]; then
		pass "$1"
	else
		fail "$1: exit code $RC, want $2; stderr: $ERR"
	fi
}

# expect_match WHAT TEXT REGEX
expect_match() {
	if grep -qE -- "$3" <<<"$2"; then
		pass "$1"
	else
		fail "$1: '$2' does not match /$3/"
	fi
}

# packs_sum: a checksum of every pack file, to show that nothing else changed.
packs_sum() {
	(cd "$STORE/packs" && ls | sort | xargs -r sha256sum) | sha256sum | cut -c1-16
}

# ---- Waiting for events, not for time (the crash and concurrency tests) ----
#
# These tests never require an amount of work within a time: they wait for
# what they need to have happened (store_tool prints a line for each event
# they wait for) and count. STORE_WAIT_LIMIT only tells a hang from slowness:
# seconds with no sign of the awaited event before the test gives up.
WAIT_LIMIT=${STORE_WAIT_LIMIT:-100}
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$TMP"' EXIT

# wait_line FILE REGEX PID: returns 0 once FILE has a line matching REGEX, 1 if
# process PID ends without writing one. Neither within WAIT_LIMIT seconds is a
# hang: it fails and ends the test.
wait_line() {
	local deadline=$((SECONDS + WAIT_LIMIT))

	until grep -qE -- "$2" "$1" 2>/dev/null; do
		if ! kill -0 "$3" 2>/dev/null; then
			grep -qE -- "$2" "$1" 2>/dev/null
			return
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			fail "hung: pid $3 wrote no line /$2/ to $1 in $WAIT_LIMIT s; its last lines:"
			tail -5 "$1" >&2
			exit 1
		fi
		sleep 0.02
	done
}

# kill_at MODE K ARGS...: runs `store_tool --MODE-at K ARGS...` (MODE pause or
# mark; output in $TMP/run.out) and kills it with SIGKILL once it reports event
# K. Sets RUN_CMD to the store_tool command (write, gc...); RUN_AT to the event
# ("before upload_commit"...), empty if the tool never got there; RUN_RC to its
# exit status (137: killed); RUN_EVENTS to the events it counted when it
# finished unkilled, else empty.
kill_at() {
	local mode=$1 k=$2 pid
	shift 2
	RUN_CMD=$1
	"$TOOL" --"$mode"-at "$k" "$@" >"$TMP/run.out" 2>"$TMP/run.err" &
	pid=$!
	# Nothing between the kill and the wait, lest bash report the kill on stderr.
	wait_line "$TMP/run.out" "^(paused at|reached) $k " "$pid" && kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	RUN_RC=$?
	RUN_AT=$(sed -nE "s/^(paused at|reached) $k //p" "$TMP/run.out")
	RUN_EVENTS=$(sed -n 's/^events //p' "$TMP/run.out")
}

# kill_check MODE: fails unless the last kill_at ended as it may: a paused tool
# killed, else finished (before event K, or before the kill landed).
kill_check() {
	case "$1:$RUN_RC:${RUN_AT:+at}" in
	pause:137:at | pause:0: | mark:137:at | mark:0:at | mark:0:) return 0 ;;
	esac
	fail "store_tool --$1-at: exit status $RUN_RC, event '${RUN_AT}'; stdout: $(tail -n 3 "$TMP/run.out" |
		tr '\n' '|'); stderr: $(cat "$TMP/run.err")"
	return 1
}
