#!/bin/bash
# Memory modes at restore, working sets, and paging failures that must never hang.
. "$(dirname "$0")/lib.sh"
require_kvm
export SNAPVM_STORE="$TMP/store"
WHERE="$BUILD/tests/tools/store_page_where"

run_guest 'touch 2000 5\ntouch 4000 9\nexit 0\n' --cmdline heap=32M
ref1=$(sed -n 2p <<<"$OUT")
ref2=$(sed -n 3p <<<"$OUT")
snapshot_fn 32M "snapshot"

# json FIELD: a number from invoke --json's line in $J
json() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" <<<"$J"; }

# The first lazy restore records the working set of its request.
J=$(timeout 60 "$SNAPVM" invoke --json --memory lazy fn touch 2000 5)
expect_eq "lazy: the reply" "$(sed 's/.*"reply": "\([^"]*\)".*/\1/' <<<"$J")" "$ref1"
lazy_faults=$(json faults)
ws=$("$SNAPVM" store ls --json | sed -n 's/.*"workset_pages": \([0-9]*\).*/\1/p')
[ "${ws:-0}" -gt 100 ] && pass "the first lazy invoke stored a working set ($ws pages)" ||
	fail "working set after the first invoke: '$ws'"

for mode in eager lazy prefetch mmap; do
	J=$(timeout 60 "$SNAPVM" invoke --json --memory $mode fn touch 2000 5)
	expect_eq "$mode: the reply" "$(sed 's/.*"reply": "\([^"]*\)".*/\1/' <<<"$J")" "$ref1"
	[ $mode = prefetch ] && prefetch_faults=$(json faults) prefetched=$(json pages_prefetched)
	[ $mode = eager ] && expect_eq "eager: no faults" "$(json faults)" 0
done
[ "${prefetched:-0}" -gt 100 ] && pass "prefetch installed $prefetched pages ahead" ||
	fail "prefetch installed '$prefetched' pages"
[ "$prefetch_faults" -lt $((lazy_faults / 2)) ] &&
	pass "the working set cuts faults: $lazy_faults lazy, $prefetch_faults with prefetch" ||
	fail "prefetch faulted $prefetch_faults times, lazy $lazy_faults"
expect_eq "a request outside the working set, lazily" \
	"$(timeout 60 "$SNAPVM" invoke --memory lazy fn touch 4000 9)" "$ref2"

# restore --record-ws replaces the working set; the clone answers meanwhile.
out=$(printf 'touch 100 1\nexit 0\n' | timeout 60 "$SNAPVM" restore fn --memory lazy --record-ws)
[[ "$out" =~ ^OK ]] && pass "restore --record-ws" || fail "restore --record-ws: '$out'"
ws2=$("$SNAPVM" store ls --json | sed -n 's/.*"workset_pages": \([0-9]*\).*/\1/p')
[ "${ws2:-0}" -gt 0 ] && [ "$ws2" != "$ws" ] && pass "the new working set is stored ($ws2 pages)" ||
	fail "working set after --record-ws: '$ws2' (was $ws)"

# Two vCPUs faulting at the same time.
"$SNAPVM" run --kernel "$GUEST" --cmdline heap=32M --cpus 2 --snapshot-on-ready smp </dev/null >/dev/null 2>&1
J=$(timeout 60 "$SNAPVM" invoke --json --memory lazy smp touch 4000 9)
expect_eq "2 vCPUs, lazy: the reply" "$(sed 's/.*"reply": "\([^"]*\)".*/\1/' <<<"$J")" "$ref2"

# mmap with the cache on a tmpfs of huge pages: the clone maps its memory 2 MiB at a time.
mkdir "$TMP/huge"
if mount -t tmpfs -o huge=always,size=512M snapvm-test "$TMP/huge" 2>/dev/null; then
	trap 'umount -l "$TMP/huge"; rm -rf "$TMP"' EXIT
	rm -f "$TMP/in" && mkfifo "$TMP/in"
	SNAPVM_MMAP_CACHE="$TMP/huge" timeout 60 "$SNAPVM" restore fn --memory mmap <"$TMP/in" >"$TMP/huge.out" &
	pid=$!
	exec 3>"$TMP/in"
	echo "touch 2000 5" >&3
	for _ in $(seq 100); do [ -s "$TMP/huge.out" ] && break; sleep 0.1; done
	expect_eq "mmap, huge-page cache: the reply" "$(head -1 "$TMP/huge.out")" "$ref1"
	snapvm_pid=$(pgrep -P $pid snapvm || echo $pid)
	pmd=$(awk '/ShmemPmdMapped/ {print $2}' /proc/$snapvm_pid/smaps_rollup)
	[ "${pmd:-0}" -ge 2048 ] && pass "mmap, huge-page cache: $pmd KiB mapped in 2 MiB pages" ||
		fail "mmap, huge-page cache: ShmemPmdMapped '$pmd' KiB"
	echo "exit 0" >&3
	exec 3>&-
	wait $pid
	expect_eq "mmap, huge-page cache: exit code" "$?" 0
else
	echo "skip: mmap with a huge-page cache: cannot mount a tmpfs with huge=always here"
fi

# Paging failures: the clone stops, snapvm exits non-zero with one line; it never hangs.
# broken CASE DAMAGE MODE EXPECT: a store of its own, a snapshot with a working set, the damage
broken() {
	local case=$1 damage=$2 mode=$3 expect=$4 store="$TMP/store-$1" where pack offset length
	# the set-up pages normally, whatever the case's environment says
	SNAPVM_STORE=$store env -u SNAPVM_TEST_PAGER_STOP_AFTER "$SNAPVM" run --kernel "$GUEST" \
		--snapshot-on-ready b </dev/null >/dev/null 2>&1
	SNAPVM_STORE=$store env -u SNAPVM_TEST_PAGER_STOP_AFTER timeout 30 "$SNAPVM" invoke \
		--memory lazy b ping >/dev/null
	where=$("$WHERE" "$store" b ws:3)
	read -r pack offset length _ <<<"$where"
	case $damage in
	flip) printf '\xff' | dd of="$pack" bs=1 seek=$((offset + length - 8)) conv=notrunc status=none ;;
	truncate) truncate -s $((offset + length / 2)) "$pack" ;;
	delete) rm "$pack" ;;
	none) ;;
	esac
	local start=$(date +%s%N)
	SNAPVM_STORE=$store timeout 10 "$SNAPVM" invoke --memory $mode b ping >"$TMP/out" 2>"$TMP/err"
	local rc=$? ms=$((($(date +%s%N) - start) / 1000000))
	[ $rc -ne 0 ] && [ $rc -ne 124 ] && pass "$case: snapvm exits $rc after $ms ms" ||
		fail "$case: exit code $rc (124: it hung)"
	expect_eq "$case: one line" "$(wc -l <"$TMP/err")" 1
	grep -q -- "$expect" "$TMP/err" && pass "$case: says '$expect'" || fail "$case: '$(cat "$TMP/err")'"
	echo "   message: $(cat "$TMP/err")"
}
broken damaged-chunk flip lazy "(page [0-9]* of 'b') in pack"
broken truncated-pack truncate lazy "cannot serve guest page .*: its pack ends before the chunk does"
broken missing-pack delete lazy "(page [0-9]* of 'b') .*its pack is missing"
broken damaged-prefetch flip prefetch "(page [0-9]* of 'b') in pack"
SNAPVM_TEST_PAGER_STOP_AFTER=2 broken dead-pager none lazy "cannot serve guest page .*: the paging thread stopped"

# gc deletes the mmap mode's raw copy of a removed snapshot, and only that.
"$SNAPVM" run --kernel "$GUEST" --snapshot-on-ready keep </dev/null >/dev/null 2>&1
timeout 30 "$SNAPVM" invoke --memory mmap keep ping >/dev/null
ls "$SNAPVM_STORE"/cache/fn-*.raw >/dev/null 2>&1 && pass "mmap made a raw copy of fn" ||
	fail "no raw copy of fn in $SNAPVM_STORE/cache"
"$SNAPVM" rm fn >/dev/null && "$SNAPVM" store gc >"$TMP/gc.out"
expect_eq "gc: fn's raw copy is gone" "$(ls "$SNAPVM_STORE"/cache/fn-*.raw 2>/dev/null)" ""
[ -n "$(ls "$SNAPVM_STORE"/cache/keep-*.raw 2>/dev/null)" ] && pass "gc: keep's raw copy stays" ||
	fail "gc removed the raw copy of a live snapshot"
grep -q "1 raw copies of removed snapshots deleted" "$TMP/gc.out" && pass "gc says so" ||
	fail "gc: '$(cat "$TMP/gc.out")'"
finish
