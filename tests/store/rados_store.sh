#!/bin/bash
# A store in a Ceph RADOS pool, shared by "hosts" that each have a cache
# directory of their own: what one host commits, another sees and reads;
# writers on two hosts at once; gc against a writer of another host; the
# local cache rebuilt from the pool; damage made behind the store's back.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib.sh"
. "$SRC/tests/ceph/lib.sh"
ceph_up
A=$(rados_store a)
B=$(rados_store b)
C=$(rados_store c)

# hcli HOST ARGS...: `snapvm store ARGS` as HOST; sets OUT, ERR, RC.
hcli() {
	local spec
	spec=$(rados_store "$1")
	shift
	"${STORE_CLI[@]}" "$@" --store "$spec" >"$TMP/cli.out" 2>"$TMP/cli.err"
	RC=$?
	OUT=$(cat "$TMP/cli.out")
	ERR=$(cat "$TMP/cli.err")
}

# ---- One host writes, another with an empty cache reads ----
"$TOOL" write "$A" a 1 2048 2 >"$TMP/wa" 2>&1 || fail "host A writes a-*: $(cat "$TMP/wa")"
"$TOOL" check "$B" a- >"$TMP/cb" 2>&1
expect_eq "host B (empty cache) reads host A's snapshots" "$(grep '^checked' "$TMP/cb")" \
	"checked 2 snapshots"
[ -s "$TMP/host-b/index/data.mdb" ] && pass "host B's cached index was built from the pool" ||
	fail "host B has no cached index"

# The cache is only a cache: deleted, it comes back from the pool.
rm -rf "$TMP/host-b"
"$TOOL" check "$B" a- >"$TMP/cb" 2>&1
expect_eq "host B reads again after its cache was deleted" "$(grep '^checked' "$TMP/cb")" \
	"checked 2 snapshots"

# ---- Two hosts write different snapshots at once; each sees both ----
"$TOOL" write "$A" b 1 1024 3 >"$TMP/wa" 2>&1 &
pa=$!
"$TOOL" write "$B" c 1 1024 3 >"$TMP/wb" 2>&1 &
pb=$!
wait $pa
expect_eq "host A writes b-* while host B writes c-*" "$?" 0
wait $pb
expect_eq "host B writes c-* while host A writes b-*" "$?" 0
for h in a b; do
	hcli $h ls
	n=$(grep -cE '^(b|c)-' <<<"$OUT")
	expect_eq "host $h lists both hosts' snapshots" "$n" 6
done
"$TOOL" check "$A" c- >"$TMP/ca" 2>&1
expect_eq "host A reads host B's snapshots" "$(grep '^checked' "$TMP/ca")" "checked 3 snapshots"
"$TOOL" check "$B" b- >"$TMP/cb" 2>&1
expect_eq "host B reads host A's snapshots" "$(grep '^checked' "$TMP/cb")" "checked 3 snapshots"
# pack ids never collide: every pack object is named once and has its chunk list
packs=$(rados -c "$CEPH_CONF" -p "$CEPH_POOL" ls | grep -c '\.pack$')
idx=$(rados -c "$CEPH_CONF" -p "$CEPH_POOL" ls | grep -c '\.pack\.idx$')
expect_eq "every pack in the pool has its chunk list" "$idx" "$packs"

# Both hosts commit the same name at once: exactly one wins, whole.
"$TOOL" write "$A" x 1 1024 1 >"$TMP/xa" 2>&1 &
pa=$!
"$TOOL" write "$B" x 1 1024 1 >"$TMP/xb" 2>&1 &
pb=$!
wait $pa
ra=$?
wait $pb
rb=$?
expect_eq "one of two hosts committing one name succeeds" "$(((ra == 0) + (rb == 0)))" 1
grep -qE "exists already|committed 'snap.x-1-1024' meanwhile" "$TMP/xa" "$TMP/xb" &&
	pass "the other is told the name is taken" || fail "no clear line: $(cat "$TMP/xa" "$TMP/xb")"
"$TOOL" check "$C" x- >"$TMP/cx" 2>&1
expect_eq "the winner's snapshot reads right" "$(grep '^checked' "$TMP/cx")" "checked 1 snapshots"
hcli a rm x-1-1024

# ---- rm on one host, seen by the other; du, export, import ----
hcli a rm b-1-1024
expect_eq "host A removes b-1-1024" "$RC" 0
hcli b ls
grep -q '^b-1-1024 ' <<<"$OUT" && fail "host B still lists b-1-1024" ||
	pass "host B no longer lists the snapshot host A removed"
