#!/bin/bash
# Debian 12's own cloud kernel (linux-image-*-cloud-amd64, as a user would
# boot it; fetched by scripts/debian-kernel.sh) boots under snapvm to the
# project's init with 2 vCPUs: READY, both CPUs seen, a ping answered, and
# `exit` ends the VM with status 0. Needs KVM on VT-x/AMD-V (or the nested
# platform): on PVM Linux does not reach its init.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/linux_lib.sh"
require_hardware_virtualization
linux_images
STOCK="$BUILD/guest/debian-cloud"
# `make test` fetches it before any test runs (make guest-debian)
[ -e "$STOCK/vmlinuz" ] || "$SRC/scripts/debian-kernel.sh" cloud-amd64 "$STOCK" ||
	{ echo "FAIL: cannot fetch Debian's cloud kernel" >&2; exit 1; }
echo "kernel: $(cat "$STOCK/version")"
BOUND=${SNAPVM_TEST_BOUND:-180}

linux_converse stock $'cpus\nping\nexit' --kernel "$STOCK/vmlinuz" --cpus 2 --mem 256M
expect_eq "Debian cloud kernel: READY" "${GOT_READY:-no}" 1
expect_eq "Debian cloud kernel: the init's replies" "$REPLIES" "CPUS 2 PONG"
expect_eq "Debian cloud kernel: exit status after the guest's reboot" "$RC" 0
[ "$RC" = 0 ] || tail -n 30 "$TMP/stock.out" "$TMP/stock.err" >&2
finish
