#!/bin/bash
# Host resources are configuration, not state: a restored clone gets the
# snapshot's devices, with the files that restore options give; a snapshot
# does not record them.
. "$(dirname "$0")/lib.sh"
require_kvm
export SNAPVM_STORE="$TMP/store"

truncate -s 1M "$TMP/a.img"
"$SNAPVM" run --kernel "$GUEST" --disk "$TMP/a.img" --snapshot-on-ready dsk </dev/null >/dev/null 2>&1
expect_eq "snapshot with a disk" "$?" 0
cp "$TMP/a.img" "$TMP/b.img"

timeout 30 "$SNAPVM" invoke dsk blk read 0 8 </dev/null >/dev/null 2>"$TMP/err"
expect_eq "no --disk for the snapshot's disk: exit code" "$?" 2
grep -q "has 1 disk: give --disk PATH for each at restore" "$TMP/err" && pass "no --disk: says why" ||
	fail "no --disk: $(cat "$TMP/err")"
zeros=$(timeout 30 "$SNAPVM" invoke dsk --disk "$TMP/a.img" blk read 0 8)
[[ "$zeros" =~ ^OK\ [0-9a-f]{16}$ ]] && pass "the clone reads the snapshot's disk" || fail "blk read: '$zeros'"
out=$(printf 'blk write 0 8 5\nblk read 0 8\nexit 0\n' | timeout 30 "$SNAPVM" restore dsk --disk "$TMP/b.img")
written=$(sed -n 2p <<<"$out")
[ -n "$written" ] && [ "$written" != "$zeros" ] && pass "a clone on another file writes there" ||
	fail "write through --disk: '$out'"
expect_eq "the write reached the other file" "$(timeout 30 "$SNAPVM" invoke dsk --disk "$TMP/b.img" blk read 0 8)" "$written"
expect_eq "the snapshot's own file is untouched" \
	"$(timeout 30 "$SNAPVM" invoke dsk --disk "$TMP/a.img" blk read 0 8)" "$zeros"

timeout 30 "$SNAPVM" restore dsk --disk "$TMP/a.img" --disk "$TMP/b.img" </dev/null >/dev/null 2>"$TMP/err"
expect_eq "two disks for a one-disk snapshot: exit code" "$?" 2
grep -q "has 1 disk: give --disk PATH for each" "$TMP/err" && pass "two disks: says why" || fail "two disks: $(cat "$TMP/err")"
timeout 30 "$SNAPVM" restore dsk --disk "$TMP/b.img,ro" </dev/null >/dev/null 2>"$TMP/err"
expect_eq "a read-only disk for a writable one: exit code" "$?" 2
timeout 30 "$SNAPVM" restore dsk --disk "$TMP/a.img" --vsock "3,$TMP/v.sock" </dev/null >/dev/null 2>"$TMP/err"
expect_eq "a vsock device the snapshot did not have: exit code" "$?" 2
# a network device: its host network is given again, here user networking
"$SNAPVM" run --kernel "$GUEST" --net user --snapshot-on-ready netu </dev/null >/dev/null 2>&1
expect_eq "snapshot with a network device" "$?" 0
timeout 30 "$SNAPVM" restore netu </dev/null >/dev/null 2>"$TMP/err"
expect_eq "no --net for the snapshot's network device: exit code" "$?" 2
grep -q "has 1 network device: give --net for each at restore" "$TMP/err" &&
	pass "no --net: says why" || fail "no --net: $(cat "$TMP/err")"
expect_eq "invoke --net user" "$(timeout 30 "$SNAPVM" invoke netu --net user ping)" PONG
rm "$TMP/a.img"
timeout 30 "$SNAPVM" invoke dsk --disk "$TMP/a.img" blk read 0 8 >/dev/null 2>"$TMP/err"
expect_eq "a missing disk file: exit code" "$?" 2
grep -q "a.img: No such file" "$TMP/err" && pass "a missing disk file: says which" ||
	fail "a missing disk file: $(cat "$TMP/err")"
finish
