#!/bin/bash
# Boots the test guest by both entry paths with 1 and 2 vCPUs; checks its
# replies, that replies are the same in every VM, and the exit code.
. "$(dirname "$0")/lib.sh"
require_kvm

REQUESTS='ping\ncpus\ntouch 100 7\nspin 1000\nbogus\nexit 3\n'
reference=""
for boot in elf64 pvh; do
	for cpus in 1 2; do
		what="--boot $boot --cpus $cpus"
		run_guest "$REQUESTS" --mem 128M --cmdline heap=16M --boot "$boot" --cpus "$cpus"
		expect_eq "$what: exit code" "$RC" 3
		expect_eq "$what: line 1" "$(sed -n 1p <<<"$OUT")" READY
		expect_eq "$what: ping" "$(sed -n 2p <<<"$OUT")" PONG
		expect_eq "$what: cpus" "$(sed -n 3p <<<"$OUT")" "CPUS $cpus"
		touch=$(sed -n 4p <<<"$OUT")
		[[ "$touch" =~ ^OK\ [0-9a-f]{16}$ ]] && pass "$what: touch replies" ||
			fail "$what: touch reply '$touch'"
		[ -z "$reference" ] && reference=$touch
		expect_eq "$what: touch is the same as in the first VM" "$touch" "$reference"
		expect_eq "$what: spin" "$(sed -n 5p <<<"$OUT")" "OK 0c861315d1e44e08"
		expect_eq "$what: unknown request" "$(sed -n 6p <<<"$OUT")" "ERR unknown request"
		expect_eq "$what: nothing on stderr" "$ERR" ""
	done
done

# A different seed picks different pages; a different heap size other pages again.
run_guest 'touch 100 8\nexit 0\n' --cmdline heap=16M
other=$(sed -n 2p <<<"$OUT")
[ "$other" != "$reference" ] && pass "another seed gives another checksum" ||
	fail "touch 100 8 equals touch 100 7"

# Without a heap, touch is refused but the guest keeps serving.
run_guest 'touch 1 1\nping\nexit 0\n'
expect_eq "touch without heap" "$(sed -n 2p <<<"$OUT")" "ERR no heap (boot with heap=SIZE)"
expect_eq "ping after an error" "$(sed -n 3p <<<"$OUT")" PONG

# A heap that does not fit: one line from the guest, and a non-zero exit.
run_guest '' --mem 16M --cmdline heap=64M
expect_eq "oversized heap: exit code" "$RC" 1
expect_eq "oversized heap: message" "$OUT" "ERR heap does not fit in guest RAM"

# The guest asks for batched console output (control port 0x60c): snapvm may
# hold its transmit writes until its next exit, and the guest makes one before
# it halts. So a reply must reach the console while the guest waits for more.
mkfifo "$TMP/in"
timeout 60 "$SNAPVM" -v run --kernel "$GUEST" <"$TMP/in" >"$TMP/out" 2>"$TMP/err" &
pid=$!
exec 7>"$TMP/in"
echo ping >&7
for _ in $(seq 200); do
	[ "$(sed -n 2p "$TMP/out")" = PONG ] && break
	sleep 0.05
done
expect_eq "batched console: the reply comes while the guest waits" "$(sed -n 2p "$TMP/out")" PONG
echo "exit 0" >&7
exec 7>&-
wait "$pid"
expect_eq "batched console: exit code" "$?" 0
grep -q "console output waits for the guest's next exit" "$TMP/err" &&
	pass "batched console: snapvm took the guest's request" ||
	fail "batched console: not in effect: $(cat "$TMP/err")"

# Console to a file.
run_guest 'exit 0\n' --console "file:$TMP/console.txt"
expect_eq "file console: exit code" "$RC" 0
expect_eq "file console: contents" "$(cat "$TMP/console.txt")" READY
finish
