#!/bin/bash
# Bad Linux kernels and initrds: `snapvm run` refuses them before starting
# anything, with exit code 2 and one clear line on stderr.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/linux_lib.sh"
require_kvm
linux_images

# refused WHAT WORDS ARGS...: exit 2, one line on stderr naming WORDS, no stdout.
refused() {
	local what=$1 words=$2
	shift 2
	timeout 30 "$SNAPVM" run "$@" </dev/null >"$TMP/out" 2>"$TMP/err"
	local rc=$?
	expect_eq "$what: exit code" "$rc" 2
	expect_eq "$what: one line on stderr" "$(wc -l <"$TMP/err")" 1
	expect_eq "$what: nothing on stdout" "$(wc -c <"$TMP/out")" 0
	grep -q -- "$words" "$TMP/err" && pass "$what: says '$words'" ||
		fail "$what: '$(cat "$TMP/err")' does not say '$words'"
}

# patch FILE OFFSET BYTES: overwrites bytes (given as \xNN) in place.
patch() {
	printf '%b' "$3" | dd of="$1" bs=1 seek=$(($2)) conv=notrunc status=none
}

head -c 1000 "$BZIMAGE" >"$TMP/short.bz"
refused "bzImage cut in its setup header" "truncated bzImage" --kernel "$TMP/short.bz"
head -c 100000 "$BZIMAGE" >"$TMP/cut.bz"
refused "bzImage cut in its kernel" "truncated bzImage" --kernel "$TMP/cut.bz"
cp "$BZIMAGE" "$TMP/old.bz" && patch "$TMP/old.bz" 0x206 '\x0b\x02'
refused "boot protocol 2.11" "boot protocol 2.11" --kernel "$TMP/old.bz"
cp "$BZIMAGE" "$TMP/flag.bz" && patch "$TMP/flag.bz" 0x1fe '\x00\x00'
refused "no boot_flag" "not a bzImage" --kernel "$TMP/flag.bz"
cp "$BZIMAGE" "$TMP/32.bz" && patch "$TMP/32.bz" 0x236 '\x00\x00'
refused "no 64-bit entry" "64-bit entry" --kernel "$TMP/32.bz"
head -c 4096 /dev/urandom >"$TMP/noise"
refused "neither ELF nor bzImage" "not a kernel" --kernel "$TMP/noise"
refused "bzImage by PVH" "needs an ELF kernel" --kernel "$BZIMAGE" --boot pvh
refused "kernel larger than RAM" "the guest has 8 MiB" --kernel "$BZIMAGE" --mem 8M

long=$(printf 'x%.0s' $(seq 2100))
refused "command line longer than the kernel takes" "this kernel takes at most 2047" \
	--kernel "$VMLINUX" --cmdline "$long"
refused "command line longer than a bzImage takes" "this kernel takes at most 2047" \
	--kernel "$BZIMAGE" --cmdline "$long"
refused "missing initrd" "cannot read initrd" --kernel "$VMLINUX" --initrd "$TMP/nope"
refused "directory as initrd" "not a regular file" --kernel "$VMLINUX" --initrd "$TMP"
: >"$TMP/empty.initrd"
refused "empty initrd" "is empty" --kernel "$VMLINUX" --initrd "$TMP/empty.initrd"
head -c $((40 << 20)) /dev/zero >"$TMP/big.initrd"
refused "initrd larger than the RAM left" "use a larger --mem" \
	--kernel "$VMLINUX" --mem 48M --initrd "$TMP/big.initrd"
finish
