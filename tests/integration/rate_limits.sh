#!/bin/bash
# I/O rate limits: a disk with bw= reads at that rate, one with iops= serves
# that many requests a second, a network device with pps= passes that many
# frames a second, and a clone keeps its disk's limit (or takes restore's).
# Rates are low and runs last seconds, so that load and emulation, which
# only slow the guest down, leave the limit the bottleneck; the guest's own
# clock (kvmclock) times the disk, the host's the network.
. "$(dirname "$0")/lib.sh"
require_kvm
export SNAPVM_STORE="$TMP/store"
PEER="$BUILD/tests/tools/udp_peer"

# within_10_percent WHAT GOT_NS WANT_NS
within_10_percent() {
	if ! [[ "$2" =~ ^[0-9]+$ ]]; then
		fail "$1: no time measured ('$2'): $(cat "$TMP/err" 2>/dev/null)"
	elif [ $(($2 * 10)) -ge $(($3 * 9)) ] && [ $(($2 * 10)) -le $(($3 * 11)) ]; then
		pass "$1: $(($2 / 1000000)) ms for $(($3 / 1000000)) ms"
	else
		fail "$1: took $(($2 / 1000000)) ms, want $(($3 / 1000000)) ms within 10 %"
	fi
}

# elapsed_ns: the guest's time between its two TIME lines in $OUT.
elapsed_ns() {
	awk '/^TIME / { t[n++] = $2 } END { printf "%.0f\n", n == 2 ? t[1] - t[0] : -1 }' <<<"$OUT"
}

# A bucket holds a tenth of a second's tokens, full at the start: a run of
# B bytes at R bytes/s takes (B - R / 10) / R seconds.
expected_ns() {
	echo $((($1 - $2 / 10) * 1000000000 / $2))
}

BYTES=$((8 << 20)) # 16384 sectors, read in 64 KiB requests
RATE=$((2 << 20))
truncate -s 16M "$TMP/disk.img"

run_guest 'time\nblk read 0 16384\ntime\nexit 0\n' --disk "$TMP/disk.img,bw=2M"
expect_eq "bw-limited read finishes" "$(grep -c '^OK ' <<<"$OUT"),$RC" "1,0"
within_10_percent "disk reads at bw=2M" "$(elapsed_ns)" "$(expected_ns $BYTES $RATE)"

# 100 requests of 4 KiB at 25 a second, 2 in the first bucket
run_guest 'time\nblk random read 100 1\ntime\nexit 0\n' --disk "$TMP/disk.img,iops=25"
expect_eq "iops-limited reads finish" "$(grep -c '^OK ' <<<"$OUT"),$RC" "1,0"
within_10_percent "disk serves iops=25" "$(elapsed_ns)" $(((100 - 2) * 1000000000 / 25))

# the limit is configuration kept in the snapshot
"$SNAPVM" run --kernel "$GUEST" --disk "$TMP/disk.img,bw=2M" --snapshot-on-ready rl \
	</dev/null >/dev/null 2>"$TMP/err"
expect_eq "snapshot of a rate-limited disk" "$?" 0
OUT=$(printf 'time\nblk read 0 16384\ntime\nexit 0\n' | timeout 60 "$SNAPVM" restore rl --disk "$TMP/disk.img" 2>"$TMP/err")
within_10_percent "the clone reads at the snapshot's bw=2M" "$(elapsed_ns)" \
	"$(expected_ns $BYTES $RATE)"
OUT=$(printf 'time\nblk read 0 16384\ntime\nexit 0\n' |
	timeout 60 "$SNAPVM" restore rl --disk "$TMP/disk.img,bw=4M" 2>"$TMP/err")
within_10_percent "restore --disk ...,bw=4M overrides it" "$(elapsed_ns)" \
	"$(expected_ns $BYTES $((4 << 20)))"

# net_exchanges LIMITS DATAGRAM COUNT: a guest on user networking with the
# rate limits LIMITS answers COUNT copies of DATAGRAM (lines of requests,
# one reply datagram each) sent one after the other through hostfwd; sets
# REPLIES (PONG lines) and NET_NS (the host's time for them).
net_exchanges() {
	local port=$((20000 + ($$ + RANDOM) % 20000)) pid start
	rm -f "$TMP/net.in" && mkfifo "$TMP/net.in"
	"$SNAPVM" run --kernel "$GUEST" --cmdline "net=10.0.2.15,udp=7" \
		--net "user,$1,hostfwd=udp:127.0.0.1:$port-:7" <"$TMP/net.in" >"$TMP/net.out" \
		2>"$TMP/err" &
	pid=$!
	exec 3>"$TMP/net.in"
	for _ in $(seq 100); do grep -q READY "$TMP/net.out" && break; sleep 0.1; done
	REPLIES=0 NET_NS=""
	# one exchange first: the guest's ARP answer is not part of the count
	if timeout 30 "$PEER" 127.0.0.1 $port ping >/dev/null; then
		sleep 0.2 # the buckets fill again
		start=$(date +%s%N)
		local -a datagrams
		for _ in $(seq "$3"); do datagrams+=("$2"); done
		REPLIES=$(timeout 60 "$PEER" 127.0.0.1 $port "${datagrams[@]}" | grep -c PONG)
		NET_NS=$(($(date +%s%N) - start))
	fi
	echo "exit 0" >&3
	exec 3>&-
	wait $pid
	expect_eq "the network guest ($1) exits 0" "$?" 0
}

# 80 requests of one frame each way at 20 frames a second (each direction's
# bucket holds 2)
net_exchanges pps=20 ping 80
expect_eq "pps-limited network answers every request" "$REPLIES" 80
within_10_percent "network passes pps=20" "$NET_NS" $(((80 - 2) * 1000000000 / 20))

# 80 datagrams of 200 pings (1000 bytes), each a frame of 1042 bytes (UDP, IP
# and Ethernet headers) answered by one as long, at 20 KiB a second
pings=$(printf 'ping\\n%.0s' $(seq 199))ping
net_exchanges bw=20K "$(printf "%b" "$pings")" 80
expect_eq "bw-limited network answers every request" "$REPLIES" $((80 * 200))
within_10_percent "network passes bw=20K" "$NET_NS" $(((80 * 1042 - 2048) * 1000000000 / 20480))
finish
