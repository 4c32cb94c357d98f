#!/bin/bash
# The jailer: jailed run/restore/invoke answer as unjailed ones and keep their
# exit codes; inside, no host file, no store path, no other process, no
# capability; concurrent jailed clones share the store; killing the parent
# ends the jail; serve --jail answers 200 concurrent invocations (scaled on
# the nested platform). cgroup limits: jail_cgroup.sh.
. "$(dirname "$0")/lib.sh"
require_kvm
require_jailer
STORE="$TMP/store"
export SNAPVM_STORE="$STORE"

snapshot_fn 8M "snapshot fn"

# The same replies, jailed or not; lazily too (pages faulted after the pivot).
ref=$(timeout 30 "$SNAPVM" invoke fn touch 1000 3)
expect_eq "jailed invoke: same reply" "$(timeout 30 "$SNAPVM" invoke --jail "$JAIL" fn touch 1000 3)" "$ref"
expect_eq "jailed lazy invoke: same reply" \
	"$(timeout 30 "$SNAPVM" invoke --jail "$JAIL" --memory lazy fn touch 1000 3)" "$ref"
printf 'touch 1000 3\nexit 5\n' | timeout 30 "$SNAPVM" restore fn --jail "$JAIL" >"$TMP/out" 2>"$TMP/err"
expect_eq "jailed restore: exit code" "$?" 5
expect_eq "jailed restore: reply" "$(cat "$TMP/out")" "$ref"
printf 'ping\nexit 3\n' | timeout 30 "$SNAPVM" run --kernel "$GUEST" --jail "$JAIL" >"$TMP/out" 2>"$TMP/err"
expect_eq "jailed run: exit code" "$?" 3
expect_eq "jailed run: output" "$(tr '\n' ' ' <"$TMP/out")" "READY PONG "
printf 'ping\nexit 0\n' | timeout 60 "$SNAPVM" restore fn --clones 2 --jail "$TMP/j%i" >"$TMP/out" 2>&1
grep -qE "^snapvm restore: --jail $TMP/j[01]: No such file or directory" "$TMP/out" &&
	pass "jailed clones need their directories" || fail "no jail directory: $(cat "$TMP/out")"
mkdir -p "$TMP/j0" "$TMP/j1"
printf 'ping\nexit 0\n' | timeout 60 "$SNAPVM" restore fn --clones 2 --jail "$TMP/j%i" >"$TMP/out" 2>&1
expect_eq "2 jailed clones: exit code" "$?" 0
expect_eq "2 jailed clones: replies" "$(sort "$TMP/out" | tr '\n' ' ')" "[0] PONG [1] PONG "

# What the jailed process sees (the test hook prints it after the jail is locked).
echo visible >"$JAIL/inside"
probe() {
	SNAPVM_TEST_JAIL_PROBE="$1" timeout 30 "$SNAPVM" invoke --jail "$JAIL" "${@:2}" fn ping \
		>"$TMP/probe.out" 2>"$TMP/probe.err"
	PROBE_RC=$?
}
probe "/etc/passwd:$STORE/index/data.mdb:$STORE:/inside:/proc/1/status"
expect_eq "probed invoke answers" "$PROBE_RC:$(cat "$TMP/probe.out")" "0:PONG"
p() { grep -c "^jail-probe: $1" "$TMP/probe.err"; }
expect_eq "a host file is out of reach" "$(p 'open /etc/passwd: No such file')" 1
expect_eq "the store's index is out of reach" "$(p "open $STORE/index/data.mdb: No such file")" 1
expect_eq "the store is out of reach" "$(p "open $STORE: No such file")" 1
expect_eq "a file in DIR is /inside" "$(p 'open /inside: ok')" 1
# /proc is the jail's own: its init (1) and the VM process, nothing else
pids=$(sed -n 's/^jail-probe: pids: //p' "$TMP/probe.err")
expect_eq "only the jail's 2 processes are visible" "$(wc -w <<<"$pids")" 2
expect_eq "the jail's init is PID 1" "$(cut -d' ' -f1 <<<"$pids")" 1
expect_eq "uid 65534" "$(p 'Uid:\s65534\s65534\s65534\s65534$')" 1
expect_eq "gid 65534" "$(p 'Gid:\s65534\s65534\s65534\s65534$')" 1
expect_eq "no capability in any set" "$(p 'Cap[A-Za-z]*:\s0000000000000000$')" 5
expect_eq "no_new_privs" "$(p 'NoNewPrivs:\s1$')" 1
probe "/" --uid 1234 --gid 4321
expect_eq "--uid 1234" "$(p 'Uid:\s1234\s')" 1
expect_eq "--gid 4321" "$(p 'Gid:\s4321\s')" 1
# Whose VM needs nothing at a host path is jailed before its VM is built
# (pivot before the restore, lock once the snapshot is read); with --memory
# mmap (the raw copy is a host path) it locks just before the start. The
# jail is the same.
timeout 30 "$SNAPVM" -vv invoke --jail "$JAIL" fn ping >/dev/null 2>"$TMP/vv.err"
expect_eq "jailed invoke: pivoted before the restore" \
	"$(grep -c 'jail: DIR is / already, before the restore' "$TMP/vv.err")" 1
