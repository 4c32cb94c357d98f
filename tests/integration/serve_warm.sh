#!/bin/bash
# serve --warm: a warm invocation answers as a cold one and is counted as a
# hit; a warm process killed while it waits, a snapshot replaced or deleted
# under an idle one, a body with options of its own: still right answers;
# shutdown ends them and their jails. With --jail (root): the same through
# jailed warm processes, and a warm jailed process sees what a cold one does.
# Every wait is for an event (a metric, a process), never a time window.
. "$(dirname "$0")/lib.sh"
require_kvm
command -v curl >/dev/null || skip "curl is not installed"
STORE="$TMP/store"
SOCK="$TMP/api.sock"

snapshot() { # snapshot NAME ARGS...: the test guest at READY
	"$SNAPVM" run --kernel "$GUEST" --cmdline heap=8M --store "$STORE" "${@:2}" \
		--snapshot-on-ready "$1" </dev/null >/dev/null 2>&1
}
snapshot fn
expect_eq "snapshot fn" "$?" 0
ref=$(timeout 30 "$SNAPVM" invoke --store "$STORE" fn touch 20 7)

invoke() { # invoke BODY: sets CODE and REPLY (the "reply" field)
	CODE=$(curl -s --max-time 60 --unix-socket "$SOCK" -o "$TMP/body" -w "%{http_code}" \
		--data-binary "$1" http://snapvm/snapshots/fn/invoke)
	REPLY=$(grep -oE '"reply":"[^"]*"' "$TMP/body" | cut -d'"' -f4)
}

metric() { # metric NAME: its value in GET /metrics
	curl -s --max-time 30 --unix-socket "$SOCK" http://snapvm/metrics |
		awk -v n="$1" '$1 == n { print $2 }'
}

wait_idle() { # wait_idle N: until N warm processes wait
	for _ in $(seq 600); do
		[ "$(metric snapvm_warm_idle)" = "$1" ] && return 0
		sleep 0.05
	done
	fail "warm processes waiting: $(metric snapvm_warm_idle), want $1"
}

# The warm processes of the daemon (its children started with --warm).
warm_pids() { pgrep -P "$DAEMON" -f -- '--warm' || true; }

checks() { # checks WHAT: one daemon's round (started by the caller)
	local what=$1 hits pid
	invoke '{"request": "touch 20 7"}'
	expect_eq "$what: the first invocation (cold)" "$CODE:$REPLY" "200:$ref"
	expect_eq "$what: it was a miss" "$(metric snapvm_warm_misses_total)" 1
	wait_idle 1
	invoke '{"request": "touch 20 7"}'
	expect_eq "$what: a warm invocation answers as a cold one" "$CODE:$REPLY" "200:$ref"
	expect_eq "$what: the warm process was used" "$(metric snapvm_warm_hits_total)" 1
	wait_idle 1 # refilled after use

	# a body with options of its own starts its own process
	invoke '{"request": "touch 20 7", "memory": "eager"}'
	expect_eq "$what: memory in the body: answered" "$CODE:$REPLY" "200:$ref"
	expect_eq "$what: memory in the body: no warm process taken" \
		"$(metric snapvm_warm_hits_total)" 1

	# a warm process killed while it waits: the next invocation is still answered
	pid=$(warm_pids | head -n 1)
	[ -n "$pid" ] && kill -KILL "$pid"
	wait_idle 0
	invoke '{"request": "touch 20 7"}'
	expect_eq "$what: after a warm process was killed" "$CODE:$REPLY" "200:$ref"
	wait_idle 1

	# the snapshot replaced under an idle warm process: it restores the new one
	hits=$(metric snapvm_warm_hits_total)
	"$SNAPVM" rm --store "$STORE" fn >/dev/null 2>&1
	snapshot fn --cpus 2
	invoke '{"request": "cpus"}'
	expect_eq "$what: a replaced snapshot is restored as it is now" "$CODE:$REPLY" "200:CPUS 2"
	expect_eq "$what: by a warm process" "$(metric snapvm_warm_hits_total)" $((hits + 1))
	"$SNAPVM" rm --store "$STORE" fn >/dev/null 2>&1
	snapshot fn
	wait_idle 1

	# deleting the snapshot ends its idle warm processes
	curl -s --max-time 30 --unix-socket "$SOCK" -X DELETE http://snapvm/snapshots/fn >/dev/null
	wait_idle 0
	invoke '{"request": "ping"}'
	expect_eq "$what: a deleted snapshot" "$CODE" 404
	snapshot fn
	invoke '{"request": "touch 20 7"}'
	expect_eq "$what: snapshotted again" "$CODE:$REPLY" "200:$ref"
	wait_idle 1
	pid=$(warm_pids | head -n 1)

	stop_daemon
	expect_eq "$what: exit 0 on SIGTERM" "$RC" 0
	[ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && pass "$what: the warm process ended" ||
		fail "$what: warm process '$pid' still runs"
}

start_daemon --warm 1
checks "serve --warm 1"
[ "$(wc -l <"$TMP/serve.err")" = 0 ] && pass "no error logged" ||
	fail "serve said: $(cat "$TMP/serve.err")"

"$SNAPVM" serve --warm 65 --store "$STORE" >/dev/null 2>"$TMP/err"
expect_eq "--warm 65 is refused" "$?:$(wc -l <"$TMP/err")" "2:1"
printf '5000 ping\n' | "$SNAPVM" invoke --store "$STORE" --warm fn ping >/dev/null 2>"$TMP/err"
expect_eq "invoke --warm with a REQUEST is refused" "$?:$(wc -l <"$TMP/err")" "2:1"
printf 'ping\n' | "$SNAPVM" invoke --store "$STORE" --warm fn >/dev/null 2>"$TMP/err"
expect_eq "invoke --warm: a line without a timeout is refused" "$?:$(wc -l <"$TMP/err")" "2:1"
"$SNAPVM" invoke --store "$STORE" --warm fn </dev/null >"$TMP/out" 2>"$TMP/err"
expect_eq "invoke --warm: end of input, exit 0 quietly" "$?:$(cat "$TMP/out" "$TMP/err")" "0:"
printf '5000 ping\n' | "$SNAPVM" invoke --store "$STORE" --warm nosuch >/dev/null 2>"$TMP/err"
expect_eq "invoke --warm of a missing snapshot: exit 2, one line" "$?:$(wc -l <"$TMP/err")" "2:1"

[ "$(id -u)" = 0 ] || {
	echo "not root: the jailed checks are skipped"
	finish
	exit
}

# A warm jailed process sees what a cold one sees (the test hook prints it once locked).
JAIL="$TMP/jail"
mkdir -p "$JAIL"
echo visible >"$JAIL/inside"
printf '5000 ping\n' | SNAPVM_TEST_JAIL_PROBE="/etc/passwd:$STORE:/inside" timeout 30 \
	"$SNAPVM" invoke --store "$STORE" --jail "$JAIL" --warm fn >"$TMP/out" 2>"$TMP/err"
expect_eq "jailed invoke --warm answers" "$?:$(cat "$TMP/out")" "0:PONG"
p() { grep -c "^jail-probe: $1" "$TMP/err"; }
expect_eq "warm: a host file is out of reach" "$(p 'open /etc/passwd: No such file')" 1
expect_eq "warm: the store is out of reach" "$(p "open $STORE: No such file")" 1
expect_eq "warm: a file in DIR is /inside" "$(p 'open /inside: ok')" 1
pids=$(sed -n 's/^jail-probe: pids: //p' "$TMP/err")
expect_eq "warm: only the jail's 2 processes are visible" "$(wc -w <<<"$pids")" 2
expect_eq "warm: uid and gid 65534" "$(p '[UG]id:\s65534\s65534\s65534\s65534$')" 2
expect_eq "warm: no capability in any set" "$(p 'Cap[A-Za-z]*:\s0000000000000000$')" 5
"$SNAPVM" -vv invoke --store "$STORE" --jail "$JAIL" --warm fn </dev/null >/dev/null 2>"$TMP/err"
expect_eq "jailed invoke --warm: end of input, exit 0" "$?" 0
# the pivot is off the request's path: made before the request is read
expect_eq "jailed invoke --warm: pivoted ahead" \
	"$(grep -c 'jail: DIR is / already, before the restore' "$TMP/err")" 1

# A jailed warm process looked its snapshot's chunks up and opened their
# packs ahead: a gc that moves those chunks and deletes their pack while it
# waits changes nothing (the open pack keeps its bytes).
GC_STORE="$TMP/gc-store"
for name in old g; do
	"$SNAPVM" run --kernel "$GUEST" --cmdline heap=8M --store "$GC_STORE" \
		--snapshot-on-ready $name </dev/null >/dev/null 2>&1
done
"$SNAPVM" store rm old --store "$GC_STORE" >/dev/null
mkfifo "$TMP/request"
"$SNAPVM" -vv invoke --store "$GC_STORE" --jail "$JAIL" --warm g <"$TMP/request" \
	>"$TMP/out" 2>"$TMP/err" &
warm=$!
exec 3>"$TMP/request"
for _ in $(seq 600); do
	grep -q 'DIR is / already' "$TMP/err" || ! kill -0 $warm 2>/dev/null && break
	sleep 0.05
done
gc=$("$SNAPVM" store gc --store "$GC_STORE" --json)
expect_eq "gc under a warm process: its pack was rewritten" \
	"$(grep -o '"packs_rewritten": [0-9]*' <<<"$gc")" '"packs_rewritten": 1'
echo "5000 ping" >&3
exec 3>&-
wait $warm
expect_eq "gc under a warm process: it answers" "$?:$(cat "$TMP/out")" "0:PONG"

start_daemon --warm 1 --jail "$TMP/jails"
checks "serve --jail --warm 1"
expect_eq "serve --jail --warm: every jail removed" "$(ls "$TMP/jails" | wc -l)" 0
finish
