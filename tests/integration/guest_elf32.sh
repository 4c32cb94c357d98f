#!/bin/bash
# A 32-bit ELF kernel that has only a PVH note (guest/pvh32/) boots by it, as
# QEMU boots such kernels: it prints its line on COM1 and exits with status 7
# through the control port. --boot elf64 is refused with one line.
. "$(dirname "$0")/lib.sh"
require_kvm
KERNEL="$BUILD/guest/pvh32.elf"

out=$(timeout 60 "$SNAPVM" run --kernel "$KERNEL" </dev/null 2>"$TMP/err")
expect_eq "ELF32 by its PVH note: exit status" "$?" 7
expect_eq "ELF32 by its PVH note: its console" "$out" "ELF32 PVH OK"
expect_eq "nothing on stderr" "$(cat "$TMP/err")" ""

timeout 60 "$SNAPVM" run --kernel "$KERNEL" --boot elf64 </dev/null >"$TMP/out" 2>"$TMP/err"
expect_eq "--boot elf64: exit status" "$?" 2
grep -q "32-bit" "$TMP/err" && pass "--boot elf64 says the kernel is 32-bit" ||
	fail "--boot elf64: $(cat "$TMP/err")"

# The same file under QEMU microvm prints the same line (there the exit port goes nowhere).
if command -v qemu-system-x86_64 >/dev/null; then
	timeout 30 qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off -accel tcg -m 64M \
		-kernel "$KERNEL" -serial file:"$TMP/qemu.out" -nodefaults -no-user-config \
		-display none </dev/null 2>/dev/null &
	pid=$!
	for _ in $(seq 300); do grep -q OK "$TMP/qemu.out" 2>/dev/null && break; sleep 0.1; done
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	expect_eq "QEMU boots the same file" "$(tr -d '\r' <"$TMP/qemu.out")" "ELF32 PVH OK"
fi
finish