probe "/etc/passwd:$STORE:/inside" --memory mmap
expect_eq "mmap: probed invoke answers" "$PROBE_RC:$(cat "$TMP/probe.out")" "0:PONG"
expect_eq "mmap: a host file is out of reach" "$(p 'open /etc/passwd: No such file')" 1
expect_eq "mmap: the store is out of reach" "$(p "open $STORE: No such file")" 1
expect_eq "mmap: a file in DIR is /inside" "$(p 'open /inside: ok')" 1
expect_eq "mmap: uid 65534" "$(p 'Uid:\s65534\s65534\s65534\s65534$')" 1
[ -z "$(find "$JAIL" -mindepth 1 -maxdepth 1 ! -name inside ! -name proc)" ] &&
	pass "the jail leaves nothing in DIR but proc/" || fail "DIR holds $(ls "$JAIL")"

# Bad options: one line, exit 2, nothing started.
bad() {
	timeout 30 "$SNAPVM" invoke "$@" fn ping >"$TMP/out" 2>"$TMP/err"
	RC=$?
	[ "$RC" = 2 ] && [ "$(wc -l <"$TMP/err")" = 1 ] && [ ! -s "$TMP/out" ] &&
		pass "bad: $*" || fail "bad: $*: exit $RC: $(cat "$TMP/err")"
}
bad --jail-mem 64M
bad --jail relative/dir
bad --jail "$TMP/missing"
bad --jail "$JAIL" --uid 0
bad --jail "$JAIL" --jail-cpu 10/100000
# the snapshot is opened before the jail locks, then again by the restore: one line still
timeout 30 "$SNAPVM" invoke --jail "$JAIL" nosuch ping >"$TMP/out" 2>"$TMP/err"
expect_eq "jailed invoke of a missing snapshot: exit 2, one line" \
	"$?:$(wc -l <"$TMP/err")" "2:1"
printf 'ping\n' | timeout 30 "$SNAPVM" run --kernel "$GUEST" --jail "$JAIL" --snapshot-on-ready x \
	>/dev/null 2>"$TMP/err"
