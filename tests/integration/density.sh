#!/bin/bash
# snapvm bench density: clones of one snapshot up at once, each answering like the original.
. "$(dirname "$0")/lib.sh"
require_kvm
export TMPDIR="$TMP"

# field NAME: a value from the density JSON in $J
field() { sed -n "s/.*\"$1\": \"\{0,1\}\([^,\"]*\).*/\1/p" <<<"$J" | head -1; }

J=$(timeout 120 "$SNAPVM" bench density --clones 4 --json)
expect_eq "4 clones: exit 0" "$?" 0
expect_eq "all 4 up, each with the original's reply" "$(field clones_started)" 4
expect_eq "no failure" "$(field failure)" null
[ "$(field touched_bytes_per_clone)" -gt 0 ] 2>/dev/null && pass "the working set's size is given" ||
	fail "touched_bytes_per_clone: '$(field touched_bytes_per_clone)'"
[ "$(grep -o '"clones": [0-9]*' <<<"$J" | tail -1)" = '"clones": 4' ] &&
	pass "the curve ends at 4 clones" || fail "curve: $J"

# More clones at once than the store index has reader slots (1024): a clone
# holds a slot only while it looks a chunk up, not for its life.
# (a hang guard: ASan clones on the nested platform took over 5 minutes)
J=$(timeout 1800 "$SNAPVM" bench density --clones 1030 --mem 32M --heap 4M --touch 16 --json)
expect_eq "1030 clones: exit 0" "$?" 0
expect_eq "all 1030 up" "$(field clones_started)" 1030
expect_eq "no failure" "$(field failure)" null
expect_eq "no clone left" "$(pgrep -f "snapvm restore density" | wc -l)" 0

"$SNAPVM" bench density --clones 0 2>"$TMP/err"
expect_eq "--clones 0: exit 2" "$?" 2
grep -q -- "--clones" "$TMP/err" && pass "says which option" || fail "$(cat "$TMP/err")"
"$SNAPVM" bench density --memory fast 2>"$TMP/err"
expect_eq "an unknown --memory: exit 2" "$?" 2
"$SNAPVM" bench density --help | grep -q -- "--clones N" && pass "--help" || fail "--help"
finish
