#!/bin/bash
# virtio-vsock driven by Linux's own transport: 1 MiB from the host to the
# guest (CONNECT <port> on snapvm's Unix socket) and 1 MiB from the guest to
# the host (a listener on PATH_<port>), each checksummed at the other end;
# and across a snapshot: a clone's guest sees its old connection reset and
# connects again, with the clone's own generation id. Needs Linux to boot
# fully (hardware virtualization, or the nested platform).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/linux_lib.sh"
require_hardware_virtualization
linux_images
export SNAPVM_STORE="$TMP/store"
BOUND=${SNAPVM_TEST_BOUND:-180}
PEER="$BUILD/tests/tools/vsock_peer"
pids=""
trap '[ -n "$pids" ] && kill $pids 2>/dev/null; rm -rf "$TMP"' EXIT

sum() { sha256sum | cut -d' ' -f1; }

# --- 1 MiB each way ---
head -c 1048576 /dev/urandom >"$TMP/up.bin"
"$PEER" listen "$TMP/v.sock_1235" - </dev/null >"$TMP/down.bin" 2>"$TMP/down.err" &
down=$!
pids="$down"
linux_script_initrd stream '
snapvm-helper vsock-listen 1234 </dev/null >/tmp/up
echo "RECEIVED $(sha256sum </tmp/up | cut -d" " -f1) $(wc -c </tmp/up)"
head -c 1048576 /dev/urandom >/tmp/down
echo "SENDING $(sha256sum </tmp/down | cut -d" " -f1)"
snapvm-helper vsock-connect 2 1235 </tmp/down >/dev/null && echo SENT'
linux_start stream run --kernel "$BZIMAGE" --initrd "$TMP/stream.cpio" --vsock 3,"$TMP/v.sock"
if linux_wait stream "^LISTENING 1234"; then
	"$PEER" connect "$TMP/v.sock" 1234 - <"$TMP/up.bin" >"$TMP/up.out" 2>"$TMP/up.err"
	expect_eq "host to guest: the host's side ended well" "$?" 0
	[[ "$(head -n 1 "$TMP/up.out")" =~ ^OK\ [0-9]+$ ]] && pass "host to guest: handshake" ||
		fail "host to guest: handshake: '$(head -n 1 "$TMP/up.out")'"
else
	fail "host to guest: the guest never listened"
fi
linux_end stream
wait "$down"
expect_eq "guest to host: the listener's status" "$?" 0
expect_eq "stream: exit status" "$RC" 0
expect_eq "host to guest: 1 MiB, checksummed in the guest" "$(linux_field stream RECEIVED)" \
	"$(sum <"$TMP/up.bin") 1048576"
grep -qx SENT <(tr -d '\r' <"$TMP/stream.out") && pass "guest to host: the guest's side ended well" ||
	fail "guest to host: the guest's side failed"
expect_eq "guest to host: 1 MiB, checksummed on the host" "$(sum <"$TMP/down.bin")" \
	"$(linux_field stream SENDING)"

# --- a connection across a snapshot: reset in the clone, then made again ---
# The host end of port 1236 keeps its side open (its stdin is a fifo held by
# this script), so the guest's connection only ends by the transport reset.
mkfifo "$TMP/hold"
exec 5<>"$TMP/hold"
"$PEER" listen "$TMP/s.sock_1236" - <"$TMP/hold" >"$TMP/keep1.out" 2>/dev/null &
pids="$pids $!"
linux_script_initrd keep '
snapvm-helper vsock-keep 1236 >/tmp/keep.log &
until grep -q connected /tmp/keep.log; do sleep 0.1; done
exec snapvm-helper serve'
timeout $BOUND "$SNAPVM" run --kernel "$BZIMAGE" --initrd "$TMP/keep.cpio" \
	--vsock 3,"$TMP/s.sock" --snapshot-on-ready keep </dev/null >"$TMP/keep.out" 2>"$TMP/keep.err"
expect_eq "keep: snapshot at ready with a vsock connection open" "$?" 0
first=$(tr -d '\r' <"$TMP/keep1.out" | head -n 1)
[[ "$first" =~ ^HELLO\ 1\ [0-9a-f]{32}$ ]] && pass "keep: the original connected" ||
	fail "keep: the original's hello: '$first'"

"$PEER" listen "$TMP/c.sock_1236" - <"$TMP/hold" >"$TMP/keep2.out" 2>/dev/null &
listener=$!
pids="$pids $listener"
# its console stays open: the function does not end with its input
LINUX_INPUT="$TMP/hold" linux_start clone restore keep --vsock 3,"$TMP/c.sock"
deadline=$((SECONDS + BOUND))
until grep -q HELLO "$TMP/keep2.out" || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
again=$(tr -d '\r' <"$TMP/keep2.out" | head -n 1)
[[ "$again" =~ ^HELLO\ 2\ [0-9a-f]{32}$ ]] && pass "keep: the clone saw the reset and connected again" ||
	fail "keep: the clone's hello: '$again' (want HELLO 2 <id>)"
[ -n "$again" ] && [ "${again##* }" != "${first##* }" ] &&
	pass "keep: the clone's generation id is its own" ||
	fail "keep: the clone's generation id: '${again##* }', the original's: '${first##* }'"
kill "$LINUX_PID" "$listener" 2>/dev/null
wait "$LINUX_PID" 2>/dev/null
for name in stream keep clone; do
	[ -s "$TMP/$name.err" ] && sed "s/^/$name: /" "$TMP/$name.err" >&2
done
finish
