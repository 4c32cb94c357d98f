#!/bin/bash
# seccomp: every thread of a running VM carries its filters; a vCPU thread's
# forbidden system call (made on purpose by the test builds' hook
# SNAPVM_TEST_VCPU_SYSCALL) stops snapvm with a line naming it in "on" mode,
# runs in "log" mode, and is not filtered at all in "off" mode.
. "$(dirname "$0")/lib.sh" "$@"
require_kvm

# getsid: harmless, and in no list (getppid is the sanitizers' runtime's)
FORBIDDEN=getsid NR=124

# on (the default): status 159 and one line naming the thread and the call
SNAPVM_TEST_VCPU_SYSCALL=$FORBIDDEN run_guest 'ping\n' --cmdline heap=8M
expect_eq "on: exit status" "$RC" 159
expect_eq "on: the line" "$(grep -c "seccomp: the vCPU thread made the system call $FORBIDDEN ($NR)" <<<"$ERR")" 1
expect_eq "on: one line on stderr" "$(wc -l <<<"$ERR")" 1

# log: the call runs (the hook prints what it returned) and the guest answers
SNAPVM_TEST_VCPU_SYSCALL=$FORBIDDEN run_guest 'ping\nexit 0\n' --cmdline heap=8M --seccomp log
expect_eq "log: exit status" "$RC" 0
expect_eq "log: the guest answers" "$(sed -n 2p <<<"$OUT")" PONG
expect_eq "log: the call ran" "$(grep -c "test hook: system call $FORBIDDEN returned [0-9]" <<<"$ERR")" 1
# the kernel's audit line, where this host lets us read its log: kauditd
# prints it on its own time, so wait for this process's line
pid=$(sed -n 's/.*test hook: system call .* (pid \([0-9]*\))$/\1/p' <<<"$ERR")
if dmesg >/dev/null 2>&1; then
	logged=0
	for _ in $(seq 200); do
		dmesg | grep -q "type=1326.* pid=$pid .*syscall=$NR " && logged=1 && break
		sleep 0.05
	done
	expect_eq "log: the kernel logged it" "$logged" 1
else
	echo "note: the kernel log is not readable here: the audit line is not checked"
fi

# off: no filter, so no message
SNAPVM_TEST_VCPU_SYSCALL=$FORBIDDEN run_guest 'ping\nexit 0\n' --cmdline heap=8M --seccomp off
expect_eq "off: exit status" "$RC" 0
expect_eq "off: no seccomp message" "$(grep -c seccomp <<<"$ERR")" 0

# Each thread of a running VM, by name: the main thread and each vCPU carry
# the start-up filter plus their own (Seccomp_filters counts them).
coproc VM { exec "$SNAPVM" run --kernel "$GUEST" --cmdline heap=8M --cpus 2 2>"$TMP/vm.err"; }
vm_pid=$VM_PID # bash unsets VM_PID once the coprocess is reaped
exec {from}<&"${VM[0]}" {to}>&"${VM[1]}"
IFS= read -r -t 60 line <&$from
expect_eq "a running VM: READY" "$line" READY
echo ping >&$to
IFS= read -r -t 60 line <&$from
expect_eq "a running VM: PONG" "$line" PONG
modes=""
for status in /proc/"$vm_pid"/task/*/status; do
	modes="$modes $(awk '/^Seccomp:/ { m = $2 } /^Seccomp_filters:/ { f = $2 } END { print m "/" f }' "$status")"
done
# mode 2 is "filter"; the main thread: start-up + loop; each vCPU: start-up + its own
expect_eq "a running VM: every thread filtered" "$(tr ' ' '\n' <<<"$modes" | grep -c .)" \
	"$(tr ' ' '\n' <<<"$modes" | grep -c '^2/2$')"
expect_eq "a running VM: at least the main thread and 2 vCPUs" \
	"$(tr ' ' '\n' <<<"$modes" | grep -c '^2/2$' | awk '{ print ($1 >= 3) }')" 1
echo "exit 0" >&$to
wait "$vm_pid"
expect_eq "a running VM: exit status" "$?" 0
exec {from}<&- {to}>&-

# a bad mode: one usage line, exit 2, for each command that takes it
for cmd in "run --kernel $GUEST" "restore x" "invoke x ping" "serve"; do
	# shellcheck disable=SC2086
	"$SNAPVM" $cmd --seccomp maybe >/dev/null 2>"$TMP/err"
	expect_eq "${cmd%% *} --seccomp maybe: exit 2" "$?" 2
	expect_eq "${cmd%% *} --seccomp maybe: the line" \
		"$(grep -c "'maybe' is not on, log or off" "$TMP/err")" 1
done
finish
