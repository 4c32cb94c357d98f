#!/bin/bash
# The project's Linux guest images work on their own, whatever this host's
# KVM: QEMU boots the bzImage and initramfs under TCG (pure emulation) to the
# init, which must say READY, answer ping with PONG and unknown requests with
# an error, and reboot on exit. snapvm's own full boot needs hardware
# virtualization (linux_full_boot); this keeps the images honest everywhere.
# QEMU gives it its own ACPI tables (microvm's default), a second opinion
# beside snapvm's.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/linux_lib.sh"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is not installed"
linux_images

# TCG's TSC is the host's. Linux measures it against the PIT alone here (no
# HPET, no PM timer); on a loaded host that measurement fails, Linux marks
# the TSC unstable and the boot hung, in 2 runs of 6. Give it the rate.
tsc_khz=$(awk '/^cpu MHz/ { printf "%d", $4 * 1000; exit }' /proc/cpuinfo)
deadline=$((SECONDS + 240)) # a hang guard: TCG on a loaded machine is slow
coproc QEMU { exec qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off -accel tcg \
	-cpu max -m 128M -kernel "$BZIMAGE" -initrd "$INITRAMFS" \
	-append "console=ttyS0 reboot=k panic=-1${tsc_khz:+ tsc_early_khz=$tsc_khz}" \
	-serial stdio -nodefaults -no-user-config \
	-nographic -no-reboot 2>&1; }
# bash forgets a coprocess's descriptors and pid once it ends: keep copies
pid=$QEMU_PID
exec {from}<&"${QEMU[0]}" {to}>&"${QEMU[1]}"
replies=()
while [ $SECONDS -lt $deadline ] && IFS= read -r -t $((deadline - SECONDS)) line <&$from; do
	line=${line%$'\r'}
	case "$line" in
	READY) echo ping >&$to ;;
	PONG) echo bogus >&$to ;;
	"ERR unknown request") echo exit >&$to ;;
	"reboot: Restarting system") replies+=("$line") && break ;;
	*) continue ;;
	esac
	replies+=("$line")
done
exec {from}<&- {to}>&-
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
expect_eq "init's conversation" "${replies[*]}" \
	"READY PONG ERR unknown request reboot: Restarting system"
finish
