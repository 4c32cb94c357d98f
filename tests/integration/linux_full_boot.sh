#!/bin/bash
# Boots the project's Linux guest all the way to its init: READY, a ping
# answered with PONG, then `exit`, which reboots, which the i8042 turns into
# the end of the VM with status 0. Needs KVM on VT-x/AMD-V: on PVM hosts
# Linux stops seconds into its boot (HOST.md), so there make test runs it on
# the nested platform.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/linux_lib.sh"
require_hardware_virtualization
linux_images

BOUND=${SNAPVM_TEST_BOUND:-120} # seconds for a whole boot-ping-exit round, a hang guard

# full_boot NAME ARGS...: boots, talks the init's protocol, checks the exit.
full_boot() {
	local name=$1
	shift
	linux_converse "$name" $'ping\nexit' "$@"
	expect_eq "$name: READY" "${GOT_READY:-no}" 1
	expect_eq "$name: PONG" "$REPLIES" PONG
	expect_eq "$name: exit status after the guest's reboot" "$RC" 0
	# snapvm offers the LAPIC's TSC-deadline mode (KVM emulates it but does
	# not list it); without it Linux calibrated the LAPIC timer and, under
	# emulation, disabled it
	grep -q "TSC deadline timer available" "$TMP/$name.out" &&
		! grep -q "APIC timer disabled" "$TMP/$name.out" &&
		pass "$name: the LAPIC timer in TSC-deadline mode" ||
		fail "$name: no TSC-deadline LAPIC timer: $(grep -m1 -E 'TSC deadline|APIC timer' "$TMP/$name.out")"
	[ "$REPLIES" = PONG ] || tail -n 20 "$TMP/$name.out" "$TMP/$name.err" >&2
}

full_boot bzimage --kernel "$BZIMAGE" --cpus 2
full_boot vmlinux-pvh --kernel "$VMLINUX"
full_boot vmlinux-64 --kernel "$VMLINUX" --boot elf64
finish
