#!/bin/bash
# The serverless path with a Linux guest: the project's Linux guest is
# snapshotted at its init's READY (the init writes the ready code), and each
# memory mode restores a clone that answers requests. A 2-vCPU guest's clone
# still runs a loop pinned to each CPU, also with a busy loop on each. A
# clone answers on vsock; 20 clones at once answer alike, each with its own
# generation id; snapvm serve invokes the snapshot; the guest's clock stands
# still while stored, and --clock-realtime sets it to the host's. Needs KVM
# on VT-x/AMD-V (or the nested platform): on PVM Linux does not reach its init.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/linux_lib.sh"
require_hardware_virtualization
linux_images
export SNAPVM_STORE="$TMP/store"
BOUND=${SNAPVM_TEST_BOUND:-120} # seconds for one boot or one invoke, however slow the host
PEER="$BUILD/tests/tools/vsock_peer"

# snapshot NAME ARGS...: boots the Linux guest with --snapshot-on-ready NAME.
snapshot() {
	local name=$1
	shift
	timeout $BOUND "$SNAPVM" run --kernel "$BZIMAGE" --initrd "$INITRAMFS" \
		--snapshot-on-ready "$name" "$@" </dev/null >"$TMP/$name.out" 2>"$TMP/$name.err"
	expect_eq "$name: snapshot at the init's ready code (exit status)" "$?" 0
	expect_eq "$name: READY before the snapshot" "$(tr -d '\r' <"$TMP/$name.out" | grep -cx READY)" 1
	[ -s "$TMP/$name.err" ] && cat "$TMP/$name.err" >&2
}

# invoke NAME REQUEST WANT ARGS...: one clone, one request, its reply.
invoke() {
	local name=$1 request=$2 want=$3 reply
	shift 3
	reply=$(timeout $BOUND "$SNAPVM" invoke --timeout $((BOUND * 1000)) "$@" "$name" \
		"$request" 2>"$TMP/invoke.err")
	expect_eq "$name ${*:-}: '$request' answered" "$reply" "$want"
	[ "$reply" = "$want" ] || cat "$TMP/invoke.err" >&2
}

fn_booted=$(date +%s)
snapshot fn --mem 128M
fn_stored=$(date +%s)
for mode in eager lazy prefetch mmap; do
	invoke fn ping PONG --memory $mode
done
invoke fn cpus "CPUS 1"
invoke fn bogus "ERR unknown request"

snapshot smp --mem 128M --cpus 2
invoke smp cpus "CPUS 2"
for mode in eager lazy; do
	invoke smp "oncpu 0" "OK cpu 0" --memory $mode
	invoke smp "oncpu 1" "OK cpu 1" --memory $mode
done
invoke smp "oncpu 2" "ERR cpu 2"

# Under load: a busy loop on each CPU, still spinning in every clone, and
# both CPUs still take work.
snapshot busy --mem 128M --cpus 2 --cmdline snapvm.busy
for mode in eager lazy; do
	invoke busy "oncpu 0" "OK cpu 0" --memory $mode
	invoke busy "oncpu 1" "OK cpu 1" --memory $mode
done

# The function answers on vsock too: a clone gets its own host socket, and
# each clone has its own generation id.
snapshot vs --mem 128M --vsock 3,"$TMP/vs.sock"
genids=""
for mode in lazy mmap; do
	sock="$TMP/vs-$mode.sock"
	"$SNAPVM" restore vs --memory $mode --vsock 3,"$sock" --console none \
		</dev/null >/dev/null 2>"$TMP/vs-$mode.err" &
	pid=$!
	deadline=$((SECONDS + BOUND))
	while [ ! -S "$sock" ] && kill -0 $pid 2>/dev/null && [ $SECONDS -lt $deadline ]; do
		sleep 0.2
	done
	timeout $BOUND "$PEER" connect "$sock" 5000 ping genid >"$TMP/vs-$mode.out" 2>&1
	# the handshake's reply names the connection's host port
	expect_eq "vsock, $mode: the handshake and ping" \
		"$(sed -n 1,2p "$TMP/vs-$mode.out" | sed 's/^OK [0-9]*$/OK/' | tr '\n' ' ')" "OK PONG "
	genid=$(sed -n 's/^GENID \([0-9a-f]\{32\}\)$/\1/p' "$TMP/vs-$mode.out")
	[ -n "$genid" ] && pass "vsock, $mode: genid" || fail "vsock, $mode: genid: $(cat "$TMP/vs-$mode.out")"
	genids="$genids $genid"
	kill $pid 2>/dev/null
	wait $pid
	[ -s "$TMP/vs-$mode.err" ] && cat "$TMP/vs-$mode.err" >&2
