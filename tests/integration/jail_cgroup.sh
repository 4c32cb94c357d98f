#!/bin/bash
# The jail's cgroup v2 limits (--jail-mem, --jail-cpu, --jail-pids): set on a
# leaf the jailed clone runs in, removed after it; a clone whose memory goes
# past --jail-mem is OOM-killed and the parent says so in one line. A warm
# process (invoke --warm) holds its leaf while it waits, and the leaf goes
# when it gets a request or its input is closed. Needs cgroup v2 with the
# memory, cpu and pids controllers: labelled hwvirt, it runs nested where the
# host's are held by cgroup v1 (the L1 mounts cgroup2).
. "$(dirname "$0")/lib.sh"
require_kvm
require_jailer
cg=$(awk '{ for (i = 7; i < NF; i++) if ($i == "-" && $(i + 1) == "cgroup2") print $5 }' \
	/proc/self/mountinfo | head -n 1)
[ -n "$cg" ] || missing "no cgroup v2 mounted"
for c in memory cpu pids; do
	grep -qw $c "$cg/cgroup.controllers" || missing "cgroup v2 at $cg has no $c controller"
done
export SNAPVM_STORE="$TMP/store"

snapshot_fn 32M "snapshot fn (32M heap)"
ref=$(timeout 120 "$SNAPVM" invoke fn touch 100 7)

leaf_procs() { # leaf_procs LEAF: how many processes are in it (cgroupfs files have size 0)
	wc -l <"$1/cgroup.procs" 2>/dev/null || echo 0
}
leaf_wait() { # leaf_wait LEAF: until the jail's init and VM process are in it (or 60 s)
	for _ in $(seq 600); do
		[ "$(leaf_procs "$1")" -ge 2 ] && return
		sleep 0.1
	done
}

# Within its limits the clone answers, and sees its own cgroup's limits.
reply=$(timeout 120 "$SNAPVM" invoke --jail "$JAIL" --jail-mem 512M --jail-cpu 50000/100000 \
	--jail-pids 64 fn touch 100 7 2>"$TMP/err")
expect_eq "limited invoke: same reply" "$reply" "$ref"
[ -z "$(ls "$cg/snapvm" 2>/dev/null | grep '^invoke-')" ] && pass "its cgroup leaf is removed" ||
	fail "leaves left: $(ls "$cg/snapvm")"

# The leaf holds the limits while the clone runs.
mkfifo "$TMP/in"
"$SNAPVM" restore fn --jail "$JAIL" --jail-mem 300M --jail-cpu 20000/100000 --jail-pids 32 \
	<"$TMP/in" >"$TMP/out" 2>&1 &
parent=$!
exec 3>"$TMP/in"
leaf="$cg/snapvm/restore-$parent"
leaf_wait "$leaf"
expect_eq "memory.max" "$(cat "$leaf/memory.max" 2>/dev/null)" $((300 * 1024 * 1024))
expect_eq "cpu.max" "$(cat "$leaf/cpu.max" 2>/dev/null)" "20000 100000"
expect_eq "pids.max" "$(cat "$leaf/pids.max" 2>/dev/null)" 32
procs=$(cat "$leaf/cgroup.procs" 2>/dev/null | sort -un | tr '\n' ' ')
init=$(pgrep -P $parent)
vm=$(pgrep -P "$init")
[ -n "$init" ] && [ -n "$vm" ] && grep -qw "$init" <<<"$procs" && grep -qw "$vm" <<<"$procs" &&
	pass "init and the VM process are in it" || fail "in the leaf: $procs; init $init, VM $vm"
echo "exit 7" >&3
exec 3>&-
timeout 120 tail --pid=$parent -f /dev/null
wait $parent
expect_eq "limited restore: exit code" "$?" 7
[ ! -e "$leaf" ] && pass "the leaf is removed" || fail "the leaf is left: $leaf"

# Past memory.max, the guest's memory paged in lazily: the page the pager
# places is charged to the leaf, so either the OOM killer kills the VM
# process, or (when it has nothing left to reclaim or kill) userfaultfd's copy
# fails with -ENOMEM and the clone stops. Both keep the clone under its limit
# and the parent says which in one line.
timeout -k 10 300 "$SNAPVM" invoke --jail "$JAIL" --jail-mem 16M --memory lazy fn touch 8000 1 \
	>"$TMP/out" 2>"$TMP/err"
RC=$?
{ { [ $RC = 137 ] && grep -q 'the jailed VM was killed: out of memory (--jail-mem 16384 KiB)' "$TMP/err"; } ||
	{ [ $RC = 1 ] && grep -q 'the jailed VM failed at its memory limit (--jail-mem 16384 KiB)' "$TMP/err"; }; } &&
	[ ! -s "$TMP/out" ] && pass "lazy, over --jail-mem: stopped, one line says why" ||
	fail "lazy, over --jail-mem: exit $RC: $(cat "$TMP/out" "$TMP/err")"
# Past memory.max, all of memory loaded before the start (page faults of the
# VM process itself): the OOM killer kills it, the parent says so. (Jail init
# is exempt from the OOM killer; the VM process must not inherit that.)
timeout -k 10 300 "$SNAPVM" invoke --jail "$JAIL" --jail-mem 16M --memory eager fn touch 100 7 \
	>"$TMP/out" 2>"$TMP/err"
RC=$?
expect_eq "eager, over --jail-mem: killed (SIGKILL)" "$RC" 137
expect_eq "eager, over --jail-mem: no reply" "$(cat "$TMP/out")" ""
grep -q 'the jailed VM was killed: out of memory (--jail-mem 16384 KiB)' "$TMP/err" &&
	pass "eager, over --jail-mem: one line says so" || fail "eager: $(cat "$TMP/err")"

# A warm process (serve --warm) holds its leaf while it waits; serve ends an
# idle one by closing its stdin, and the leaf goes with it. One that gets a
# request answers within its limits, and its leaf goes too.
warm() { # warm: a jailed invoke --warm on the fifo $TMP/warm; sets parent and leaf
	rm -f "$TMP/warm"
	mkfifo "$TMP/warm"
	"$SNAPVM" invoke --jail "$JAIL" --jail-pids 64 --jail-mem 512M --warm fn \
		<"$TMP/warm" >"$TMP/out" 2>"$TMP/err" &
	parent=$!
	exec 3>"$TMP/warm"
	leaf="$cg/snapvm/invoke-$parent"
	leaf_wait "$leaf"
	expect_eq "warm: the jail's init and the VM process wait in its leaf" "$(leaf_procs "$leaf")" 2
	expect_eq "warm: its leaf's pids.max while it waits" "$(cat "$leaf/pids.max" 2>/dev/null)" 64
}
warm
exec 3>&-
timeout 120 tail --pid=$parent -f /dev/null
wait $parent
expect_eq "warm, its input closed: exit 0, nothing said" "$?:$(cat "$TMP/out" "$TMP/err")" "0:"
[ ! -e "$leaf" ] && pass "warm, its input closed: the leaf is removed" || fail "leaf left: $leaf"
warm
echo "120000 touch 100 7" >&3
exec 3>&-
timeout 120 tail --pid=$parent -f /dev/null
wait $parent
expect_eq "warm, a request: exit 0" "$?" 0
expect_eq "warm, a request: the same reply" "$(cat "$TMP/out")" "$ref"
[ ! -e "$leaf" ] && pass "warm, a request: the leaf is removed" || fail "leaf left: $leaf"
finish
