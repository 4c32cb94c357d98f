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
