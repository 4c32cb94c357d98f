#!/bin/bash
# snapvm serve through real HTTP clients (curl) on a Unix socket: every endpoint, every
# error case, 200 concurrent invocations under --max-clones (20 on the nested
# platform: still more than the clones allowed), SIGTERM under load.
. "$(dirname "$0")/lib.sh"
require_kvm
command -v curl >/dev/null || skip "curl is not installed"
STORE="$TMP/store"
SOCK="$TMP/api.sock"

"$SNAPVM" run --kernel "$GUEST" --cmdline heap=8M --store "$STORE" --snapshot-on-ready fn \
	</dev/null >/dev/null 2>&1
expect_eq "snapshot fn" "$?" 0

# api METHOD PATH [BODY]: sets CODE (HTTP status) and BODY (the reply).
api() {
	local data=()
	[ $# -ge 3 ] && data=(--data-binary "$3")
	CODE=$(curl -s --path-as-is --max-time 60 --unix-socket "$SOCK" -o "$TMP/body" -w "%{http_code}" \
		-X "$1" "${data[@]}" "http://snapvm$2")
	BODY=$(cat "$TMP/body")
}

# field NAME: a string or number field of $BODY.
# The daemon's bodies are flat, compact JSON objects (jansson), so a pattern
# finds a field; a python per field cost seconds on the nested platform.
# A string comes back without its quotes (escapes as they are).
field() {
	local v
	v=$(grep -oE "\"$1\":(\"([^\"\\]|\\\\.)*\"|[^,}]*)" <<<"$BODY" | head -n 1)
	v=${v#\"$1\":}
	v=${v#\"}
	printf '%s\n' "${v%\"}"
}

# check WHAT METHOD PATH BODY STATUS [CODE]: the status and, for errors, the "code".
check() {
	api "$2" "$3" "$4"
	if [ "$CODE" != "$5" ]; then
		fail "$1: HTTP $CODE, want $5 ($BODY)"
	elif [ -n "${6:-}" ] && [ "$(field code)" != "$6" ]; then
		fail "$1: code '$(field code)', want '$6' ($BODY)"
	elif [ -n "${6:-}" ] && [ -z "$(field error)" ]; then
		fail "$1: no error message ($BODY)"
	else
		pass "$1: $5 ${6:-}"
	fi
}

LOAD=$(scaled 200 20) # concurrent invocations, more than --max-clones 8
# Reference replies, from one booted guest.
for i in $(seq $LOAD); do echo "touch 20 $i"; done >"$TMP/requests"
echo "exit 0" >>"$TMP/requests"
timeout 60 "$SNAPVM" run --kernel "$GUEST" --cmdline heap=8M <"$TMP/requests" >"$TMP/ref.raw" 2>/dev/null
grep '^OK' "$TMP/ref.raw" >"$TMP/ref"
expect_eq "reference replies" "$(wc -l <"$TMP/ref")" $LOAD

start_daemon --max-clones 3 --queue-ms 200

# Snapshots.
check "list snapshots" GET /snapshots "" 200
[[ "$BODY" == *'"name":"fn"'* ]] && pass "fn is listed" || fail "list: $BODY"
check "one snapshot" GET /snapshots/fn "" 200
[ "$(field ram_bytes)" = 134217728 ] && pass "its RAM size" || fail "snapshot: $BODY"
check "unknown snapshot" GET /snapshots/nope "" 404 not_found
check "delete an unknown snapshot" DELETE /snapshots/nope "" 404 not_found
check "a name that climbs" GET /snapshots/.. "" 400 bad_name
check "a name that hides" GET /snapshots/.fn "" 400 bad_name
CODE=$(curl -s --path-as-is --unix-socket "$SOCK" -o /dev/null -w '%{http_code}' \
	http://snapvm/snapshots/../../etc/passwd)
expect_eq "a path that climbs" "$CODE" 404
check "an escaped slash in a name" GET "/snapshots/..%2F..%2Fetc" "" 404 not_found
check "unknown endpoint" GET /nothing "" 404 not_found
check "wrong method" PUT /snapshots "" 405 method_not_allowed
ALLOW=$(curl -s -D - -o /dev/null --unix-socket "$SOCK" -X PATCH http://snapvm/snapshots/fn |
	tr -d '\r' | sed -n 's/^Allow: //p')
expect_eq "the Allow header" "$ALLOW" "GET, DELETE"

# Invocations.
check "invoke" POST /snapshots/fn/invoke '{"request": "touch 20 7"}' 200
expect_eq "its reply" "$(field reply)" "$(sed -n 7p "$TMP/ref")"
for f in restore_ms total_ms faults clone; do
	[ -n "$(field $f)" ] && pass "invoke gives $f" || fail "invoke without $f: $BODY"
done
check "invoke, lazily" POST /snapshots/fn/invoke '{"request": "touch 20 9", "memory": "lazy"}' 200
expect_eq "its reply" "$(field reply)" "$(sed -n 9p "$TMP/ref")"
check "malformed JSON" POST /snapshots/fn/invoke '{"request": "ping"' 400 bad_json
check "not an object" POST /snapshots/fn/invoke '"ping"' 400 bad_json
check "no request" POST /snapshots/fn/invoke '{}' 400 bad_field
check "two lines" POST /snapshots/fn/invoke '{"request": "ping\nping"}' 400 bad_field
check "a bad timeout" POST /snapshots/fn/invoke '{"request": "ping", "timeout_ms": 0}' 400 bad_field
check "an unknown field" POST /snapshots/fn/invoke '{"request": "ping", "x": 1}' 400 bad_field
check "invoke an unknown snapshot" POST /snapshots/nope/invoke '{"request": "ping"}' 404 not_found
check "invoke a bad name" POST '/snapshots/a*b/invoke' '{"request": "ping"}' 400 bad_name
head -c 100000 /dev/zero | tr '\0' ' ' >"$TMP/big"
CODE=$(curl -s --unix-socket "$SOCK" -o "$TMP/body" -w '%{http_code}' --data-binary @"$TMP/big" \
	http://snapvm/snapshots/fn/invoke)
expect_eq "an oversized body" "$CODE $(grep -o body_too_large "$TMP/body")" "413 body_too_large"
CODE=$(curl -s --unix-socket "$SOCK" -o "$TMP/body" -w '%{http_code}' -H 'Transfer-Encoding: chunked' \
	--data-binary @"$TMP/big" http://snapvm/snapshots/fn/invoke)
expect_eq "an oversized chunked body" "$CODE" 413
check "a guest that crashes" POST /snapshots/fn/invoke '{"request": "triple-fault"}' 502 clone_failed
[[ "$(field error)" == *"triple fault"* ]] && pass "says why: $(field error)" || fail "crash: $BODY"
check "a guest that exits" POST /snapshots/fn/invoke '{"request": "exit 4"}' 502 clone_failed
check "a timeout" POST /snapshots/fn/invoke '{"request": "spin 100000000000", "timeout_ms": 300}' 504 timeout

# A client that leaves: its clone goes at once, the daemon keeps serving.
curl -s --max-time 0.5 --unix-socket "$SOCK" -d '{"request": "spin 100000000000", "timeout_ms": 30000}' \
	http://snapvm/snapshots/fn/invoke >/dev/null
expect_eq "the client gave up" "$?" 28
curl -s --max-time 0.5 --unix-socket "$SOCK" -H 'Content-Length: 5000' -d '{"request": ' \
	http://snapvm/snapshots/fn/invoke >/dev/null
expect_eq "a client that stops in the middle of its body" "$?" 28
# the daemon notices at its next look at the connection: wait for it (5 s at most)
for _ in $(seq 50); do
	api GET /metrics
	grep -q '^snapvm_clients_gone_total 1$' "$TMP/body" &&
		grep -q '^snapvm_live_clones{kind="invoke"} 0$' "$TMP/body" && break
	sleep 0.1
done
check "metrics" GET /metrics "" 200
grep -q '^snapvm_clients_gone_total 1$' "$TMP/body" && pass "the client that left is counted" ||
	fail "clients gone: $(grep clients_gone_total "$TMP/body")"
grep -q '^snapvm_live_clones{kind="invoke"} 0$' "$TMP/body" && pass "its clone is gone" ||
	fail "live: $(grep live_clones "$TMP/body")"
for m in 'snapvm_invocations_total{outcome="ok"} 2' 'snapvm_invocations_total{outcome="timeout"} 1' \
	'snapvm_restore_seconds_count 2' 'snapvm_invoke_seconds_bucket{le="+Inf"}' \
	'snapvm_faults_served_total' 'snapvm_store_bytes'; do
	grep -qF "$m" "$TMP/body" && pass "metric: $m" || fail "no '$m' in /metrics"
done

# Clones that stay up, and the slot bound.
check "start a clone" POST /snapshots/fn/clones '' 201
expect_eq "its id" "$(field id)" c1
check "start another" POST /snapshots/fn/clones '{"memory": "lazy"}' 201
check "list clones" GET /clones "" 200
[[ "$BODY" == *'"id":"c1"'*'"id":"c2"'* || "$BODY" == *'"id":"c2"'*'"id":"c1"'* ]] &&
	pass "both are listed" || fail "clones: $BODY"
check "a request to c1" POST /clones/c1/request '{"request": "touch 20 3"}' 200
expect_eq "its reply" "$(field reply)" "$(sed -n 3p "$TMP/ref")"
check "another to c1" POST /clones/c1/request '{"request": "touch 20 4"}' 200
expect_eq "its reply" "$(field reply)" "$(sed -n 4p "$TMP/ref")"
check "c1's state" GET /clones/c1 "" 200
[[ "$BODY" == *'"requests":2'*'"faults":'* ]] && pass "with its paging figures" || fail "c1: $BODY"
check "a third clone fits" POST /snapshots/fn/clones '' 201
check "then all 3 slots are busy" POST /snapshots/fn/invoke '{"request": "ping"}' 429 too_many_clones
RETRY=$(curl -s -D - -o /dev/null --unix-socket "$SOCK" -d '{"request": "ping"}' \
	http://snapvm/snapshots/fn/invoke | tr -d '\r' | sed -n 's/^Retry-After: //p')
expect_eq "429 says when to retry" "$RETRY" 1
check "a clone that exits" POST /clones/c2/request '{"request": "exit 3"}' 502 clone_failed
check "c2 has exited" GET /clones/c2 "" 200
expect_eq "with its code" "$(field exit_code)" 3
check "a request to an exited clone" POST /clones/c2/request '{"request": "ping"}' 409 not_running
check "snapshot a clone" PUT /clones/c1/snapshot '{"name": "fn2"}' 201
check "the new snapshot answers" POST /snapshots/fn2/invoke '{"request": "touch 20 5"}' 200
expect_eq "its reply" "$(field reply)" "$(sed -n 5p "$TMP/ref")"
check "a snapshot name taken" PUT /clones/c1/snapshot '{"name": "fn"}' 409 snapshot_exists
check "a clone request that times out" POST /clones/c3/request \
	'{"request": "spin 100000000000", "timeout_ms": 200}' 504 timeout
check "a bad clone id" GET /clones/c99 "" 404 not_found
for c in c1 c2 c3; do check "delete $c" DELETE /clones/$c "" 200; done
check "deleted" GET /clones/c1 "" 404 not_found
check "delete a snapshot" DELETE /snapshots/fn2 "" 200
check "it is gone" GET /snapshots/fn2 "" 404 not_found

# Booted VMs.
check "boot a VM" POST /vms "{\"kernel\": \"$GUEST\", \"cmdline\": \"heap=8M\", \"mem\": \"128M\"}" 201
expect_eq "its id" "$(field id)" v1
check "a request to v1" POST /vms/v1/request '{"request": "touch 20 11"}' 200
expect_eq "its reply" "$(field reply)" "$(sed -n 11p "$TMP/ref")"
check "snapshot v1" PUT /vms/v1/snapshot '{"name": "booted"}' 201
[ -n "$(field memory_bytes)" ] && pass "with its figures" || fail "snapshot: $BODY"
check "the VM goes on" POST /vms/v1/request '{"request": "ping"}' 200
check "its snapshot answers" POST /snapshots/booted/invoke '{"request": "touch 20 12"}' 200
expect_eq "its reply" "$(field reply)" "$(sed -n 12p "$TMP/ref")"
check "bad run options" POST /vms "{\"kernel\": \"$GUEST\", \"mem\": \"lots\"}" 400 bad_vm_options
[[ "$(field error)" == *"--mem"* ]] && pass "says which: $(field error)" || fail "$BODY"
check "a missing kernel file" POST /vms '{"kernel": "/nonexistent"}' 400 bad_vm_options
truncate -s 1M "$TMP/rate.img"
check "a bad rate limit" POST /vms "{\"kernel\": \"$GUEST\", \"disk\": [\"$TMP/rate.img,bw=fast\"]}" \
	400 bad_vm_options
[[ "$(field error)" == *"bw=fast"* ]] && pass "says which: $(field error)" || fail "$BODY"
check "a VM with rate limits" POST /vms \
	"{\"kernel\": \"$GUEST\", \"disk\": [\"$TMP/rate.img,bw=1M,iops=100\"], \"net\": [\"user,pps=100\"]}" 201
rate_vm=$(field id)
check "it reads through them" POST "/vms/$rate_vm/request" '{"request": "blk read 0 256"}' 200
[[ "$(field reply)" == OK\ * ]] && pass "its reply: $(field reply)" || fail "$BODY"
check "no kernel" POST /vms '{"cmdline": "x"}' 400 bad_field
check "list VMs" GET /vms "" 200
check "delete v1" DELETE /vms/v1 "" 200
expect_eq "it stopped cleanly" "$(field exit_code)" 0
check "delete the rate-limited VM" DELETE "/vms/$rate_vm" "" 200
check "delete booted" DELETE /snapshots/booted "" 200

# A snapshot with a disk keeps no path: invoke and clone bodies give the file ("disk").
truncate -s 1M "$TMP/d.img"
"$SNAPVM" run --kernel "$GUEST" --cmdline heap=8M --disk "$TMP/d.img" --store "$STORE" \
	--snapshot-on-ready dsk </dev/null >/dev/null 2>&1
expect_eq "snapshot dsk, with a disk" "$?" 0
check "invoke dsk with its disk" POST /snapshots/dsk/invoke \
	"{\"request\": \"blk read 0 8\", \"disk\": [\"$TMP/d.img\"]}" 200
disk_reply=$(field reply)
[[ "$disk_reply" =~ ^OK\ [0-9a-f]{16}$ ]] && pass "it reads the disk: $disk_reply" || fail "$BODY"
check "invoke dsk without its disk" POST /snapshots/dsk/invoke '{"request": "blk read 0 8"}' \
	400 bad_vm_options
[[ "$(field error)" == *"give --disk PATH"* ]] && pass "says why: $(field error)" || fail "$BODY"
check "a clone of dsk without its disk" POST /snapshots/dsk/clones "" 400 bad_vm_options
[[ "$(field error)" == *"give --disk PATH"* ]] && pass "says why: $(field error)" || fail "$BODY"
check "a run option restore does not take" POST /snapshots/dsk/clones \
	"{\"disk\": [\"$TMP/d.img\"], \"mem\": \"256M\"}" 400 bad_field
check "a clone of dsk with its disk" POST /snapshots/dsk/clones "{\"disk\": [\"$TMP/d.img\"]}" 201
disk_clone=$(field id)
check "the clone reads the disk" POST "/clones/$disk_clone/request" '{"request": "blk read 0 8"}' 200
expect_eq "the same bytes" "$(field reply)" "$disk_reply"
check "delete the clone of dsk" DELETE "/clones/$disk_clone" "" 200
check "delete dsk" DELETE /snapshots/dsk "" 200
stop_daemon
expect_eq "SIGTERM when idle: exit 0" "$RC" 0
[ ! -e "$SOCK" ] && pass "the socket is removed" || fail "the socket is left"

# LOAD concurrent invocations, at most 8 clones at once: every reply right.
start_daemon --max-clones 8 --queue-ms 600000
invoke_concurrently "$SOCK" "$LOAD" "$TMP/out"
expect_eq "$LOAD concurrent invocations" "$?" 0
right=0
for i in $(seq $LOAD); do
	BODY=$(cat "$TMP/out/$i" 2>/dev/null)
	[ "$(field reply)" = "$(sed -n ${i}p "$TMP/ref")" ] && right=$((right + 1))
done
expect_eq "replies right" "$right" $LOAD
check "metrics after the load" GET /metrics "" 200
grep -q "^snapvm_invocations_total{outcome=\"ok\"} $LOAD\$" "$TMP/body" && pass "$LOAD counted" ||
	fail "$(grep invocations_total "$TMP/body")"
grep -q '^snapvm_max_clones 8$' "$TMP/body" && pass "max_clones 8" || fail "max_clones"

# SIGTERM during load: running invocations finish, the rest get 503 or find no socket.
sed -i 's/touch 20 \([0-9]*\)/spin 3000000\1/' "$TMP/curl.cfg"
rm -f "$TMP"/out/*
timeout 600 curl -s --no-progress-meter -Z --parallel-max $LOAD -K "$TMP/curl.cfg" &
CURL=$!
# the load is on once the daemon has started clones (a minute at most: a hang guard)
for _ in $(seq 600); do
	CHILDREN=$(pgrep -P "$DAEMON" | tr '\n' ' ')
	[ -n "$CHILDREN" ] && break
	sleep 0.1
done
[ -n "$CHILDREN" ] && pass "clones running under load: $(wc -w <<<"$CHILDREN")" || fail "no clones under load"
stop_daemon
expect_eq "SIGTERM under load: exit 0" "$RC" 0
wait $CURL
ok=$(grep -l '"reply":"OK' "$TMP"/out/* 2>/dev/null | wc -l)
busy=$(grep -l '"code":"shutting_down"' "$TMP"/out/* 2>/dev/null | wc -l)
[ "$ok" -gt 0 ] && pass "running invocations finished: $ok" || fail "none finished"
[ "$busy" -gt 0 ] && pass "waiting ones were told 503: $busy" || fail "no 503"
other=$(grep -L -e '"reply":"OK' -e shutting_down "$TMP"/out/* 2>/dev/null)
expect_eq "no other outcome" "$(head -c 300 $other </dev/null)" ""
left=""
for pid in $CHILDREN; do kill -0 "$pid" 2>/dev/null && left="$left $pid"; done
expect_eq "no clone left" "$left" ""
expect_eq "no process has the store mapped" \
	"$(grep -l "$STORE" /proc/[0-9]*/maps 2>/dev/null | wc -l)" 0
expect_eq "no run directory left" "$(ls -d "$TMP"/snapvm-serve.* 2>/dev/null)" ""
[ ! -e "$SOCK" ] && pass "the socket is removed" || fail "the socket is left"

# Paging that fails becomes an error reply; the daemon goes on.
SNAPVM_TEST_PAGER_STOP_AFTER=2 start_daemon --memory lazy
check "a paging failure" POST /snapshots/fn/invoke '{"request": "touch 200 1"}' 502 clone_failed
[[ "$(field error)" == *"paging thread stopped"* ]] && pass "says why: $(field error)" || fail "$BODY"
check "the daemon still serves" GET /snapshots "" 200
stop_daemon
expect_eq "exit 0" "$RC" 0

# docs/api.md's example session, as written: each curl line's reply has the documented keys.
start_daemon --max-clones 16
n=0
while IFS= read -r cmd && IFS= read -r want; do
	cmd=${cmd#\$ }
	cmd=${cmd//\/tmp\/snapvm.sock/$SOCK}
	cmd=${cmd//build\/guest\/snapguest.elf/$GUEST}
	got=$(bash -c "$cmd" | head -1)
	keys() { python3 -c 'import json,sys; print(sorted(json.loads(sys.argv[1])))' "$1" 2>/dev/null; }
	if [[ "$want" == "#"* ]]; then
		[ "$got" = "$want" ] && n=$((n + 1)) || fail "docs: $cmd: '$got', documented '$want'"
	elif [ -n "$(keys "$got")" ] && [ "$(keys "$got")" = "$(keys "$want")" ]; then
		n=$((n + 1))
	else
		fail "docs: $cmd: '$got', documented '$want'"
	fi
done < <(grep -A1 '^\$ curl ' "$SRC/docs/api.md" | grep -v '^--$')
[ "$n" -ge 20 ] && pass "docs/api.md: $n curl examples give what they show" ||
	fail "docs/api.md: only $n examples checked"
stop_daemon
expect_eq "exit 0" "$RC" 0

# Bad command lines.
"$SNAPVM" serve --max-clones 0 2>"$TMP/err"
expect_eq "--max-clones 0: exit 2" "$?" 2
"$SNAPVM" serve --listen tcp:0.0.0.0:80 --store "$STORE" 2>"$TMP/err"
expect_eq "a non-loopback address: exit 2" "$?" 2
grep -q "127.0.0.1" "$TMP/err" && pass "says so" || fail "$(cat "$TMP/err")"
"$SNAPVM" serve --help | grep -q -- --max-clones && pass "--help" || fail "--help"
finish
