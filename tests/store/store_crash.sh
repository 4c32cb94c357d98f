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

# kill_runs WHAT KILLS RUN AFTER POINT...: kills runs of one kind (WHAT, for
# messages) until KILLS of them were killed where paused and those kills hit
# every POINT ("after upload_commit"...) at least once. Returns 0 once both
# hold, 1 if they never do. Leaves kills, marks, runs and at (the events
# killed at, one a line) for the caller's summary.
#
# RUN MODE K is a function that does one run: `kill_at MODE K ARGS...`, after
# changing the store first if it needs to. AFTER is a function called after
# each run that ended as it may (":" for none). `events` is the count of a
# whole run (the caller sets it from one); each run that finishes unkilled
# updates it, as the count changes with what is in the store.
kill_runs() {
	local what=$1 want=$2 run=$3 after=$4 pauses=0
	shift 4
	kills=0
	marks=0
	runs=0
	at=
	while [ "$kills" -lt "$want" ] || ! covered "$at" "$@"; do
		# A point that is never reached must fail, not loop for ever.
		if [ "$runs" -ge $((want * 6)) ]; then
			fail "$what: $kills kills in $runs runs; killed at: $(sort -u <<<"$at" | tr '\n' ',')"
			break
		fi
		# Pause runs step through the events in turn, so that every point is
		# hit; mark runs in between land their kills where they happen to.
		if [ $((runs % 2)) = 0 ]; then
			"$run" pause $((pauses % events + 1))
			kill_check pause || break
			pauses=$((pauses + 1))
			if [ -n "$RUN_AT" ]; then
				kills=$((kills + 1))
				at+="$RUN_AT"$'\n'
				echo "$RUN_CMD $RUN_AT" >>"$TMP/paused"
			fi
		else
			"$run" mark $((RANDOM % events + 1))
			kill_check mark || break
			[ "$RUN_RC" = 137 ] && marks=$((marks + 1))
		fi
		[ -n "$RUN_EVENTS" ] && events=$RUN_EVENTS
		"$after"
		runs=$((runs + 1))
	done
	[ "$kills" -ge "$want" ] && covered "$at" "$@"
}

# Writers: each writes three 8 MiB snapshots of family a. Enough pause kills,
# and among them one with the packs written but not yet in the index.
seed=4
writer_run() {
	kill_at "$1" "$2" write "$STORE" a "$seed" 2048 3
}
# Whatever a writer committed, killed later or not, must survive; the next
# writer takes the next three seeds, so that its snapshots are new ones.
writer_done() {
	grep '^committed ' "$TMP/run.out" | cut -d' ' -f2 >>"$TMP/committed"
	seed=$((seed + 3))
}
kill_runs writers "$WRITER_KILLS" writer_run writer_done \
	"after upload_commit" "before upload_append" "before upload_begin"
expect_eq "writers killed mid-write, at every kind of point" "$?" 0
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
# Each gc run has a round of changes before it, so that it has work to do.
gc_run() {
	gc_round
	kill_at "$1" "$2" gc "$STORE"
}
kill_runs gc "$GC_KILLS" gc_run : \
	"after upload_commit" "before remove" "after remove" "before upload_begin"
expect_eq "gc killed mid-run, at every kind of point" "$?" 0
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
