#!/bin/bash
# Boot once, snapshot, restore clones that carry on exactly where the original was.
. "$(dirname "$0")/lib.sh"
require_kvm
export SNAPVM_STORE="$TMP/store"

# The original, asked the same questions the clones will be asked.
run_guest 'touch 100 7\ntouch 1000 3\ncpus\nexit 0\n' --cmdline heap=32M --cpus 2
expect_eq "reference run" "$RC" 0
ref_touch1=$(sed -n 2p <<<"$OUT")
ref_touch2=$(sed -n 3p <<<"$OUT")

# Snapshot at READY (the serverless pattern); the VM stops after the snapshot.
"$SNAPVM" run --kernel "$GUEST" --cmdline heap=32M --snapshot-on-ready fn </dev/null >"$TMP/out" 2>"$TMP/err"
expect_eq "snapshot on ready: exit code" "$?" 0
expect_eq "snapshot on ready: output" "$(cat "$TMP/out")" READY
"$SNAPVM" ls >"$TMP/ls"
grep -q '^fn ' "$TMP/ls" && pass "ls lists the snapshot" || fail "ls: $(cat "$TMP/ls")"

# Three clones: the same touch replies as the original, three different generation ids.
printf 'touch 100 7\ntouch 1000 3\ngen\nexit 0\n' | timeout 60 "$SNAPVM" restore fn --clones 3 >"$TMP/clones" 2>&1
expect_eq "3 clones: exit code" "$?" 0
for i in 0 1 2; do
	expect_eq "clone $i: touch 100 7" "$(grep "^\[$i\] OK" "$TMP/clones" | sed -n 1p)" "[$i] $ref_touch1"
	expect_eq "clone $i: touch 1000 3" "$(grep "^\[$i\] OK" "$TMP/clones" | sed -n 2p)" "[$i] $ref_touch2"
done
gens=$(grep -o 'GEN [0-9a-f]*' "$TMP/clones" | sort -u | wc -l)
expect_eq "3 clones: 3 different generation ids" "$gens" 3

# The guest's request for batched console output is part of its snapshot.
printf 'ping\nexit 0\n' | timeout 60 "$SNAPVM" -v restore fn >"$TMP/out" 2>"$TMP/err"
expect_eq "restored clone: ping" "$(cat "$TMP/out")" PONG
grep -q "console output waits for the guest's next exit" "$TMP/err" &&
	pass "restored clone: console batching as the original had it" ||
	fail "restored clone: no console batching: $(cat "$TMP/err")"

# snapvm invoke against the snapshot made by --snapshot-on-ready, 20 restores in a row.
ok=0
for i in $(seq 20); do
	reply=$(timeout 30 "$SNAPVM" invoke fn touch 100 7)
	[ "$reply" = "$ref_touch1" ] && ok=$((ok + 1))
done
expect_eq "20 restores in a row answer correctly" "$ok" 20
reply=$(timeout 30 "$SNAPVM" invoke --json fn ping)
[[ "$reply" =~ ^\{\"reply\":\ \"PONG\",\ \"restore_ms\":\ [0-9.]+,\ \"reply_ms\":\ [0-9.]+,\ \"total_ms\":\ [0-9.]+,\ \"faults\":\ [0-9]+.*\}$ ]] &&
	pass "invoke --json" || fail "invoke --json: $reply"

# Two vCPUs: both come back, and share the work as before.
"$SNAPVM" run --kernel "$GUEST" --cmdline heap=32M --cpus 2 --snapshot-on-ready smp </dev/null >/dev/null 2>&1
expect_eq "2-vCPU snapshot" "$?" 0
expect_eq "2-vCPU clone: cpus" "$(timeout 30 "$SNAPVM" invoke smp cpus)" "CPUS 2"
expect_eq "2-vCPU clone: touch" "$(timeout 30 "$SNAPVM" invoke smp touch 1000 3)" "$ref_touch2"

# A snapshot taken while the guest computes in ring 3 resumes and finishes the work.
SPIN=1500000000
run_guest "spin $SPIN\nexit 0\n"
ref_spin=$(sed -n 2p <<<"$OUT")
mkfifo "$TMP/in"
"$SNAPVM" run --kernel "$GUEST" --api-sock "$TMP/api" <"$TMP/in" >"$TMP/spin.out" 2>&1 &
pid=$!
exec 3>"$TMP/in"
for _ in $(seq 100); do grep -q READY "$TMP/spin.out" && break; sleep 0.1; done
echo "time" >&3
for _ in $(seq 100); do grep -q TIME "$TMP/spin.out" && break; sleep 0.1; done
echo "spin $SPIN" >&3
sleep 0.3
"$SNAPVM" snapshot --api-sock "$TMP/api" busy >"$TMP/snap.out" 2>&1
expect_eq "snapshot through the API socket" "$?" 0
grep -q '^snapshot busy state_bytes=' "$TMP/snap.out" && pass "snapshot prints its figures" ||
	fail "snapshot output: $(cat "$TMP/snap.out")"
exec 3>&-
wait $pid
expect_eq "the VM stops after the snapshot" "$?" 0
grep -q '^OK' "$TMP/spin.out" && fail "the spin finished before the snapshot: make SPIN bigger" ||
	pass "the snapshot caught the guest mid-spin"
before=$(grep -o 'TIME [0-9]*' "$TMP/spin.out" | cut -d' ' -f2)
printf 'time\n' >"$TMP/req"
out=$(printf 'time\n' | timeout 60 "$SNAPVM" restore busy & sleep 0; wait)
# the pending spin replies first, then the time request
spin_reply=$(sed -n 1p <<<"$out")
after=$(sed -n 2p <<<"$out" | cut -d' ' -f2)
expect_eq "the clone finishes the spin with the right result" "$spin_reply" "$ref_spin"
[ -n "$after" ] && [ "$after" -ge "$before" ] && pass "monotonic time goes on ($before -> $after ns)" ||
	fail "monotonic time went back: $before -> '$after'"

# --clock-realtime: the guest's wall time catches up with the host's.
sleep 2
now=$(date +%s%N)
plain=$(timeout 30 "$SNAPVM" invoke fn walltime | cut -d' ' -f2)
lag_plain=$(((now - plain) / 1000000))
[ "$lag_plain" -gt 1500 ] && pass "without --clock-realtime the guest's wall time stayed at the snapshot ($lag_plain ms behind)" ||
	fail "wall time without --clock-realtime is only $lag_plain ms behind"
# the clone reads its clock between these two host readings, however long
# the restore takes (seconds on the nested platform); 1 s of slack each side
host_before=$(date +%s%N)
real=$(timeout 30 "$SNAPVM" invoke --clock-realtime fn walltime | cut -d' ' -f2)
host_after=$(date +%s%N)
early=$(((host_before - real) / 1000000)) late=$(((real - host_after) / 1000000))
[ "$early" -lt 1000 ] && [ "$late" -lt 1000 ] &&
	pass "with --clock-realtime the guest's wall time is the host's (within the invoke's $(((host_after - host_before) / 1000000)) ms)" ||
	fail "wall time with --clock-realtime is off: $early ms before the invoke began, $late ms after it ended"

# rm
"$SNAPVM" rm smp
expect_eq "rm" "$?" 0
"$SNAPVM" ls | grep -q '^smp ' && fail "smp still listed after rm" || pass "rm removes it"
finish
