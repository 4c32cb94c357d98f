#!/bin/bash
# The rest of the machine as Linux's own drivers see it: the virtio console
# as the guest's console (hvc0), a machine with no serial port at all
# (--no-legacy), the virtio entropy device behind /dev/hwrng, 4 vCPUs, and
# how the VM ends: reboot (status 0), the power button (status 0), a kernel
# panic (pvpanic: status 3), a triple fault (status 1). Needs
# Linux to boot fully (hardware virtualization, or the nested platform).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/linux_lib.sh"
require_hardware_virtualization
linux_images
BOUND=${SNAPVM_TEST_BOUND:-180}

# --- console: hvc0 is the console, beside the serial port; then alone ---
linux_test hvc 'echo "CONSOLE $(cat /sys/class/tty/console/active)"' \
	--console virtio --cmdline console=hvc0
expect_eq "virtio console: exit status" "$RC" 0
expect_eq "virtio console: the guest's console is hvc0" "$(linux_field hvc CONSOLE)" "ttyS0 hvc0"
expect_eq "virtio console: the script ran to its end" "$(linux_field hvc TEST-END)" 0

linux_test nolegacy '
echo "CONSOLE $(cat /sys/class/tty/console/active)"
echo "UARTS $(dmesg | grep -c "ttyS0 at I/O")"' \
	--console virtio --no-legacy --cmdline console=hvc0
expect_eq "no legacy: exit status" "$RC" 0
expect_eq "no legacy: the console is hvc0 alone" "$(linux_field nolegacy CONSOLE)" hvc0
expect_eq "no legacy: Linux found no serial port" "$(linux_field nolegacy UARTS)" 0
expect_eq "no legacy: the script ran to its end" "$(linux_field nolegacy TEST-END)" 0

# --- entropy: 64 KiB from /dev/hwrng that are not constant, twice different ---
linux_test rng '
echo "RNG-CURRENT $(cat /sys/class/misc/hw_random/rng_current)"
head -c 65536 /dev/hwrng >/tmp/a && head -c 65536 /dev/hwrng >/tmp/b
echo "RNG-BYTES $(wc -c </tmp/a)"
echo "RNG-VALUES $(od -An -v -tx1 /tmp/a | tr -s " " "\n" | grep . | sort -u | wc -l)"
cmp -s /tmp/a /tmp/b && echo "RNG-AGAIN same" || echo "RNG-AGAIN different"' --rng
expect_eq "rng: exit status" "$RC" 0
expect_eq "rng: Linux uses the virtio entropy device" "$(linux_field rng RNG-CURRENT)" virtio_rng.0
expect_eq "rng: 64 KiB read" "$(linux_field rng RNG-BYTES)" 65536
# 64 KiB of random bytes miss one of the 256 values with odds below 10^-100
expect_eq "rng: every byte value occurs" "$(linux_field rng RNG-VALUES)" 256
expect_eq "rng: a second read differs" "$(linux_field rng RNG-AGAIN)" different

# --- SMP ---
linux_test smp 'echo "NPROC $(nproc)"' --cpus 4
expect_eq "smp: exit status" "$RC" 0
expect_eq "smp: the guest runs 4 CPUs" "$(linux_field smp NPROC)" 4

# --- how the VM ends ---
# reboot: every test above ended with the init's reboot -f, status 0.
# The power button: the control socket's stop presses it (ACPI's GED), and
# the function's init has a watcher that powers off (ACPI S5).
linux_start button -v run --kernel "$BZIMAGE" --initrd "$INITRAMFS" --api-sock "$TMP/button.sock"
if linux_wait button "^READY"; then
	expect_eq "power button: stop answered" "$(control_request "$TMP/button.sock" stop)" "ok stopping"
fi
linux_end button
expect_eq "power button: exit status" "$RC" 0
grep -q "guest powered off (ACPI S5)" "$TMP/button.err" && pass "power button: the guest powered off" ||
	fail "power button: no ACPI power-off: $(cat "$TMP/button.err")"

# A kernel panic: Linux's pvpanic driver tells snapvm, which exits 3.
linux_test panic 'echo c >/proc/sysrq-trigger; sleep 60' --cmdline quiet
expect_eq "panic: exit status 3" "$RC" 3
grep -q "guest kernel panicked (pvpanic)" "$TMP/panic.err" && pass "panic: reported" ||
	fail "panic: not reported: $(cat "$TMP/panic.err")"
# A triple fault: reboot=t makes Linux reboot by one.
linux_test triple 'echo BEFORE' --cmdline reboot=t
expect_eq "triple fault: exit status 1" "$RC" 1
grep -q "triple fault" "$TMP/triple.err" && pass "triple fault: reported" ||
	fail "triple fault: not reported: $(cat "$TMP/triple.err")"
finish
