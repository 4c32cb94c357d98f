#!/bin/bash
# virtio-net: the test guest answers ping and UDP requests over a TAP device
# in a network namespace this test makes, and UDP through user networking's
# hostfwd (loopback only); malformed frames from the guest leave snapvm
# running; a snapshot with networking restored as 3 clones, each in its own
# namespace, answers in each. Needs root for the namespaces (CI runs as root).
. "$(dirname "$0")/lib.sh"
require_kvm
export SNAPVM_STORE="$TMP/store"
PEER="$BUILD/tests/tools/udp_peer"
NETNS="$SRC/scripts/netns-clones.sh"
PREFIX="snvt$$-"
GUEST_IP=192.0.2.2

[ "$(id -u)" = 0 ] || skip "network namespaces need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)"
"$NETNS" up 1 "$PREFIX" >/dev/null 2>"$TMP/netns.err" ||
	skip "cannot make a network namespace: $(cat "$TMP/netns.err")"
cleanup() {
	[ -n "${pids:-}" ] && kill $pids 2>/dev/null
	"$NETNS" down 4 "$PREFIX"
	rm -rf "$TMP"
}
trap cleanup EXIT

# start_guest NAME ARGS...: runs snapvm ARGS in the background with a fifo as
# the console (fd 3 writes to it); a booted guest is waited for until READY.
start_guest() {
	local name=$1
	shift
	rm -f "$TMP/$name.in" && mkfifo "$TMP/$name.in"
	"$SNAPVM" "$@" <"$TMP/$name.in" >"$TMP/$name.out" 2>"$TMP/$name.err" &
	pid=$!
	pids="${pids:-} $pid"
	exec 3>"$TMP/$name.in"
	[ "$1" = restore ] && return # clones were READY before the snapshot
	for _ in $(seq 100); do grep -q READY "$TMP/$name.out" && return; sleep 0.1; done
	fail "$name: no READY: $(cat "$TMP/$name.err")"
}

# stop_guest NAME: exit 0 on its console, then its exit code and stderr are checked.
stop_guest() {
	echo "exit 0" >&3
	exec 3>&-
	wait "$pid"
	expect_eq "$1: exit code" "$?" 0
}

in_ns() {
	ip netns exec "$PREFIX$1" "${@:2}"
}

# --- user networking, loopback only ---
port=$((20000 + RANDOM % 20000))
start_guest user run --kernel "$GUEST" --cmdline "net=10.0.2.15,udp=7" \
	--net "user,hostfwd=udp:127.0.0.1:$port-:7"
expect_eq "user: UDP through hostfwd" "$(timeout 30 "$PEER" 127.0.0.1 $port ping net | tr '\n' ' ')" \
	"PONG NET 52:54:00:12:34:56 10.0.2.15:7 "
echo "net evil" >&3
expect_eq "user: UDP after malformed frames" "$(timeout 30 "$PEER" 127.0.0.1 $port ping)" PONG
stop_guest user
expect_eq "user: net evil" "$(grep evil "$TMP/user.out")" "OK net evil: 17 bad frames sent"
grep -q "dropped a descriptor chain" "$TMP/user.err" && pass "user: bad frames were logged" ||
	fail "user: stderr '$(cat "$TMP/user.err")'"

# --- TAP in a namespace ---
start_guest tap run --kernel "$GUEST" --cmdline "net=$GUEST_IP" --netns "/run/netns/${PREFIX}0" \
	--net tap=tap0,mac=02:00:00:00:00:07
in_ns 0 ping -c 3 -i 0.2 -W 5 $GUEST_IP >"$TMP/ping.out" 2>&1 &&
	pass "tap: ping" || fail "tap: ping: $(cat "$TMP/ping.out")"
expect_eq "tap: UDP" "$(in_ns 0 timeout 30 "$PEER" $GUEST_IP 7 net cpus | tr '\n' ' ')" \
	"NET 02:00:00:00:00:07 $GUEST_IP:7 CPUS 1 "
printf 'net evil\nevil\n' >&3
expect_eq "tap: UDP after malformed frames and chains" \
	"$(in_ns 0 timeout 30 "$PEER" $GUEST_IP 7 ping)" PONG
in_ns 0 ping -c 1 -W 5 $GUEST_IP >/dev/null 2>&1 && pass "tap: ping after them" ||
	fail "tap: no ping after malformed frames"
stop_guest tap
grep -q "^OK evil: .* 0 accepted" "$TMP/tap.out" && pass "tap: evil chains" ||
	fail "tap: evil: $(grep evil "$TMP/tap.out")"

# --- a snapshot with networking, restored as 3 clones, a namespace each ---
"$SNAPVM" run --kernel "$GUEST" --cmdline "net=$GUEST_IP" --netns "/run/netns/${PREFIX}0" \
	--net tap=tap0 --snapshot-on-ready netsnap </dev/null >/dev/null 2>"$TMP/snap.err"
expect_eq "snapshot of a VM with a network device" "$?" 0
"$NETNS" down 1 "$PREFIX"
"$NETNS" up 3 "$PREFIX" >/dev/null
start_guest clones restore netsnap --clones 3 --net tap=tap0 --netns "/run/netns/$PREFIX%i"
gens=""
for i in 0 1 2; do
	got=$(in_ns $i timeout 30 "$PEER" $GUEST_IP 7 ping gen | tr '\n' ' ')
	[[ "$got" =~ ^PONG\ GEN\ [0-9a-f]{32}\ $ ]] && pass "clone $i answers in its namespace" ||
		fail "clone $i: '$got'"
	gens="$gens ${got#PONG GEN }"
	in_ns $i ping -c 1 -W 5 $GUEST_IP >/dev/null 2>&1 && pass "clone $i: ping" ||
		fail "clone $i: no ping"
done
expect_eq "three clones, three generations" "$(echo $gens | tr ' ' '\n' | sort -u | wc -l)" 3
stop_guest clones
expect_eq "clones: nothing on stderr" "$(cat "$TMP/clones.err")" ""

# restore options: the MAC stays the guest's; the device count must match
"$SNAPVM" restore netsnap --net tap=tap0,mac=02:00:00:00:00:01 </dev/null >/dev/null \
	2>"$TMP/mac.err"
expect_eq "restore with another MAC: exit code" "$?" 2
grep -q "MAC is 52:54:00:12:34:56; it cannot change" "$TMP/mac.err" &&
	pass "restore with another MAC: says why" || fail "mac: $(cat "$TMP/mac.err")"
"$SNAPVM" restore netsnap --net tap=tap0 --net user </dev/null >/dev/null 2>"$TMP/count.err"
expect_eq "restore with two networks for one device: exit code" "$?" 2
finish
