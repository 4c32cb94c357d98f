#!/bin/bash
# Concurrency: reader processes check snapshots over and over while another
# process writes snapshots, removes some, relayouts nothing and runs gc, which
# moves the chunks the readers are reading. Every read must be right.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-6}
READERS=3

# k-*: kept, read by the readers; t-*: removed again, so gc has packs to rewrite.
# Both families share pages, so kept chunks sit in packs beside dead ones.
"$TOOL" write "$STORE" k 1 2048 2 >/dev/null || fail "writing k-*"
"$TOOL" write "$STORE" t 1 2048 2 >/dev/null || fail "writing t-*"

for r in $(seq $READERS); do
	"$TOOL" readloop "$STORE" "$TMP/stop" k- >"$TMP/reader.$r" 2>&1 &
	eval "reader_$r=$!"
done

end=$(($(date +%s) + DURATION))
seed=10
rounds=0
gcs=0
while [ "$(date +%s)" -lt "$end" ]; do
	"$TOOL" write "$STORE" t "$seed" 2048 2 >/dev/null || fail "writing t-$seed"
	"$TOOL" write "$STORE" k "$seed" 1024 1 >/dev/null || fail "writing k-$seed"
	for name in $("${STORE_CLI[@]}" ls --store "$STORE" | awk '/^t-/ { print $1 }'); do
		cli rm "$name"
		[ "$RC" = 0 ] || fail "rm $name: $ERR"
	done
	cli gc
	[ "$RC" = 0 ] && gcs=$((gcs + 1)) || fail "gc: $ERR"
	seed=$((seed + 2))
	rounds=$((rounds + 1))
done
touch "$TMP/stop"
for r in $(seq $READERS); do
	eval "pid=\$reader_$r"
	wait "$pid"
	rc=$?
	expect_eq "reader $r: every read was right" "$rc" 0
	[ "$rc" = 0 ] || cat "$TMP/reader.$r" >&2
	echo "   reader $r: $(tail -1 "$TMP/reader.$r")"
done
echo "   $rounds writer rounds, $gcs gc runs"
[ "$gcs" -ge 3 ] && pass "gc ran while readers read" || fail "only $gcs gc runs"
cli verify
expect_rc "verify afterwards" 0
finish
