#!/bin/bash
# Snapshots in a Ceph RADOS pool, restored lazily on another "host" (a cache
# directory of its own): the replies match; an OSD killed during a lazy
# restore does not stop it; every OSD stopped during one stops the clone
# within --store-timeout with one line.
#
# Where /dev/kvm is missing, scripts/run-tests.sh runs this in the nested
# platform's L1, and the cluster starts inside the L1 too (under the build
# directory): Ceph daemons advertise their own addresses in the cluster
# maps, so a client in the L1 could not follow the maps of a cluster on the
# host through QEMU's user networking.
. "$(dirname "$0")/lib.sh"
. "$SRC/tests/ceph/lib.sh"
require_kvm
ceph_up
# Under the nested platform's emulation an OSD write can take longer than
# the default 5 s timeout; the failure cases below set theirs explicitly.
export SNAPVM_STORE_TIMEOUT=${SNAPVM_STORE_TIMEOUT:-60}
# A clone that died must fail the checks that follow, not kill the script
# through a write into its console FIFO.
trap '' PIPE

HEAP=heap=64M
run_guest 'touch 4096 5\ntouch 100 1\nexit 0\n' --cmdline $HEAP
expect_eq "reference run" "$RC" 0
ref_big=$(sed -n 2p <<<"$OUT")
ref_small=$(sed -n 3p <<<"$OUT")

# Host A snapshots.
SNAPVM_STORE=$(rados_store a) "$SNAPVM" run --kernel "$GUEST" --cmdline $HEAP \
	--snapshot-on-ready fn </dev/null >"$TMP/out" 2>"$TMP/err"
rc=$?
expect_eq "host A: snapshot on ready" "$rc" 0
[ $rc = 0 ] || cat "$TMP/err" >&2

# Host B, with nothing cached, restores and answers like the original.
export SNAPVM_STORE
SNAPVM_STORE=$(rados_store b)
expect_eq "host B: invoke (lazy, empty cache)" \
	"$(timeout 300 "$SNAPVM" invoke --timeout 240000 --memory lazy fn touch 4096 5)" "$ref_big"
expect_eq "host B: invoke again, from its cache" \
	"$(timeout 300 "$SNAPVM" invoke --timeout 240000 fn touch 4096 5)" "$ref_big"
SNAPVM_STORE=$(rados_store c)
expect_eq "host C: invoke (prefetch, empty cache)" \
	"$(timeout 300 "$SNAPVM" invoke --timeout 240000 fn touch 100 1)" "$ref_small"

# Hosts A and B snapshot different guests at the same time; each lists
# both, and each restores the other's.
run_guest 'touch 100 1\nexit 0\n' --cmdline heap=16M
ref_g1=$(sed -n 2p <<<"$OUT")
run_guest 'touch 100 1\nexit 0\n' --cmdline heap=8M
ref_g2=$(sed -n 2p <<<"$OUT")
SNAPVM_STORE=$(rados_store a) "$SNAPVM" run --kernel "$GUEST" --cmdline heap=16M \
	--snapshot-on-ready g1 </dev/null >"$TMP/g1.out" 2>&1 &
p1=$!
SNAPVM_STORE=$(rados_store b) "$SNAPVM" run --kernel "$GUEST" --cmdline heap=8M \
	--snapshot-on-ready g2 </dev/null >"$TMP/g2.out" 2>&1 &
p2=$!
wait $p1
expect_eq "host A snapshots g1 while host B snapshots g2" "$?" 0
wait $p2
expect_eq "host B snapshots g2 while host A snapshots g1" "$?" 0
for h in a b; do
	n=$(SNAPVM_STORE=$(rados_store $h) "$SNAPVM" ls | grep -cE '^g(1|2) ')
	expect_eq "host $h lists both guests' snapshots" "$n" 2
done
SNAPVM_STORE=$(rados_store a)
expect_eq "host A restores host B's g2" \
	"$(timeout 300 "$SNAPVM" invoke --timeout 240000 g2 touch 100 1)" "$ref_g2"
SNAPVM_STORE=$(rados_store b)
expect_eq "host B restores host A's g1" \
	"$(timeout 300 "$SNAPVM" invoke --timeout 240000 g1 touch 100 1)" "$ref_g1"

# clone_start HOST TIMEOUT: a lazy clone on HOST reading requests from a
# FIFO on fd 3, its output in $TMP/clone.out and .err, its pid in CLONE.
clone_start() {
	rm -f "$TMP/in"
	mkfifo "$TMP/in"
	SNAPVM_STORE=$(rados_store "$1") timeout 300 "$SNAPVM" restore fn --memory lazy \
		--store-timeout "$2" <"$TMP/in" >"$TMP/clone.out" 2>"$TMP/clone.err" &
	CLONE=$!
	exec 3>"$TMP/in"
}

# wait_reply N: waits (hang guard 120 s) for the clone's Nth line of output.
wait_reply() {
	local i
	for i in $(seq 1200); do
		[ "$(wc -l <"$TMP/clone.out")" -ge "$1" ] && return 0
		kill -0 $CLONE 2>/dev/null || break
		sleep 0.1
	done
	[ "$(wc -l <"$TMP/clone.out")" -ge "$1" ]
}

# ---- Every OSD stops during a lazy restore ----
TIMEOUT_S=3
clone_start d $TIMEOUT_S
echo "touch 100 1" >&3
wait_reply 1 && pass "host D: the clone answers before the OSDs stop" ||
	fail "host D: no first reply: $(cat "$TMP/clone.err")"
"$CLUSTER" stop-osds "$CEPH_DIR"
start=$(date +%s%N)
echo "touch 4096 5" >&3
wait $CLONE
rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
exec 3>&-
"$CLUSTER" cont-osds "$CEPH_DIR"
[ $rc -ne 0 ] && pass "the clone stops when no OSD answers (exit $rc)" ||
	fail "the clone went on without OSDs"
echo "clone stopped ${elapsed_ms} ms after the request (--store-timeout ${TIMEOUT_S} s)"
# a hang guard with room for a loaded machine; the figure is printed above
[ $elapsed_ms -le $(((TIMEOUT_S + 5) * 1000)) ] &&
	pass "the clone stopped within the timeout (+ slack)" ||
	fail "the clone took $elapsed_ms ms to stop with --store-timeout $TIMEOUT_S"
lines=$(grep -c 'error' "$TMP/clone.err")
grep -q 'cannot be fetched from the pool' "$TMP/clone.err" &&
	pass "one clear line says why: $(grep -m1 'cannot be fetched' "$TMP/clone.err")" ||
	fail "no clear line: $(cat "$TMP/clone.err")"
[ "$lines" -eq 1 ] && pass "one error line" ||
	fail "$lines error lines: $(cat "$TMP/clone.err")"

# ---- One OSD dies during a lazy restore: the pool's other copy serves ----
clone_start e 60
echo "touch 100 1" >&3
wait_reply 1 && pass "host E: the clone answers before an OSD dies" ||
	fail "host E: no first reply: $(cat "$TMP/clone.err")"
"$CLUSTER" kill-osd 0 "$CEPH_DIR"
echo "touch 4096 5" >&3
wait_reply 2
expect_eq "host E: the reply after an OSD died" "$(sed -n 2p "$TMP/clone.out")" "$ref_big"
echo "exit 0" >&3
exec 3>&-
wait $CLONE
expect_eq "host E: the clone ends normally" "$?" 0

exit $((FAILURES > 0))
