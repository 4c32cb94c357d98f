#!/bin/bash
# Damage: a flipped byte in a pack, a truncated pack, a deleted pack, a
# corrupt LMDB file, a truncated export. Each is detected with a clear
# message, and what it does not touch stays readable.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib.sh"

# Two snapshots of different families share no chunk, and each has its own pack.
"$TOOL" write "$STORE" a 1 2048 1 >/dev/null || fail "writing a-1-2048"
"$TOOL" write "$STORE" b 1 2048 1 >/dev/null || fail "writing b-1-2048"
PACK_A="$STORE/packs/0000000000000001.pack"
PACK_B="$STORE/packs/0000000000000002.pack"
[ -f "$PACK_A" ] && [ -f "$PACK_B" ] || fail "expected two packs"
cp -a "$STORE" "$TMP/pristine"

restore() {
	rm -rf "$STORE"
	cp -a "$TMP/pristine" "$STORE"
}

# damaged CASE: verify says which chunks and which snapshot, b still reads back.
damaged() {
	cli verify
	expect_rc "$1: verify exits 1" 1
	expect_match "$1: verify names a damaged chunk and its pack" "$OUT" \
		"damaged chunk [0-9a-f]{64} in pack 0000000000000001.pack at offset [0-9]+: "
	expect_match "$1: verify names the snapshot" "$OUT" "damaged snapshot a-1-2048"
	expect_eq "$1: only a is damaged" "$(grep -c 'damaged snapshot' <<<"$OUT")" 1
	cli verify b-1-2048
	expect_rc "$1: verify b-1-2048 is clean" 0
	"$TOOL" check "$STORE" b- >/dev/null 2>&1
	expect_eq "$1: b-1-2048 reads back" "$?" 0
	"$TOOL" check "$STORE" a- >/dev/null 2>"$TMP/check.err"
	expect_eq "$1: reading a-1-2048 fails" "$?" 1
	expect_match "$1: the read error names chunk and pack" "$(cat "$TMP/check.err")" \
		"chunk [0-9a-f]{64} .* in pack 0000000000000001.pack at offset"
}

# a flipped byte, in the middle of pack a (inside some chunk's payload)
size=$(stat -c %s "$PACK_A")
printf '\xff' | dd of="$PACK_A" bs=1 seek=$((size / 2)) conv=notrunc status=none
damaged "flipped byte"
cli verify
expect_eq "flipped byte: exactly one damaged chunk" "$(grep -c '^damaged chunk' <<<"$OUT")" 1
cli verify --json
expect_match "flipped byte: verify --json lists it" "$OUT" '"ok": false'
before=$(packs_sum)
cli gc
after=$(packs_sum)
expect_eq "flipped byte: gc leaves the packs alone" "$after" "$before"

restore
truncate -s $((size / 3)) "$PACK_A"
damaged "truncated pack"
cli verify
expect_match "truncated pack: says the pack is short" "$OUT" "pack ends before the chunk"

restore
rm "$PACK_A"
damaged "deleted pack"
cli verify
expect_match "deleted pack: says the pack is missing" "$OUT" "its pack is missing"
cli rm a-1-2048
expect_rc "deleted pack: a damaged snapshot can be removed" 0
cli verify
expect_rc "deleted pack: after rm, verify finds a's chunks still referenced" 1
cli gc
expect_rc "deleted pack: gc afterwards" 0
expect_match "deleted pack: gc corrects the reference counts" "$OUT" "reference counts were wrong"
cli verify
expect_rc "deleted pack: verify is clean after rm and gc" 0
"$TOOL" check "$STORE" b- >/dev/null 2>&1
expect_eq "deleted pack: b-1-2048 still reads back after rm and gc" "$?" 0

