#!/bin/bash
# The virtio devices seen from the test guest: block data across VMs, a
# read-only disk, the entropy device, the virtio console, vsock both ways,
# and malformed descriptor chains that snapvm must survive.
. "$(dirname "$0")/lib.sh"
require_kvm
PEER="$BUILD/tests/tools/vsock_peer"

# Block: written in one VM, read back in another from the same file.
truncate -s 8M "$TMP/disk.img"
run_guest 'blk write 100 300 7\nexit 0\n' --disk "$TMP/disk.img"
expect_eq "blk write: exit code" "$RC" 0
written=$(sed -n 2p <<<"$OUT")
[[ "$written" =~ ^OK\ [0-9a-f]{16}$ ]] && pass "blk write replies" || fail "blk write: '$written'"
run_guest 'blk read 100 300\nblk read 101 300\nexit 0\n' --disk "$TMP/disk.img,id=data"
expect_eq "blk read in a second VM matches the write" "$(sed -n 2p <<<"$OUT")" "$written"
[ "$(sed -n 3p <<<"$OUT")" != "$written" ] && pass "other sectors read otherwise" ||
	fail "blk read 101 300 matched the data at 100"
expect_eq "blk: nothing on stderr" "$ERR" ""
# the data is on the host file too: sector 100 starts with the guest's first word
[ "$(od -An -tx8 -j $((100 * 512)) -N8 "$TMP/disk.img" | tr -d ' ')" != 0000000000000000 ] &&
	pass "blk data reached the file" || fail "sector 100 of the file is still zero"

# Read-only: writes fail with VIRTIO_BLK_S_IOERR (1), reads work, the file is unchanged.
sum=$(md5sum <"$TMP/disk.img")
run_guest 'blk write 0 8 1\nblk read 100 300\nexit 0\n' --disk "$TMP/disk.img,ro"
expect_eq "read-only disk refuses writes" "$(sed -n 2p <<<"$OUT")" "ERR blk status 1"
expect_eq "read-only disk reads" "$(sed -n 3p <<<"$OUT")" "$written"
expect_eq "read-only disk: file unchanged" "$(md5sum <"$TMP/disk.img")" "$sum"
# Beyond the end of the disk: an I/O error, not a crash.
run_guest 'blk read 16380 8\nexit 0\n' --disk "$TMP/disk.img"
expect_eq "read past the end" "$(sed -n 2p <<<"$OUT")" "ERR blk status 1"
run_guest 'blk read 0 1\nexit 0\n'
expect_eq "no disk" "$(sed -n 2p <<<"$OUT")" "ERR no disk"

# Entropy: two requests, two different answers.
run_guest 'rng 1000\nrng 1000\nexit 0\n' --rng
a=$(sed -n 2p <<<"$OUT")
b=$(sed -n 3p <<<"$OUT")
[[ "$a" =~ ^OK\ [0-9a-f]{16}$ && "$a" != "$b" ]] && pass "rng gives fresh bytes" ||
	fail "rng replies '$a' and '$b'"

# The virtio console carries the line protocol (READY included).
run_guest 'ping\ncpus\nexit 6\n' --console virtio
expect_eq "virtio console: exit code" "$RC" 6
expect_eq "virtio console: replies" "$(tr '\n' ' ' <<<"$OUT")" "READY PONG CPUS 1 "

# Malformed chains of every kind: snapvm logs, keeps running, the devices still work.
run_guest 'evil\nping\nrng 64\nblk read 100 300\nexit 0\n' --rng --disk "$TMP/disk.img" \
	--vsock 3,"$TMP/evil.sock"
expect_eq "evil: exit code" "$RC" 0
[[ "$(sed -n 2p <<<"$OUT")" =~ ^OK\ evil:\ [0-9]+\ bad\ chains,\ [0-9]+\ device\ resets,\ 0\ accepted$ ]] &&
	pass "evil: every bad chain refused" || fail "evil: '$(sed -n 2p <<<"$OUT")'"
expect_eq "evil: still serving" "$(sed -n 3p <<<"$OUT")" PONG
[[ "$(sed -n 4p <<<"$OUT")" =~ ^OK ]] && pass "evil: rng still works" || fail "evil: rng after"
expect_eq "evil: disk still works" "$(sed -n 5p <<<"$OUT")" "$written"
grep -q '^snapvm: error: virtio .*descriptor chain' <<<"$ERR" && pass "evil: errors logged" ||
	fail "evil: no error logged: '$ERR'"
[ "$(grep -c 'virtio rng' <<<"$ERR")" -eq 1 ] && pass "evil: logged once per device" ||
	fail "evil: rng errors logged $(grep -c 'virtio rng' <<<"$ERR") times"

# vsock: a host program reaches the guest, and the guest reaches a host listener.
mkfifo "$TMP/in"
"$SNAPVM" run --kernel "$GUEST" --vsock 3,"$TMP/v.sock" <"$TMP/in" >"$TMP/vsock.out" \
	2>"$TMP/vsock.err" &
pid=$!
exec 3>"$TMP/in"
echo "vsock listen 1234" >&3
for _ in $(seq 100); do grep -q '^OK$' "$TMP/vsock.out" && break; sleep 0.1; done
replies=$(timeout 30 "$PEER" connect "$TMP/v.sock" 1234 ping "blk read 0 1" "spin 1000")
expect_eq "vsock host to guest" "$(tr '\n' ' ' <<<"$replies" | sed 's/^OK [0-9]* //')" \
	"PONG ERR no disk OK 0c861315d1e44e08 "
[[ "$replies" =~ ^OK\ [0-9]+ ]] && pass "vsock handshake answers OK <port>" ||
	fail "vsock handshake: '$replies'"
timeout 30 "$PEER" listen "$TMP/v.sock_5000" ping cpus >"$TMP/peer.out" &
peer=$!
for _ in $(seq 50); do [ -S "$TMP/v.sock_5000" ] && break; sleep 0.1; done
echo "vsock connect 5000" >&3
echo "vsock connect 5001" >&3
wait $peer
expect_eq "vsock guest to host" "$(tr '\n' ' ' <"$TMP/peer.out")" "PONG CPUS 1 "
echo "exit 0" >&3
exec 3>&-
wait $pid
expect_eq "vsock: exit code" "$?" 0
expect_eq "vsock: console replies" "$(tr '\n' ' ' <"$TMP/vsock.out")" \
	"READY OK OK ERR connection refused "
expect_eq "vsock: nothing on stderr" "$(cat "$TMP/vsock.err")" ""
[ ! -e "$TMP/v.sock" ] && pass "vsock socket removed at exit" || fail "$TMP/v.sock left behind"
finish
