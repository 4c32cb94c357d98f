#!/bin/bash
# A bad snapshot is refused whole with exit 2 and one line, and no VM starts.
. "$(dirname "$0")/lib.sh"
require_kvm
export SNAPVM_STORE="$TMP/store"
TAMPER="$BUILD/tests/tools/snapshot_tamper"

"$SNAPVM" run --kernel "$GUEST" --snapshot-on-ready good </dev/null >/dev/null 2>&1
expect_eq "a good snapshot" "$?" 0

# damaged NAME ACTION...: a copy of the good snapshot with its state file damaged
damaged() {
	local name=$1
	shift
	"$TAMPER" "$SNAPVM_STORE" good "$name" "$@" || fail "snapshot_tamper $name $*"
}

# refused WHAT NAME FRAGMENT: restore must exit 2, say FRAGMENT in one line, print nothing
refused() {
	printf 'ping\n' | timeout 30 "$SNAPVM" restore "$2" >"$TMP/out" 2>"$TMP/err"
	local rc=$?
	expect_eq "$1: exit code" "$rc" 2
	expect_eq "$1: one line" "$(wc -l <"$TMP/err")" 1
	expect_eq "$1: the guest never ran" "$(wc -c <"$TMP/out")" 0
	grep -q -- "$3" "$TMP/err" && pass "$1: says '$3'" || fail "$1: message '$(cat "$TMP/err")'"
}

damaged truncated truncate 3000
refused "truncated state" truncated "truncated"
damaged flipped flip 500
refused "a flipped byte" flipped "checksum mismatch"
damaged major major 3
refused "unknown major version" major "format 3.0: this snapvm reads format 2.x only"
damaged old major 1
refused "an older format" old "format 1.0: this snapvm reads format 2.x only (take the snapshot again)"
damaged minor minor 9
refused "newer minor version" minor "format 2.9 is newer than this snapvm"
damaged oversized section-length 0x100 4000000000
refused "oversized section" oversized "more than 16 MiB"
damaged cpu vendor NotThisCPUxx
refused "incompatible CPU" cpu "incompatible CPU"
damaged uart section-byte 0x201 10 200 # rx_count past the FIFO
refused "impossible device state" uart "snapshot's uart state is invalid"

# A virtio queue whose ring lies outside guest RAM: the device's own check refuses it.
mkfifo "$TMP/in"
"$SNAPVM" run --kernel "$GUEST" --rng --api-sock "$TMP/api" <"$TMP/in" >"$TMP/rng.out" 2>&1 &
pid=$!
exec 3>"$TMP/in"
echo "rng 16" >&3 # the guest sets up the entropy device's queue on first use
for _ in $(seq 100); do grep -q '^OK' "$TMP/rng.out" && break; sleep 0.1; done
"$SNAPVM" snapshot --api-sock "$TMP/api" rngsnap >/dev/null
exec 3>&-
wait $pid
expect_eq "snapshot of a VM with a live virtio queue" "$(timeout 30 "$SNAPVM" invoke rngsnap ping)" PONG
# the queue's descriptor table address: the transport's registers (32 bytes), then queue 0
"$TAMPER" "$SNAPVM_STORE" rngsnap badqueue section-byte 0x302 38 0x7f
refused "a queue address outside guest RAM" badqueue "virtio-rng state is invalid"

refused "no such snapshot" nosuch "no snapshot named 'nosuch'"
refused "a name with a path in it" "../good" "is not a snapshot name"

# invoke refuses the same way
timeout 30 "$SNAPVM" invoke flipped ping >"$TMP/out" 2>"$TMP/err"
expect_eq "invoke of a damaged snapshot: exit code" "$?" 2

# nothing was lost: the good snapshot still restores
expect_eq "the good snapshot still works" "$(timeout 30 "$SNAPVM" invoke good ping)" PONG

# snapshot names that already exist are refused by the writer, not overwritten
"$SNAPVM" run --kernel "$GUEST" --snapshot-on-ready good </dev/null >/dev/null 2>"$TMP/err"
expect_eq "snapshot over an existing name: exit code" "$?" 1
grep -q "exists" "$TMP/err" && pass "snapshot over an existing name: says so" ||
	fail "snapshot over an existing name: '$(cat "$TMP/err")'"

# the snapshot client's errors
timeout 10 "$SNAPVM" snapshot --api-sock "$TMP/nosocket" x >/dev/null 2>"$TMP/err"
expect_eq "snapshot with no VM at the socket: exit code" "$?" 1
timeout 10 "$SNAPVM" snapshot x >/dev/null 2>&1
expect_eq "snapshot without --api-sock: exit code" "$?" 2
timeout 10 "$SNAPVM" invoke >/dev/null 2>&1
expect_eq "invoke without arguments: exit code" "$?" 2
timeout 10 "$SNAPVM" restore good --clones 2 --api-sock "$TMP/one" >/dev/null 2>&1
expect_eq "restore --clones 2 with one socket: exit code" "$?" 2
finish
