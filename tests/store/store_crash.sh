#!/bin/bash
# Crash consistency: kill -9 a writer while it writes snapshots, and gc while
# it runs, at least 55 times in all, at every point where either changes the
# store. Afterwards verify is clean and every snapshot committed before a
# kill reads back the same.
#
# No timing: store_tool counts the store's backend writes ("events", see
# store_tool.c) and reports event K. A "pause" run stops at event K and is
# killed there, so the kill lands mid-run on any machine however slow; K
# steps through every event of a run (the count of the last whole run), so
# that every point is hit. A "mark" run only reports event K and carries on,
# so its kill lands wherever the process has got to by then (between events,
# in an index commit); those are extra, counted when they land mid-run.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib.sh"

WRITER_KILLS=${WRITER_KILLS:-30}
GC_KILLS=${GC_KILLS:-25}
: >"$TMP/committed"
: >"$TMP/paused"

# A whole run, to count its events; its snapshots count as committed.
"$TOOL" write "$STORE" a 1 2048 3 >"$TMP/run.out" || fail "writing a-1..3"
grep '^committed ' "$TMP/run.out" | cut -d' ' -f2 >>"$TMP/committed"
events=$(sed -n 's/^events //p' "$TMP/run.out")
echo "   a whole writer run passes $events events"
[ "${events:-0}" -gt 0 ] || { fail "store_tool counts no events in a write"; finish; }

# covered LIST EVENT...: whether every EVENT is in LIST (one a line).
covered() {
	local list=$1 e
	shift
	for e in "$@"; do
		grep -qx "$e" <<<"$list" || return 1
	done
}

# Writers: each writes three 8 MiB snapshots of family a. Enough pause kills,
# and among them one with the packs written but not yet in the index.
seed=4
pauses=0
kills=0
marks=0
runs=0
at=
writer_points=("after upload_commit" "before upload_append" "before upload_begin")
while [ "$kills" -lt "$WRITER_KILLS" ] || ! covered "$at" "${writer_points[@]}"; do
	if [ "$runs" -ge $((WRITER_KILLS * 6)) ]; then
		fail "writers: $kills kills in $runs runs; killed at: $(sort -u <<<"$at" | tr '\n' ',')"
		break
	fi
	if [ $((runs % 2)) = 0 ]; then
		kill_at pause $((pauses % events + 1)) write "$STORE" a "$seed" 2048 3
		kill_check pause || break
		pauses=$((pauses + 1))
		if [ -n "$RUN_AT" ]; then
			kills=$((kills + 1))
			at+="$RUN_AT"$'\n'
			echo "write $RUN_AT" >>"$TMP/paused"
		fi
	else
		kill_at mark $((RANDOM % events + 1)) write "$STORE" a "$seed" 2048 3
		kill_check mark || break
		[ "$RUN_RC" = 137 ] && marks=$((marks + 1))
	fi
	[ -n "$RUN_EVENTS" ] && events=$RUN_EVENTS
	grep '^committed ' "$TMP/run.out" | cut -d' ' -f2 >>"$TMP/committed"
	seed=$((seed + 3))
	runs=$((runs + 1))
done
expect_eq "writers killed mid-write, at every kind of point" \
	"$([ "$kills" -ge "$WRITER_KILLS" ] && covered "$at" "${writer_points[@]}" && echo yes)" yes
echo "   $kills kills where paused and $marks more on the run in $runs runs," \
	"$(wc -l <"$TMP/committed") snapshots committed"

cli verify
expect_rc "verify after killed writers" 0
"$TOOL" check "$STORE" >"$TMP/check.out" 2>&1
expect_eq "every snapshot reads back after killed writers" "$?" 0

# gc: each round removes a random snapshot and the last b-* snapshot, and
# writes a new b-* one, a little bigger: its last pages are family pages no
# snapshot had, which land in its pack beside its own. So when the next round
# removes it, that pack holds live chunks beside dead ones and the gc copies
# them: every gc writes a pack, switches the index and deletes packs.
round=0
last_b=
gc_round() {
	local victim
	victim=$(grep -vx "${last_b:-none}" "$TMP/committed" | shuf -n 1)
	for name in $victim $last_b; do
		cli rm "$name"
		[ "$RC" = 0 ] || fail "rm $name: $ERR"
		grep -vx "$name" "$TMP/committed" >"$TMP/c2"
		mv "$TMP/c2" "$TMP/committed"
	done
	round=$((round + 1))
	last_b=$("$TOOL" write "$STORE" b "$seed" $((512 + 16 * round)) 1 | sed -n 's/^committed //p')
	[ -n "$last_b" ] || fail "writing b-$seed"
	echo "$last_b" >>"$TMP/committed"
	seed=$((seed + 1))
}

gc_round
gc_round
"$TOOL" gc "$STORE" >"$TMP/run.out" || fail "a whole gc"
events=$(sed -n 's/^events //p' "$TMP/run.out")
echo "   a whole gc passes $events events: $(grep '^gc ' "$TMP/run.out")"
[ "${events:-0}" -gt 0 ] || { fail "store_tool counts no events in a gc"; finish; }
pauses=0
kills=0
marks=0
runs=0
at=
gc_points=("after upload_commit" "before remove" "after remove" "before upload_begin")
while [ "$kills" -lt "$GC_KILLS" ] || ! covered "$at" "${gc_points[@]}"; do
	if [ "$runs" -ge $((GC_KILLS * 6)) ]; then
		fail "gc: $kills kills in $runs runs; killed at: $(sort -u <<<"$at" | tr '\n' ',')"
		break
	fi
	gc_round
	if [ $((runs % 2)) = 0 ]; then
		kill_at pause $((pauses % events + 1)) gc "$STORE"
		kill_check pause || break
		pauses=$((pauses + 1))
		if [ -n "$RUN_AT" ]; then
			kills=$((kills + 1))
			at+="$RUN_AT"$'\n'
			echo "gc $RUN_AT" >>"$TMP/paused"
		fi
	else
		kill_at mark $((RANDOM % events + 1)) gc "$STORE"
		kill_check mark || break
		[ "$RUN_RC" = 137 ] && marks=$((marks + 1))
	fi
	[ -n "$RUN_EVENTS" ] && events=$RUN_EVENTS
	runs=$((runs + 1))
done
expect_eq "gc killed mid-run, at every kind of point" \
	"$([ "$kills" -ge "$GC_KILLS" ] && covered "$at" "${gc_points[@]}" && echo yes)" yes
echo "   $kills kills where paused and $marks more on the run in $runs gc runs"
echo "   paused and killed at:" $(sort "$TMP/paused" | uniq -c | sed 's/^ *//' | tr '\n' ';')

# A last gc sweeps what the killed ones left; then everything must be whole.
cli gc
expect_rc "gc after the kills" 0
cli verify
expect_rc "verify after killed gcs" 0
[ "$RC" = 0 ] || echo "$OUT" | head -20
"$TOOL" check "$STORE" >"$TMP/check.out" 2>&1
expect_eq "every snapshot reads back after killed gcs" "$?" 0
missing=0
for name in $(cat "$TMP/committed"); do
	cli info "$name"
	[ "$RC" = 0 ] || { missing=$((missing + 1)); echo "   missing: $name: $ERR"; }
done
expect_eq "every committed snapshot is there" "$missing" 0
leftovers=$(find "$STORE/packs" -name '.tmp-*' | wc -l)
expect_eq "no temporary pack files left after gc" "$leftovers" 0
finish