done
expect_eq "vsock: two clones, two generation ids" "$(tr ' ' '\n' <<<"$genids" | sort -u | grep -c .)" 2

# 20 clones at once get every line: the same reply from each, and from each
# a generation id of its own.
CLONES=20
printf 'ping\ngenid\nexit\n' | timeout $((BOUND * 4)) "$SNAPVM" restore fn --clones $CLONES \
	>"$TMP/clones.out" 2>"$TMP/clones.err"
expect_eq "$CLONES clones: exit status after exit" "$?" 0
pongs=0
for i in $(seq 0 $((CLONES - 1))); do
	tr -d '\r' <"$TMP/clones.out" | grep -qx "\[$i\] PONG" && pongs=$((pongs + 1))
done
expect_eq "$CLONES clones: each answers ping with PONG" "$pongs" $CLONES
expect_eq "$CLONES clones: $CLONES distinct generation ids" \
	"$(tr -d '\r' <"$TMP/clones.out" | grep -E '^\[[0-9]+\] GENID [0-9a-f]{32}$' | cut -d' ' -f3 | sort -u | wc -l)" \
	$CLONES
[ "$pongs" = $CLONES ] || cat "$TMP/clones.out" "$TMP/clones.err" >&2

# Through the daemon: snapvm serve invokes the snapshot.
"$SNAPVM" serve --listen "unix:$TMP/api.sock" >"$TMP/serve.out" 2>"$TMP/serve.err" &
daemon=$!
deadline=$((SECONDS + BOUND))
while ! grep -q "listening on unix:$TMP/api.sock" "$TMP/serve.out" && kill -0 $daemon 2>/dev/null &&
	[ $SECONDS -lt $deadline ]; do
	sleep 0.2
done
curl -s --max-time $BOUND --unix-socket "$TMP/api.sock" -o "$TMP/body" -w "%{http_code}" \
	--data-binary "{\"request\": \"ping\", \"timeout_ms\": $((BOUND * 1000))}" \
	http://snapvm/snapshots/fn/invoke >"$TMP/code"
expect_eq "serve: invoke fn ping: HTTP status" "$(cat "$TMP/code")" 200
expect_eq "serve: invoke fn ping: reply" "$(grep -o '"reply":"[^"]*"' "$TMP/body")" '"reply":"PONG"'
kill -TERM $daemon
wait $daemon
expect_eq "serve: exit status after SIGTERM" "$?" 0

# The guest's wall clock: it stood still while the snapshot was stored (at
# least AGE s), and --clock-realtime sets it to the host's.
AGE=20
while [ "$(date +%s)" -lt $((fn_stored + AGE)) ]; do sleep 1; done
before=$(date +%s)
reply=$(timeout $BOUND "$SNAPVM" invoke --timeout $((BOUND * 1000)) fn time 2>"$TMP/invoke.err")
after=$(date +%s)
plain=${reply#TIME }
[[ "$reply" =~ ^TIME\ [0-9]+$ ]] && [ "$plain" -ge $((fn_booted - 2)) ] &&
	[ "$plain" -le $((fn_stored + after - before + 2)) ] &&
	pass "without --clock-realtime the clock stood still while stored ($((after - plain)) s behind)" ||
	fail "without --clock-realtime: '$reply', want a time from $((fn_booted - 2)) to $((fn_stored + after - before + 2))"
before=$(date +%s)
reply=$(timeout $BOUND "$SNAPVM" invoke --timeout $((BOUND * 1000)) --clock-realtime fn time \
	2>"$TMP/invoke.err")
after=$(date +%s)
real=${reply#TIME }
[[ "$reply" =~ ^TIME\ [0-9]+$ ]] && [ "$real" -ge $((before - 2)) ] && [ "$real" -le $((after + 2)) ] &&
	pass "with --clock-realtime the clock is the host's" ||
	fail "with --clock-realtime: '$reply', want a time from $((before - 2)) to $((after + 2))"

# A clone goes on where the snapshot stopped: its `exit` ends it with status 0.
printf 'ping\nexit\n' | timeout $BOUND "$SNAPVM" restore fn --memory lazy >"$TMP/restore.out" 2>&1
rc=$?
expect_eq "restore: ping, then exit: status" "$rc" 0
expect_eq "restore: the clone's reply" "$(tr -d '\r' <"$TMP/restore.out" | head -1)" PONG
finish
