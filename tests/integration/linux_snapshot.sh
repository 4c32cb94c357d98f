#!/bin/bash
# The serverless path with a Linux guest: the project's Linux guest is
# snapshotted at its init's READY (the init writes the ready code), and each
# memory mode restores a clone that answers requests. A 2-vCPU guest's clone
# still runs a loop pinned to each CPU. Needs KVM on VT-x/AMD-V (or the
# nested platform): on PVM Linux does not reach its init.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/linux_lib.sh"
require_hardware_virtualization
linux_images
export SNAPVM_STORE="$TMP/store"
BOUND=${SNAPVM_TEST_BOUND:-120} # seconds for one boot or one invoke, however slow the host

# snapshot NAME ARGS...: boots the Linux guest with --snapshot-on-ready NAME.
snapshot() {
	local name=$1
	shift
	timeout $BOUND "$SNAPVM" run --kernel "$BZIMAGE" --initrd "$INITRAMFS" \
		--snapshot-on-ready "$name" "$@" </dev/null >"$TMP/$name.out" 2>"$TMP/$name.err"
	expect_eq "$name: snapshot at the init's ready code (exit status)" "$?" 0
	expect_eq "$name: READY before the snapshot" "$(tr -d '\r' <"$TMP/$name.out" | grep -cx READY)" 1
	[ -s "$TMP/$name.err" ] && cat "$TMP/$name.err" >&2
}

# invoke NAME REQUEST WANT ARGS...: one clone, one request, its reply.
invoke() {
	local name=$1 request=$2 want=$3 reply
	shift 3
	reply=$(timeout $BOUND "$SNAPVM" invoke --timeout $((BOUND * 1000)) "$@" "$name" \
		"$request" 2>"$TMP/invoke.err")
	expect_eq "$name ${*:-}: '$request' answered" "$reply" "$want"
	[ "$reply" = "$want" ] || cat "$TMP/invoke.err" >&2
}

snapshot fn --mem 128M
for mode in eager lazy prefetch mmap; do
	invoke fn ping PONG --memory $mode
done
invoke fn cpus "CPUS 1"
invoke fn bogus "ERR unknown request"

snapshot smp --mem 128M --cpus 2
invoke smp cpus "CPUS 2"
for mode in eager lazy; do
	invoke smp "oncpu 0" "OK cpu 0" --memory $mode
	invoke smp "oncpu 1" "OK cpu 1" --memory $mode
done
invoke smp "oncpu 2" "ERR cpu 2"

# A clone goes on where the snapshot stopped: its `exit` ends it with status 0.
printf 'ping\nexit\n' | timeout $BOUND "$SNAPVM" restore fn --memory lazy >"$TMP/restore.out" 2>&1
rc=$?
expect_eq "restore: ping, then exit: status" "$rc" 0
expect_eq "restore: the clone's reply" "$(tr -d '\r' <"$TMP/restore.out" | head -1)" PONG
finish
