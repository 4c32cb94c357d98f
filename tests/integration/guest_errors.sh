#!/bin/bash
# What the guest can do wrong ends snapvm with one line naming the cause and RIP.
. "$(dirname "$0")/lib.sh"
require_kvm

run_guest 'fault\n'
expect_eq "guest exception: exit code" "$RC" 1
[[ "$ERR" =~ ^snapvm:\ error:\ guest\ panic:\ invalid\ opcode\ \(vector\ 6\)\ at\ RIP\ 0x[0-9a-f]+$ ]] &&
	pass "guest exception: message" || fail "guest exception: message '$ERR'"

run_guest 'triple-fault\n'
expect_eq "triple fault: exit code" "$RC" 1
[[ "$ERR" =~ triple\ fault\ \(KVM_EXIT_SHUTDOWN\)\ at\ RIP\ 0x[0-9a-f]+$ ]] &&
	pass "triple fault: message" || fail "triple fault: message '$ERR'"
expect_eq "triple fault: one line" "$(wc -l <<<"$ERR")" 1

# An idle guest uses no CPU: it halts until input arrives.
mkfifo "$TMP/in"
"$SNAPVM" run --kernel "$GUEST" <"$TMP/in" >"$TMP/idle.out" 2>&1 &
pid=$!
exec 3>"$TMP/in"
for _ in $(seq 100); do grep -q READY "$TMP/idle.out" && break; sleep 0.1; done
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
before=$(ticks)
sleep 1
after=$(ticks)
echo "exit 5" >&3
exec 3>&-
wait $pid
expect_eq "idle guest: exit code" "$?" 5
used=$((after - before))
# 100 ticks = one CPU for the whole second; a spinning guest would use ~100
[ "$used" -le 10 ] && pass "idle guest used $used ticks in 1 s" ||
	fail "idle guest used $used of 100 ticks in 1 s"

# SIGTERM ends a running VM with the shell's convention, 128 + 15.
"$SNAPVM" run --kernel "$GUEST" <"$TMP/in" >/dev/null 2>&1 &
pid=$!
exec 3>"$TMP/in"
sleep 0.5
kill -TERM $pid
wait $pid
expect_eq "SIGTERM: exit code" "$?" 143
exec 3>&-
finish
