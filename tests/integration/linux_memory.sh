#!/bin/bash
# Memory correctness across a snapshot with the Linux guest: its init fills
# FILL MiB of tmpfs (page cache) and FILL MiB of an anonymous mapping with a
# pattern in which every 8-byte word depends on its position, is snapshotted
# at READY, and a clone restored in each memory mode checks every word
# (`memcheck`): a page lost, stale, zero or restored at the wrong place fails
# the test. A clone whose mapping is corrupted on purpose shows that the
# check can fail, and where. Needs KVM on VT-x/AMD-V (or the nested platform).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/linux_lib.sh"
require_hardware_virtualization
linux_images
export SNAPVM_STORE="$TMP/store"
# a hang guard for one boot or one clone: paging 400 MiB in lazily takes
# minutes on the nested platform, more when its host is busy
BOUND=${SNAPVM_TEST_BOUND:-600}
FILL=200 # MiB of tmpfs, and as many of anonymous memory
WANT="OK memcheck $FILL MiB tmpfs, $FILL MiB mapping"

started=$SECONDS
timeout $BOUND "$SNAPVM" run --kernel "$BZIMAGE" --initrd "$INITRAMFS" --mem 768M \
	--cmdline "snapvm.fill=$FILL" --snapshot-on-ready mem </dev/null >"$TMP/mem.out" 2>"$TMP/mem.err"
expect_eq "fill $FILL MiB, snapshot at the init's ready code (exit status)" "$?" 0
expect_eq "READY before the snapshot" "$(tr -d '\r' <"$TMP/mem.out" | grep -cx READY)" 1
[ -s "$TMP/mem.err" ] && cat "$TMP/mem.err" >&2
echo "boot, fill and snapshot: $((SECONDS - started)) s"

for mode in eager lazy prefetch mmap; do
	started=$SECONDS
	reply=$(timeout $BOUND "$SNAPVM" invoke --timeout $((BOUND * 1000)) --memory $mode mem \
		memcheck 2>"$TMP/invoke.err")
	expect_eq "$mode: every word of tmpfs and of the mapping" "$reply" "$WANT"
	[ "$reply" = "$WANT" ] || cat "$TMP/invoke.err" >&2
	echo "$mode: restore and memcheck: $((SECONDS - started)) s"
done

# One byte of the mapping flipped in a clone: memcheck names its word.
printf 'corrupt\nmemcheck\nexit\n' | timeout $BOUND "$SNAPVM" restore mem --memory eager \
	>"$TMP/corrupt.out" 2>"$TMP/corrupt.err"
expect_eq "corrupted clone: exit status after exit" "$?" 0
byte=$(tr -d '\r' <"$TMP/corrupt.out" | sed -n 's/^OK corrupt mapping byte \([0-9]*\)$/\1/p')
if [ -z "$byte" ]; then
	fail "corrupt: no reply: $(cat "$TMP/corrupt.out" "$TMP/corrupt.err")"
else
	expect_eq "corrupted clone: memcheck finds the flipped byte's word" \
		"$(tr -d '\r' <"$TMP/corrupt.out" | grep '^ERR memcheck')" \
		"ERR memcheck: mapping byte $((byte / 8 * 8))"
fi
finish