# LMDB: a damaged record value is caught by its checksum
restore
"$TOOL" corrupt-record "$STORE" a-1-2048 || fail "corrupting a record"
cli verify
expect_rc "damaged record: verify exits 1" 1
expect_match "damaged record: names it" "$OUT$ERR" "a-1-2048.*damaged"
cli info a-1-2048
expect_rc "damaged record: info fails" 1
expect_match "damaged record: info says why" "$ERR" "record of snapshot 'a-1-2048' is damaged"
"$TOOL" check "$STORE" b- >/dev/null 2>&1
expect_eq "damaged record: b-1-2048 reads back" "$?" 0

# LMDB: garbage over the file's header pages; every command fails cleanly
restore
before=$(packs_sum)
head -c 8192 /dev/urandom | dd of="$STORE/index/data.mdb" conv=notrunc status=none
for cmd in ls "info a-1-2048" verify du gc "rm a-1-2048"; do
	# shellcheck disable=SC2086
	cli $cmd
	expect_rc "garbage header: $cmd exits 1" 1
	expect_match "garbage header: $cmd says so" "$ERR" "index .*(not an LMDB file|Invalid argument|damaged)"
done
expect_eq "garbage header: no pack was touched" "$(packs_sum)" "$before"

# LMDB: a truncated file
restore
truncate -s 12288 "$STORE/index/data.mdb"
cli ls
expect_rc "truncated index: ls exits 1" 1
expect_match "truncated index: says so" "$ERR" "shorter than"

# LMDB: random bytes over its middle: verify must report, never crash
restore
isize=$(stat -c %s "$STORE/index/data.mdb")
head -c 4096 /dev/urandom | dd of="$STORE/index/data.mdb" bs=1 seek=$((isize / 2)) conv=notrunc status=none
cli verify
[ "$RC" = 0 ] || [ "$RC" = 1 ] && pass "scribbled index: verify exits (rc $RC), no crash" ||
	fail "scribbled index: verify rc $RC: $ERR"

# a missing index beside packs is not replaced by an empty one
restore
rm "$STORE/index/data.mdb"
cli ls
expect_rc "missing index: refused" 1
expect_match "missing index: says why" "$ERR" "index/data.mdb is missing"

# a truncated export is refused and adds nothing
restore
cli export a-1-2048 "$TMP/a.snap"
expect_rc "export" 0
"$TOOL" write "$TMP/other" c 1 16 1 >/dev/null
full=$(stat -c %s "$TMP/a.snap")
for cut in 20 200 $((full / 2)) $((full - 1)); do
	head -c "$cut" "$TMP/a.snap" >"$TMP/cut.snap"
	before=$(ls "$TMP/other/packs" | sort | tr '\n' ' ')
	"${STORE_CLI[@]}" import "$TMP/cut.snap" --store "$TMP/other" >"$TMP/o" 2>"$TMP/e"
	expect_eq "export cut to $cut bytes: import exits 1" "$?" 1
	expect_match "export cut to $cut bytes: says so" "$(cat "$TMP/e")" "nothing was imported"
	expect_eq "export cut to $cut bytes: no pack added" \
		"$(ls "$TMP/other/packs" | sort | tr '\n' ' ')" "$before"
done
"${STORE_CLI[@]}" ls --store "$TMP/other" >"$TMP/o"
expect_eq "truncated exports: nothing imported" "$(grep -c '^a-' "$TMP/o")" 0
cp "$TMP/a.snap" "$TMP/flip.snap"
printf '\x01' | dd of="$TMP/flip.snap" bs=1 seek=$((full / 2)) conv=notrunc status=none
"${STORE_CLI[@]}" import "$TMP/flip.snap" --store "$TMP/other" >"$TMP/o" 2>"$TMP/e"
expect_eq "a flipped byte in an export: refused" "$?" 1
"${STORE_CLI[@]}" import "$TMP/a.snap" --store "$TMP/other" >"$TMP/o" 2>"$TMP/e"
expect_eq "the whole export imports" "$?" 0
"$TOOL" check "$TMP/other" >/dev/null 2>&1
expect_eq "the import reads back" "$?" 0
"${STORE_CLI[@]}" verify --store "$TMP/other" >"$TMP/o" 2>"$TMP/e"
expect_eq "verify after the failed and the good imports" "$?" 0
finish