expect_eq "run --jail --snapshot-on-ready is refused" "$?" 2
# A limit whose cgroup v2 controller is missing: one line, before anything starts.
cg=$(awk '$9 == "cgroup2" || $8 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
if [ -n "$cg" ] && ! grep -qw memory "$cg/cgroup.controllers" 2>/dev/null; then
	timeout 30 "$SNAPVM" invoke --jail "$JAIL" --jail-mem 64M fn ping >"$TMP/out" 2>"$TMP/err"
	RC=$?
	[ "$RC" = 1 ] && grep -q "needs the cgroup v2 'memory' controller" "$TMP/err" &&
		[ "$(wc -l <"$TMP/err")" = 1 ] && pass "no memory controller: one line" ||
		fail "no memory controller: exit $RC: $(cat "$TMP/err")"
fi

# Jailed clones at once: each its own PID namespace, the store's readers kept apart.
N=$(scaled 8 2)
for i in $(seq $N); do
	mkdir -p "$TMP/p$i"
	timeout 60 "$SNAPVM" invoke --jail "$TMP/p$i" fn touch 1000 3 >"$TMP/par.$i" 2>&1 &
done
wait
ok=0
for i in $(seq $N); do [ "$(cat "$TMP/par.$i")" = "$ref" ] && ok=$((ok + 1)); done
expect_eq "$N jailed invokes at once" "$ok" $N

# SIGTERM reaches the VM through the parent and init (exit 143, as unjailed);
# SIGKILL of the parent ends the jail (no process is left behind).
mkfifo "$TMP/in"
"$SNAPVM" restore fn --jail "$JAIL" <"$TMP/in" >"$TMP/out" 2>&1 &
parent=$!
exec 3>"$TMP/in"
for _ in $(seq 200); do
	init=$(pgrep -P $parent)
	[ -n "$init" ] && vm=$(pgrep -P "$init") && [ -n "$vm" ] && break
	sleep 0.05
done
echo ping >&3
kill -TERM $parent
exec 3>&- # the test guest stops at its next exit: end of input gives it one
timeout 30 tail --pid=$parent -f /dev/null
wait $parent
expect_eq "SIGTERM: the VM's exit code" "$?" 143
"$SNAPVM" restore fn --jail "$JAIL" <"$TMP/in" >"$TMP/out" 2>&1 &
parent=$!
exec 3>"$TMP/in"
init="" vm=""
# the VM process is root until the jail locks, just before the guest runs: wait for that
for _ in $(seq 600); do
	init=$(pgrep -P $parent)
	[ -n "$init" ] && vm=$(pgrep -P "$init") && [ -n "$vm" ] &&
		[ "$(stat -c %U /proc/$vm 2>/dev/null)" = nobody ] && break
	sleep 0.05
done
[ -n "$vm" ] && [ "$(stat -c %U /proc/$vm)" = nobody ] && pass "the VM process runs as nobody" ||
	fail "no VM process as nobody under $parent"
kill -KILL $parent
wait $parent 2>/dev/null
for _ in $(seq 200); do
	kill -0 "$vm" 2>/dev/null || break
	sleep 0.05
done
kill -0 "$vm" 2>/dev/null && fail "the VM process outlives its killed parent" ||
	pass "SIGKILL of the parent ends the jail"
exec 3>&-

# serve --jail: LOAD concurrent invocations, each in its own jail, all removed after.
command -v curl >/dev/null || {
	finish
	exit
}
LOAD=$(scaled 200 20)
SOCK="$TMP/api.sock"
for i in $(seq $LOAD); do echo "touch 20 $i"; done >"$TMP/requests"
echo "exit 0" >>"$TMP/requests"
timeout 60 "$SNAPVM" run --kernel "$GUEST" --cmdline heap=8M <"$TMP/requests" 2>/dev/null |
	grep '^OK' >"$TMP/ref"
TMPDIR=$TMP "$SNAPVM" serve --listen "unix:$SOCK" --max-clones 8 --queue-ms 600000 \
	--jail "$TMP/jails" >"$TMP/serve.out" 2>"$TMP/serve.err" &
DAEMON=$!
for _ in $(seq 200); do
	grep -q "listening" "$TMP/serve.out" 2>/dev/null && break
	sleep 0.05
done
invoke_concurrently "$SOCK" "$LOAD" "$TMP/replies"
expect_eq "serve --jail: $LOAD concurrent invocations" "$?" 0
right=0
for i in $(seq $LOAD); do
	reply=$(grep -o '"reply":"[^"]*"' "$TMP/replies/$i" 2>/dev/null)
	if [ "$reply" = "\"reply\":\"$(sed -n ${i}p "$TMP/ref")\"" ]; then
		right=$((right + 1))
	elif [ -z "${wrong:-}" ]; then
		wrong="request $i: $(cat "$TMP/replies/$i" 2>/dev/null)"
	fi
done
[ "$right" = "$LOAD" ] || echo "the first wrong reply: $wrong" >&2
expect_eq "serve --jail: replies right" "$right" $LOAD
kill -TERM $DAEMON
timeout 60 tail --pid=$DAEMON -f /dev/null
wait $DAEMON
expect_eq "serve --jail: exit 0" "$?" 0
expect_eq "serve --jail: every jail removed" "$(ls "$TMP/jails" | wc -l)" 0
finish
