#!/bin/bash
# Boots the project's Linux guest on this host, as far as it gets, and checks
# snapvm's loader on the serial console: the kernel's banner, its echo of the
# command line snapvm composed, its e820 map against the guest RAM, and its
# RAMDISK line against where snapvm put the initrd. The vmlinux boots through
# its PVH entry and its 64-bit entry, the bzImage through the boot protocol.
# Without ACPI the kernel finds its vCPUs in the MP table and its virtio
# devices on the command line; with ACPI (the default) both in the tables,
# whose RSDP it finds through PVH's start_info or boot_params.
# On PVM hosts Linux stops a few seconds in, after these lines (HOST.md); on
# hardware it goes on, and each VM is stopped once the lines are there.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/linux_lib.sh"
require_kvm
linux_images

MEM=$((128 << 20))
BOUND=60 # seconds a boot may take to print the lines checked
EARLY=earlyprintk=serial,ttyS0,115200

# linux_boot NAME ARGS...: boots with -v until the kernel has counted its CPUs
# (MP table or MADT), after its RAMDISK line (at most BOUND s), then stops it. Console in $TMP/NAME.out (no CRs),
# snapvm's messages in $TMP/NAME.err; BANNER_S: seconds to the banner.
linux_boot() {
	local name=$1 start now pid
	shift
	start=$(date +%s%N)
	BANNER_S=""
	"$SNAPVM" -v run --mem $((MEM >> 20))M --initrd "$INITRAMFS" "$@" \
		</dev/null >"$TMP/$name.raw" 2>"$TMP/$name.err" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		now=$(date +%s%N)
		if [ -z "$BANNER_S" ] && grep -q '^Linux version' "$TMP/$name.raw"; then
			BANNER_S=$(awk -v ns=$((now - start)) 'BEGIN { printf "%.1f", ns / 1e9 }')
		fi
		grep -qE '^(Processors: |smpboot: Allowing )' "$TMP/$name.raw" && break
		[ $((now - start)) -gt $((BOUND * 1000000000)) ] && break
		sleep 0.1
	done
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	tr -d '\r' <"$TMP/$name.raw" >"$TMP/$name.out"
	echo "   $name: banner after ${BANNER_S:-(never)} s"
}

# The usable bytes of the kernel's e820 printout, and where the last usable range ends.
e820_usable() {
	grep -E '^BIOS-e820: \[mem 0x[0-9a-f]+-0x[0-9a-f]+\] usable' "$1" |
		sed -E 's/.*\[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\].*/\1 \2/' |
		while read -r start end; do echo $((end - start + 1)) $((end)); done |
		awk '{ sum += $1; if ($2 > last) last = $2 } END { print sum, last }'
}

# check_boot NAME EXPECTED_CMDLINE: the checks on one boot's console.
check_boot() {
	local name=$1 want_cmdline=$2 size start end kstart kend banner cmdline e820 placed ramdisk
	local out="$TMP/$name.out"

	banner=$(grep -m1 '^Linux version ' "$out")
	[[ "$banner" == "Linux version 6.1."* ]] && pass "$name: kernel banner" ||
		fail "$name: no kernel banner within $BOUND s (console: $(head -c 300 "$out"))"
	cmdline=$(grep -m1 '^Command line: ' "$out")
	expect_eq "$name: kernel's command line" "$cmdline" "Command line: $want_cmdline"
	expect_eq "$name: snapvm's command line" \
		"$(grep -m1 '^snapvm: command line: ' "$TMP/$name.err")" \
		"snapvm: command line: $want_cmdline"

	# all RAM usable but the MP table's KiB and the legacy hole 0x9fc00-0xfffff
	e820=$(e820_usable "$out")
	expect_eq "$name: e820 usable bytes and end" "$e820" \
		"$((MEM - (0x100000 - 0x9fc00))) $((MEM - 1))"

	# the initrd at the top of RAM, page aligned; Linux prints whole pages
	size=$(stat -L -c %s "$INITRAMFS")
	start=$(((MEM - size) & ~4095))
	end=$((((start + size + 4095) & ~4095) - 1))
	placed=$(grep -m1 '^snapvm: initrd ' "$TMP/$name.err" | sed -E 's/.* at (0x[0-9a-f]+)$/\1/')
	expect_eq "$name: snapvm put the initrd at" "$((placed))" "$start"
	ramdisk=$(grep -m1 '^RAMDISK: ' "$out")
	kstart=$(sed -E 's/.*\[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\].*/\1/' <<<"$ramdisk")
	kend=$(sed -E 's/.*\[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\].*/\2/' <<<"$ramdisk")
	expect_eq "$name: kernel's RAMDISK line ($ramdisk)" "$((kstart)) $((kend))" \
		"$start $end"
}

DEFAULTS="console=ttyS0 reboot=k panic=-1"

# ACPI (the default): the RSDP through PVH's rsdp_paddr, the vCPUs in the
# MADT, and no virtio_mmio.device= words for the entropy device.
linux_boot vmlinux-pvh --kernel "$VMLINUX" --cpus 2 --rng --cmdline "$EARLY snapvm.test=pvh"
check_boot vmlinux-pvh "$DEFAULTS $EARLY snapvm.test=pvh"
expect_eq "vmlinux-pvh: the RSDP where snapvm put it" \
	"$(grep -m1 -o '^ACPI: RSDP 0x00000000000E0000' "$TMP/vmlinux-pvh.out")" \
	"ACPI: RSDP 0x00000000000E0000"
expect_eq "vmlinux-pvh: vCPUs the kernel found in the MADT" \
	"$(grep -m1 -o '^smpboot: Allowing 2 CPUs' "$TMP/vmlinux-pvh.out")" "smpboot: Allowing 2 CPUs"

linux_boot vmlinux-64 --kernel "$VMLINUX" --boot elf64 --cpus 2 --acpi off \
	--cmdline "$EARLY snapvm.test=64"
check_boot vmlinux-64 "$DEFAULTS $EARLY snapvm.test=64"
expect_eq "vmlinux-64: vCPUs the kernel found in the MP table" \
	"$(grep -m1 '^Processors: ' "$TMP/vmlinux-64.out")" "Processors: 2"

# Without ACPI, a virtio device is announced on the command line without being asked for.
linux_boot bzimage --kernel "$BZIMAGE" --rng --acpi off --cmdline "$EARLY snapvm.test=bz"
check_boot bzimage "$DEFAULTS virtio_mmio.device=4K@0xd0000000:5 $EARLY snapvm.test=bz"

# The test guest is not Linux: it gets exactly the user's command line.
printf 'exit 0\n' | "$SNAPVM" -v run --kernel "$GUEST" --rng --cmdline heap=0 \
	>/dev/null 2>"$TMP/guest.err"
expect_eq "test guest: command line untouched" \
	"$(grep -m1 '^snapvm: command line' "$TMP/guest.err")" "snapvm: command line: heap=0"

# --no-legacy: no COM1 (test_i8042 checks the device set), so no serial console
# words on the command line; the virtio console instead.
timeout 5 "$SNAPVM" -v run --kernel "$VMLINUX" --no-legacy --console virtio --acpi off \
	</dev/null >"$TMP/nolegacy.out" 2>"$TMP/nolegacy.err"
expect_eq "--no-legacy: command line" \
	"$(grep -m1 '^snapvm: command line' "$TMP/nolegacy.err")" \
	"snapvm: command line: console=hvc0 reboot=k panic=-1 virtio_mmio.device=4K@0xd0000000:5"
finish
