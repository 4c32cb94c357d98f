#!/bin/bash
# Concurrency: reader processes check snapshots over and over while another
# process writes snapshots, removes some and runs gc, which rewrites and
# deletes packs while the readers read. Every read must be right.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib.sh"

# No timing: the writer goes on until it has done GCS gc runs, and until every
# reader has read all k-* snapshots through at least READS times while it was
# at it (readers print "round N" after each time).
GCS=${GCS:-10}
READS=${READS:-3}
READERS=3

# k-*: kept, read by the readers; t-*: removed again, so gc has packs to rewrite.
# Both families share pages, so kept chunks sit in packs beside dead ones.
"$TOOL" write "$STORE" k 1 2048 2 >/dev/null || fail "writing k-*"
"$TOOL" write "$STORE" t 1 2048 2 >/dev/null || fail "writing t-*"

for r in $(seq $READERS); do
	"$TOOL" readloop "$STORE" "$TMP/stop" k- >"$TMP/reader.$r" 2>&1 &
	eval "reader_$r=$!"
done
# reader_rounds R: how many times reader R has read everything through.
reader_rounds() {
	grep -c '^round ' "$TMP/reader.$1"
}
# Every reader is reading before the first gc.
for r in $(seq $READERS); do
	eval "pid=\$reader_$r"
	wait_line "$TMP/reader.$r" '^round 1$' "$pid" || fail "reader $r stopped before reading once"
	eval "start_$r=$(reader_rounds "$r")"
done

# readers_behind: true while a reader has read fewer than READS times since the
# writer began. A reader that stopped (it found a wrong byte) is not behind;
# nor, to tell a hang, is one after WAIT_LIMIT s without a round.
readers_behind() {
	local r pid n behind=1
	for r in $(seq $READERS); do
		eval "pid=\$reader_$r"
		n=$(($(reader_rounds "$r") - start_$r))
		kill -0 "$pid" 2>/dev/null || continue
		if [ "$n" != "$(eval echo \${last_$r:-x})" ]; then
			eval "last_$r=$n since_$r=$SECONDS"
		elif [ $((SECONDS - since_$r)) -ge "$WAIT_LIMIT" ]; then
			fail "hung: reader $r read nothing through in $WAIT_LIMIT s"
			continue
		fi
		[ "$n" -lt "$READS" ] && behind=0
	done
	return $behind
}

seed=10
rounds=0
gcs=0
moved=0
while [ "$gcs" -lt "$GCS" ] || readers_behind; do
	[ "$FAILURES" = 0 ] || break
	"$TOOL" write "$STORE" t "$seed" 2048 2 >/dev/null || fail "writing t-$seed"
	"$TOOL" write "$STORE" k "$seed" 1024 1 >/dev/null || fail "writing k-$seed"
	for name in $("${STORE_CLI[@]}" ls --store "$STORE" | awk '/^t-/ { print $1 }'); do
		cli rm "$name"
		[ "$RC" = 0 ] || fail "rm $name: $ERR"
	done
	cli gc --json
	[ "$RC" = 0 ] || fail "gc: $ERR"
	n=$(sed -nE 's/.*"chunks_moved": ([0-9]+).*/\1/p' <<<"$OUT")
	[ "$RC" = 0 ] && gcs=$((gcs + 1))
	moved=$((moved + ${n:-0}))
	seed=$((seed + 2))
	rounds=$((rounds + 1))
done
during=
for r in $(seq $READERS); do
	during+=" $(($(reader_rounds "$r") - start_$r))"
done
touch "$TMP/stop"
for r in $(seq $READERS); do
	eval "pid=\$reader_$r"
	wait_line "$TMP/reader.$r" '^checked ' "$pid"
	wait "$pid"
	rc=$?
	expect_eq "reader $r: every read was right" "$rc" 0
	[ "$rc" = 0 ] || cat "$TMP/reader.$r" >&2
	echo "   reader $r: $(grep "^checked " "$TMP/reader.$r")"
done
echo "   $rounds writer rounds, $gcs gc runs (moved $moved chunks); reads through meanwhile:$during"
[ "$gcs" -ge "$GCS" ] && pass "gc ran $gcs times while readers read" || fail "only $gcs gc runs"
fewest=$(tr ' ' '\n' <<<"$during" | awk 'NF { if (min == "" || $1 < min) min = $1 } END { print min + 0 }')
[ "$fewest" -ge "$READS" ] &&
	pass "every reader read everything through $READS times meanwhile" ||
	fail "readers read through only$during times while the writer ran"
cli verify
expect_rc "verify afterwards" 0
finish
