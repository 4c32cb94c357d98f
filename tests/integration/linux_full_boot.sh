#!/bin/bash
# Boots the project's Linux guest all the way to its init: READY, a ping
# answered with PONG, then `exit`, which reboots, which the i8042 turns into
# the end of the VM with status 0. Needs hardware virtualization: on PVM
# hosts Linux stops seconds into its boot (HOST.md), so there it is skipped.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/linux_lib.sh"
require_hardware_virtualization
linux_images

BOUND=60 # seconds for a whole boot-ping-exit round

# full_boot NAME ARGS...: boots, talks the init's protocol, checks the exit.
full_boot() {
	local name=$1 line got_ready="" got_pong="" deadline=$((SECONDS + BOUND)) pid rc from to
	shift
	coproc GUEST { exec "$SNAPVM" run --initrd "$INITRAMFS" "$@" 2>"$TMP/$name.err"; }
	# bash forgets a coprocess's descriptors and pid once it ends: keep copies
	pid=$GUEST_PID
	exec {from}<&"${GUEST[0]}" {to}>&"${GUEST[1]}"
	while [ $SECONDS -lt $deadline ] && IFS= read -r -t $((deadline - SECONDS)) line <&$from; do
		line=${line%$'\r'}
		echo "$line" >>"$TMP/$name.out"
		if [ "$line" = READY ] && [ -z "$got_ready" ]; then
			got_ready=1
			echo ping >&$to
		elif [ "$line" = PONG ] && [ -z "$got_pong" ]; then
			got_pong=1
			echo exit >&$to
		fi
	done
	exec {from}<&- {to}>&-
	kill "$pid" 2>/dev/null
	wait "$pid"
	rc=$?
	expect_eq "$name: READY" "${got_ready:-no}" 1
	expect_eq "$name: PONG" "${got_pong:-no}" 1
	expect_eq "$name: exit status after the guest's reboot" "$rc" 0
	[ -n "$got_pong" ] || tail -20 "$TMP/$name.out" "$TMP/$name.err" >&2
}

full_boot bzimage --kernel "$BZIMAGE" --cpus 2
full_boot vmlinux-pvh --kernel "$VMLINUX"
full_boot vmlinux-64 --kernel "$VMLINUX" --boot elf64
finish