hcli b export a-1-2048 "$TMP/a1.export"
expect_eq "host B exports a-1-2048" "$RC" 0
hcli c import "$TMP/a1.export" --as imported
expect_eq "host C imports it under another name" "$RC" 0
"$TOOL" check "$A" imported >"$TMP/ca" 2>&1 || true
hcli a ls
grep -q '^imported ' <<<"$OUT" && pass "host A lists what host C imported" ||
	fail "host A does not list 'imported': $OUT"
hcli b du
expect_match "du on host B" "$OUT" '^snapshots: +8$'

# ---- gc against a writer on another host ----
# Host B stops in the middle of writing a pack (holding the pool's shared
# lock); gc on host A must wait for it rather than take its pack for an
# orphan. Then host B dies: its lock expires, gc runs, removes the half
# pack, and no committed snapshot loses anything.
"$TOOL" --pause-at 4 write "$B" d 1 2048 1 >"$TMP/wd" 2>&1 &
pd=$!
wait_line "$TMP/wd" '^paused at 4 ' $pd || fail "host B's writer did not pause: $(cat "$TMP/wd")"
"${STORE_CLI[@]}" gc --store "$A" >"$TMP/gc.out" 2>"$TMP/gc.err" &
pg=$!
wait_line "$TMP/gc.err" "waiting for the pool's exclusive lock" $pg ||
	fail "gc on host A did not wait for host B's writer: $(cat "$TMP/gc.out" "$TMP/gc.err")"
kill -9 $pd
wait $pd 2>/dev/null
wait $pg
expect_eq "gc on host A runs once host B's lock is gone" "$?" 0
grep -qE '[1-9][0-9]* left-over files removed' "$TMP/gc.out" &&
	pass "gc removed host B's half-written pack" || fail "gc output: $(cat "$TMP/gc.out")"
"$TOOL" check "$C" >"$TMP/cc" 2>&1
expect_eq "every snapshot reads right on a third host after gc" "$(grep '^checked' "$TMP/cc")" \
	"checked 8 snapshots"

# gc while another host writes: both finish, nothing is lost.
"$TOOL" write "$B" e 1 2048 4 >"$TMP/we" 2>&1 &
pe=$!
wait_line "$TMP/we" '^committed e-1-2048$' $pe || fail "host B did not start writing"
hcli a rm c-1-1024
hcli a gc
expect_eq "gc on host A while host B writes" "$RC" 0
wait $pe
expect_eq "host B's writes while host A collects" "$?" 0
"$TOOL" check "$C" >"$TMP/cc" 2>&1
expect_eq "every snapshot reads right after gc against a writer" "$(grep '^checked' "$TMP/cc")" \
	"checked 11 snapshots"
hcli c verify
expect_eq "verify on host C after the gcs" "$RC" 0

# ---- Damage behind the store's back ----
# A byte of a pack object changes in the pool; host A holds the pack in its
# cache, yet verify reads what the pool holds and names the damage.
obj=$(rados -c "$CEPH_CONF" -p "$CEPH_POOL" ls | grep '\.pack$' | sort | head -1)
rados -c "$CEPH_CONF" -p "$CEPH_POOL" get "$obj" "$TMP/obj"
size=$(stat -c %s "$TMP/obj")
printf '\xff\xfe\xfd\xfc' | dd of="$TMP/obj" bs=1 seek=$((size / 2)) conv=notrunc status=none
rados -c "$CEPH_CONF" -p "$CEPH_POOL" put "$obj" "$TMP/obj"
hcli a verify
expect_eq "verify after damage in the pool: exit code" "$RC" 1
expect_match "verify names the damaged pack" "$ERR$OUT" "${obj%.pack}"

# ---- Clear errors ----
"${STORE_CLI[@]}" ls --store "rados:nosuchpool?conf=$CEPH_CONF&cache=$TMP/x" >"$TMP/out" 2>&1
expect_eq "a missing pool: exit code" "$?" 1
expect_match "a missing pool: one line" "$(cat "$TMP/out")" "cannot open the pool"
"${STORE_CLI[@]}" ls --store "rados:p?bogus=1" >"$TMP/out" 2>&1
expect_match "a malformed spec" "$(cat "$TMP/out")" "is not rados:POOL"

exit $((FAILURES > 0))
