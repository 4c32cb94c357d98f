#!/bin/bash
# Rate limits under Linux's own virtio-blk driver: `dd iflag=direct` from a
# disk with bw= reads at that rate, and one with iops= serves that many
# requests a second, each within 10 %. Timed by the guest's clock over
# several seconds at low rates, so that a slow (emulated) guest still leaves
# the limit the bottleneck. Needs Linux to boot fully.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/linux_lib.sh"
require_hardware_virtualization
linux_images
BOUND=${SNAPVM_TEST_BOUND:-300}
truncate -s 8M "$TMP/rate.img"

# within_10_percent WHAT GOT_MS WANT_MS
within_10_percent() {
	if ! [[ "$2" =~ ^[0-9]+$ ]]; then
		fail "$1: no time measured ('$2')"
	elif [ $(($2 * 10)) -ge $(($3 * 9)) ] && [ $(($2 * 10)) -le $(($3 * 11)) ]; then
		pass "$1: $2 ms for $3 ms"
	else
		fail "$1: took $2 ms, want $3 ms within 10 %"
	fi
}

# /proc/uptime in ms around one dd; a bucket holds a tenth of a second's
# tokens and starts full (README.md, "Rate limits")
linux_test rate '
ms() { awk "{ printf \"%d\\n\", \$1 * 1000 }" /proc/uptime; }
sleep 0.5
t0=$(ms)
dd if=/dev/vda of=/dev/null bs=256k count=24 iflag=direct 2>/dev/null && echo "BW-DD ok"
t1=$(ms)
echo "BW-MS $((t1 - t0))"
sleep 0.5
t0=$(ms)
dd if=/dev/vdb of=/dev/null bs=4k count=100 iflag=direct 2>/dev/null && echo "IOPS-DD ok"
t1=$(ms)
echo "IOPS-MS $((t1 - t0))"
' --disk "$TMP/rate.img,bw=1M" --disk "$TMP/rate.img,ro,iops=25"
expect_eq "exit status" "$RC" 0
expect_eq "dd through the bw limit" "$(linux_field rate BW-DD)" ok
expect_eq "dd through the iops limit" "$(linux_field rate IOPS-DD)" ok
# 6 MiB at 1 MiB/s, less the first bucket's 0.1 s; 100 reads at 25/s, less 2
within_10_percent "Linux reads at bw=1M" "$(linux_field rate BW-MS)" 5900
within_10_percent "Linux reads at iops=25" "$(linux_field rate IOPS-MS)" 3920
finish
