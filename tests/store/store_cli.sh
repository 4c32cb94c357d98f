#!/bin/bash
# snapvm store: every command, with --json and --help, dedup across clones,
# export/import, rm and gc, and usage errors.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib.sh"

json_ok() {
	if command -v python3 >/dev/null; then
		python3 -m json.tool <<<"$2" >/dev/null && pass "$1: valid JSON" ||
			fail "$1: invalid JSON: $2"
	fi
}

# --help everywhere: exit 0, starts with usage
for c in "" ls info rm gc verify du export import; do
	# shellcheck disable=SC2086
	out=$("${STORE_CLI[@]}" $c --help 2>&1)
	expect_eq "store $c --help: exit code" "$?" 0
	[[ "$out" == usage:* ]] && pass "store $c --help prints usage" || fail "store $c --help: $out"
done

# usage errors: exit 2, one line
for args in "frobnicate" "info" "info a b" "rm" "export x" "import" "ls --bogus" \
	"info ../etc" "ls extra" "import f --as .bad"; do
	# shellcheck disable=SC2086
	"${STORE_CLI[@]}" $args --store "$STORE" >"$TMP/o" 2>"$TMP/e"
	expect_eq "store $args: exit 2" "$?" 2
	expect_eq "store $args: one line on stderr" "$(wc -l <"$TMP/e")" 1
done

# an empty store lists nothing
cli ls
expect_rc "ls on a new store" 0
cli ls --json
expect_eq "ls --json on a new store" "$OUT" "[]"

# clones of one function: family a, three seeds; and an unrelated one
"$TOOL" write "$STORE" a 1 4096 3 >/dev/null || fail "writing a-*"
"$TOOL" write "$STORE" b 1 1024 1 >/dev/null || fail "writing b-1"
cli ls
expect_rc "ls" 0
expect_eq "ls lists 4 snapshots" "$(grep -c '^[ab]-' <<<"$OUT")" 4
cli ls --json
json_ok "ls --json" "$OUT"
cli info a-1-4096
expect_rc "info" 0
expect_match "info shows sizes" "$OUT" "unique: +[0-9.]+ [KM]iB"
cli info a-1-4096 --json
json_ok "info --json" "$OUT"
expect_match "info --json has the sizes" "$OUT" '"logical_bytes": 16787[0-9]+, "nonzero_bytes": [0-9]+, "unique_bytes": [0-9]+, "stored_bytes"'
cli info nosuch
expect_rc "info of a missing snapshot" 1
expect_match "info of a missing snapshot names it" "$ERR" "no snapshot named 'nosuch'"
cli du --json
json_ok "du --json" "$OUT"
dedup=$(sed -E 's/.*"dedup_ratio": ([0-9.]+).*/\1/' <<<"$OUT")
awk "BEGIN { exit !($dedup > 1.3) }" && pass "du: dedup across clones ($dedup)" ||
	fail "du: dedup ratio $dedup"
cli du
expect_match "du prints ratios" "$OUT" "dedup ratio: +[0-9.]+"
cli verify
expect_rc "verify" 0
cli verify a-2-4096 --json
json_ok "verify NAME --json" "$OUT"
expect_match "verify --json says ok" "$OUT" '"ok": true'

# export and import, under another name
cli export a-2-4096 "$TMP/a2.snap"
expect_rc "export" 0
cli import "$TMP/a2.snap"
expect_rc "import of an existing name" 1
expect_match "import says the name exists" "$ERR" "exists"
cli import "$TMP/a2.snap" --as copy-of-a2 --json
expect_rc "import --as" 0
json_ok "import --json" "$OUT"
"$TOOL" check "$STORE" a- >/dev/null || fail "a-* read back after import"
cli info copy-of-a2 --json
expect_match "the import shares all its chunks" "$OUT" '"unique_bytes": 0,'

# rm, then gc gives space back; the rest still reads back
cli du --json
before=$(sed -E 's/.*"pack_bytes": ([0-9]+).*/\1/' <<<"$OUT")
cli rm b-1-1024 a-3-4096
expect_rc "rm" 0
cli rm b-1-1024
expect_rc "rm of a removed snapshot" 1
cli gc --json
expect_rc "gc" 0
json_ok "gc --json" "$OUT"
cli du --json
after=$(sed -E 's/.*"pack_bytes": ([0-9]+).*/\1/' <<<"$OUT")
[ "$after" -lt "$before" ] && pass "gc reclaimed space ($before -> $after)" ||
	fail "gc: pack bytes $before -> $after"
"$TOOL" check "$STORE" >/dev/null || fail "snapshots read back after gc"
cli verify
expect_rc "verify after gc" 0

# a progress bar when stderr is a terminal, none otherwise
cli verify
expect_eq "no progress output without a terminal" "$ERR" ""
if command -v script >/dev/null; then
	out=$(script -qec "${STORE_CLI[*]} verify --store $STORE" /dev/null)
	expect_match "a progress bar on a terminal" "$out" "verify +\[#+\] 100%"
fi

# a second writer waits for the first, and says so
if command -v flock >/dev/null; then
	flock "$STORE/writer.lock" sleep 1 &
	holder=$!
	sleep 0.3
	cli gc
	wait $holder
	expect_rc "gc waits for the writer lock" 0
	expect_match "gc says whom it waits for" "$ERR" "waiting for (pid [0-9]+|another process), which is writing"
fi

# the environment variable
SNAPVM_STORE="$STORE" "${STORE_CLI[@]}" ls >"$TMP/o" 2>&1
expect_eq "SNAPVM_STORE selects the store" "$(grep -c '^a-' "$TMP/o")" 2
finish
