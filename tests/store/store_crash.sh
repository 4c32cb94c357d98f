#!/bin/bash
# Crash consistency: kill -9 a writer at random moments while it writes
# snapshots, and while gc runs, at least 50 times in all. Afterwards verify
# is clean and every snapshot committed before a kill reads back the same.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib.sh"

WRITER_KILLS=${WRITER_KILLS:-30}
GC_KILLS=${GC_KILLS:-25}
: >"$TMP/committed"

# sleep_random MAX_MS
sleep_random() {
	sleep "$(awk -v r=$RANDOM -v m="$1" 'BEGIN { printf "%.3f", r / 32768 * m / 1000 }')"
}

# run_and_kill MAX_MS CMD...: starts CMD, kills it with SIGKILL after up to MAX_MS;
# returns 0 if the kill landed while it was still running.
run_and_kill() {
	local max=$1
	shift
	"$@" >>"$TMP/run.out" 2>>"$TMP/run.err" &
	local pid=$!
	sleep_random "$max"
	if kill -9 "$pid" 2>/dev/null; then
		wait "$pid" 2>/dev/null
		return 0
	fi
	wait "$pid" 2>/dev/null
	return 1
}

# Writers: each writes three 8 MiB snapshots of family a; about one in three runs survives.
seed=1
kills=0
runs=0
while [ "$kills" -lt "$WRITER_KILLS" ] && [ "$runs" -lt $((WRITER_KILLS * 4)) ]; do
	: >"$TMP/run.out"
	run_and_kill 150 "$TOOL" write "$STORE" a "$seed" 2048 3 && kills=$((kills + 1))
	grep '^committed ' "$TMP/run.out" | cut -d' ' -f2 >>"$TMP/committed"
	seed=$((seed + 3))
	runs=$((runs + 1))
done
expect_eq "writers killed mid-write" "$([ "$kills" -ge "$WRITER_KILLS" ] && echo yes)" yes
echo "   $kills kills in $runs runs, $(wc -l <"$TMP/committed") snapshots committed"

cli verify
expect_rc "verify after killed writers" 0
"$TOOL" check "$STORE" >"$TMP/check.out" 2>&1
expect_eq "every snapshot reads back after killed writers" "$?" 0

# gc: each round removes a snapshot and adds one, then runs a gc and kills it at a
# random moment within about as long as an unhindered gc round takes.
gc_round() {
	local victim
	victim=$(shuf -n 1 "$TMP/committed")
	cli rm "$victim"
	[ "$RC" = 0 ] || fail "rm $victim: $ERR"
	grep -vx "$victim" "$TMP/committed" >"$TMP/c2"
	mv "$TMP/c2" "$TMP/committed"
	"$TOOL" write "$STORE" a "$seed" 2048 1 | cut -d' ' -f2 >>"$TMP/committed"
	seed=$((seed + 1))
}

gc_round
start=$(date +%s%N)
cli gc
gc_ms=$(( ($(date +%s%N) - start) / 1000000 + 5 ))
echo "   an unhindered gc takes about $gc_ms ms"
kills=0
runs=0
while [ "$kills" -lt "$GC_KILLS" ] && [ "$runs" -lt $((GC_KILLS * 4)) ]; do
	gc_round
	run_and_kill "$gc_ms" "${STORE_CLI[@]}" gc --store "$STORE" && kills=$((kills + 1))
	runs=$((runs + 1))
done
expect_eq "gc killed mid-run" "$([ "$kills" -ge "$GC_KILLS" ] && echo yes)" yes
echo "   $kills kills in $runs gc runs"

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
