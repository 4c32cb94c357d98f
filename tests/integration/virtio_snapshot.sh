#!/bin/bash
# Virtio devices in use when the snapshot is taken: a clone continues on the
# same queues (the block and entropy devices answer its next requests) and
# its vsock device, whose connections stayed with the old process, tells the
# guest to start afresh; a host program then reaches the clone's listener.
. "$(dirname "$0")/lib.sh"
require_kvm
export SNAPVM_STORE="$TMP/store"
PEER="$BUILD/tests/tools/vsock_peer"

truncate -s 1M "$TMP/a.img"
mkfifo "$TMP/in"
"$SNAPVM" run --kernel "$GUEST" --disk "$TMP/a.img" --rng --vsock 3,"$TMP/v.sock" \
	--api-sock "$TMP/api" <"$TMP/in" >"$TMP/run.out" 2>"$TMP/run.err" &
pid=$!
exec 3>"$TMP/in"
printf 'blk write 0 8 5\nrng 16\nvsock listen 1234\n' >&3
for _ in $(seq 100); do [ "$(wc -l <"$TMP/run.out")" -ge 4 ] && break; sleep 0.1; done
written=$(sed -n 2p "$TMP/run.out")
expect_eq "before: vsock listen" "$(sed -n 4p "$TMP/run.out")" OK
expect_eq "before: a host program reaches the guest" \
	"$(timeout 30 "$PEER" connect "$TMP/v.sock" 1234 ping | sed -n 2p)" PONG
timeout 30 "$SNAPVM" snapshot --api-sock "$TMP/api" live >/dev/null
expect_eq "snapshot of a VM with live virtio queues" "$?" 0
exec 3>&-
wait $pid
expect_eq "the original stops after the snapshot" "$?" 0

rm -f "$TMP/in" && mkfifo "$TMP/in"
timeout 60 "$SNAPVM" restore live --disk "$TMP/a.img" --vsock 3,"$TMP/w.sock" <"$TMP/in" >"$TMP/clone.out" \
	2>"$TMP/clone.err" &
pid=$!
exec 3>"$TMP/in"
printf 'blk read 0 8\nrng 16\n' >&3
for _ in $(seq 100); do [ "$(wc -l <"$TMP/clone.out")" -ge 2 ] && break; sleep 0.1; done
expect_eq "clone: the disk queue goes on" "$(sed -n 1p "$TMP/clone.out")" "$written"
[[ "$(sed -n 2p "$TMP/clone.out")" =~ ^OK\ [0-9a-f]{16}$ ]] && pass "clone: the entropy queue goes on" ||
	fail "clone: rng '$(sed -n 2p "$TMP/clone.out")'"
expect_eq "clone: a host program reaches the restored listener" \
	"$(timeout 30 "$PEER" connect "$TMP/w.sock" 1234 ping cpus | sed -n '2,3p' | tr '\n' ' ')" \
	"PONG CPUS 1 "
echo "exit 0" >&3
exec 3>&-
wait $pid
expect_eq "clone: exit code" "$?" 0
expect_eq "clone: nothing on stderr" "$(cat "$TMP/clone.err")" ""

# A snapshot holds no host paths: a restore without --vsock is refused in
# one line, and a snapshot of a clone restores on the socket it is given.
timeout 30 "$SNAPVM" restore live --disk "$TMP/a.img" </dev/null >/dev/null 2>"$TMP/c2.err"
expect_eq "restore without --vsock: exit code" "$?" 2
grep -q "has a vsock device: give --vsock 3,PATH at restore" "$TMP/c2.err" &&
	pass "restore without --vsock: says why" || fail "no --vsock: $(cat "$TMP/c2.err")"
rm -f "$TMP/in" && mkfifo "$TMP/in"
timeout 60 "$SNAPVM" restore live --disk "$TMP/a.img" --vsock 3,"$TMP/x.sock" \
	--api-sock "$TMP/api2" <"$TMP/in" >/dev/null 2>"$TMP/c2.err" &
pid=$!
exec 3>"$TMP/in"
for _ in $(seq 100); do [ -S "$TMP/api2" ] && break; sleep 0.1; done
timeout 30 "$SNAPVM" snapshot --api-sock "$TMP/api2" again >/dev/null
expect_eq "snapshot of a clone" "$?" 0
exec 3>&-
wait $pid
expect_eq "that clone: exit code" "$?" 0
rm -f "$TMP/in" && mkfifo "$TMP/in"
timeout 60 "$SNAPVM" restore again --disk "$TMP/a.img" --vsock 3,"$TMP/y.sock" <"$TMP/in" \
	>/dev/null 2>"$TMP/c3.err" &
pid=$!
exec 3>"$TMP/in"
printf 'vsock listen 1235\n' >&3
for _ in $(seq 100); do [ -S "$TMP/y.sock" ] && break; sleep 0.1; done
sleep 0.5
expect_eq "its clone listens on the socket it was given" \
	"$(timeout 30 "$PEER" connect "$TMP/y.sock" 1235 ping | sed -n 2p)" PONG
echo "exit 0" >&3
exec 3>&-
wait $pid
expect_eq "its clone: exit code" "$?" 0
finish
