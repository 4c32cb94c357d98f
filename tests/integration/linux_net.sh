#!/bin/bash
# virtio-net driven by Linux's own driver. On a TAP device: the guest pings
# the host, and UDP and TCP echo work both ways, with every round trip
# counted (a lossy device fails here: nothing is sent twice). On user
# networking: DHCP with busybox udhcpc, and a hostfwd rule that brings the
# host's curl to busybox httpd in the guest. Each device has the MAC it was
# given. Needs root (TAP) and Linux booting fully (hardware virtualization,
# or the nested platform).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/linux_lib.sh"
require_hardware_virtualization
[ "$(id -u)" = 0 ] || missing "TAP devices need root (CAP_NET_ADMIN)"
linux_images
BOUND=${SNAPVM_TEST_BOUND:-180}
COUNT=50 # round trips each way, each protocol

# --- TAP: host 10.0.3.1, guest 10.0.3.2 ---
TAP=snvl$$
ip tuntap add dev "$TAP" mode tap 2>"$TMP/tap.err" || missing "cannot make a TAP device: $(cat "$TMP/tap.err")"
cleanup() {
	[ -n "${servers:-}" ] && kill $servers 2>/dev/null
	ip link del "$TAP" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
ip addr add 10.0.3.1/24 dev "$TAP" && ip link set "$TAP" up
udp_port=$((20000 + RANDOM % 20000))
tcp_port=$((udp_port + 1))
"$HELPER" echo udp $udp_port 2>/dev/null &
servers=$!
"$HELPER" echo tcp $tcp_port 2>/dev/null &
servers="$servers $!"

# The guest waits on TCP port 9 for the host to finish its part.
linux_script_initrd tap "
echo \"MAC \$(cat /sys/class/net/eth0/address)\"
ip addr add 10.0.3.2/24 dev eth0 && ip link set eth0 up
echo \"PING \$(ping -c 20 -i 0.2 -W 5 10.0.3.1 | grep transmitted)\"
snapvm-helper ask udp 10.0.3.1 $udp_port $COUNT | sed 's/^/GUEST-UDP /'
snapvm-helper ask tcp 10.0.3.1 $tcp_port $COUNT | sed 's/^/GUEST-TCP /'
snapvm-helper echo udp 7 2>/dev/null &
snapvm-helper echo tcp 7 2>/dev/null &
echo GUEST-ECHO ready
nc -l -p 9 >/dev/null"
linux_start tap run --kernel "$BZIMAGE" --initrd "$TMP/tap.cpio" --net "tap=$TAP,mac=52:54:00:ab:cd:01"
if linux_wait tap "^GUEST-ECHO ready"; then
	expect_eq "tap: UDP echo, host to guest" "$("$HELPER" ask udp 10.0.3.2 7 $COUNT)" "ASK OK $COUNT/$COUNT"
	expect_eq "tap: TCP echo, host to guest" "$("$HELPER" ask tcp 10.0.3.2 7 $COUNT)" "ASK OK $COUNT/$COUNT"
	echo done >/dev/tcp/10.0.3.2/9
else
	fail "tap: the guest never got to its echo servers"
fi
linux_end tap
expect_eq "tap: exit status" "$RC" 0
expect_eq "tap: the guest's MAC" "$(linux_field tap MAC)" 52:54:00:ab:cd:01
expect_eq "tap: the guest pings the host" "$(linux_field tap PING)" \
	"20 packets transmitted, 20 packets received, 0% packet loss"
expect_eq "tap: UDP echo, guest to host" "$(linux_field tap GUEST-UDP)" "ASK OK $COUNT/$COUNT"
expect_eq "tap: TCP echo, guest to host" "$(linux_field tap GUEST-TCP)" "ASK OK $COUNT/$COUNT"
expect_eq "tap: the script ran to its end" "$(linux_field tap TEST-END)" 0

# --- user networking: DHCP, then the host's curl reaches httpd in the guest ---
http_port=$((udp_port + 2))
done_port=$((udp_port + 3))
linux_script_initrd user '
cat >/tmp/dhcp.sh <<EOF
#!/bin/sh
[ "\$1" = bound ] || exit 0
ifconfig "\$interface" "\$ip" netmask "\$subnet" && route add default gw "\$router" &&
	echo "DHCP \$ip via \$router" >/tmp/lease
EOF
chmod +x /tmp/dhcp.sh
echo "MAC $(cat /sys/class/net/eth0/address)"
ip link set eth0 up
udhcpc -i eth0 -n -q -f -s /tmp/dhcp.sh >/dev/null 2>&1 && cat /tmp/lease || echo "DHCP failed"
mkdir -p /www && echo "served by Linux in snapvm" >/www/index.html
httpd -p 80 -h /www && echo HTTPD ready
nc -l -p 9 >/dev/null'
linux_start user run --kernel "$BZIMAGE" --initrd "$TMP/user.cpio" \
	--net "user,mac=52:54:00:ab:cd:02,hostfwd=tcp:127.0.0.1:$http_port-:80,hostfwd=tcp:127.0.0.1:$done_port-:9"
if linux_wait user "^HTTPD ready"; then
	expect_eq "user: curl on the host gets the guest's page" \
		"$(curl -s --max-time 60 "http://127.0.0.1:$http_port/index.html")" "served by Linux in snapvm"
	echo done >/dev/tcp/127.0.0.1/$done_port
else
	fail "user: httpd never started"
fi
linux_end user
expect_eq "user: exit status" "$RC" 0
expect_eq "user: the guest's MAC" "$(linux_field user MAC)" 52:54:00:ab:cd:02
expect_eq "user: DHCP lease" "$(linux_field user DHCP)" "10.0.2.15 via 10.0.2.2"
expect_eq "user: the script ran to its end" "$(linux_field user TEST-END)" 0
for name in tap user; do
	[ -s "$TMP/$name.err" ] && sed "s/^/$name: /" "$TMP/$name.err" >&2
done
finish
