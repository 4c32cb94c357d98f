#!/bin/bash
# Bad input to `snapvm run` gives one clear line on stderr and exit code 2.
. "$(dirname "$0")/lib.sh"

# check WHAT ARGS...: expects exit 2, one line on stderr, nothing on stdout
check() {
	local what=$1
	shift
	timeout 30 "$SNAPVM" "$@" </dev/null >"$TMP/out" 2>"$TMP/err"
	local rc=$?
	expect_eq "$what: exit code" "$rc" 2
	expect_eq "$what: one line on stderr" "$(wc -l <"$TMP/err")" 1
	expect_eq "$what: nothing on stdout" "$(wc -c <"$TMP/out")" 0
	echo "   message: $(cat "$TMP/err")"
}

check "unknown command" frobnicate
check "unknown flag" run --kernel "$GUEST" --frobnicate
check "--mem 0" run --kernel "$GUEST" --mem 0
check "--mem garbage" run --kernel "$GUEST" --mem lots
check "--cpus 0" run --kernel "$GUEST" --cpus 0
check "--cpus too many" run --kernel "$GUEST" --cpus 99
check "no --kernel" run
check "--kernel without value" run --kernel
check "bad --console" run --kernel "$GUEST" --console tty
check "bad --boot" run --kernel "$GUEST" --boot bios
check "a missing --disk file" run --kernel "$GUEST" --disk "$TMP/nope.img"
check "a --disk override that is missing" restore fn --disk "$TMP/nope.img"
check "bench restore: --initrd without a Linux kernel" bench restore --initrd "$TMP/nope.cpio"
# --runs, parsed alike by every bench that takes it (bench_parse)
for bench_max in boot:10000 restore:10000 vsock:1000000; do
	bench=${bench_max%:*}
	check "bench $bench: --runs 0" bench "$bench" --runs 0
	expect_eq "bench $bench: --runs 0: message" "$(cat "$TMP/err")" \
		"snapvm bench $bench: --runs: '0' is not 1-${bench_max#*:}"
done

if [ -r /dev/kvm ]; then
	check "missing kernel file" run --kernel "$TMP/nope.elf"
	check "a directory as kernel" run --kernel "$TMP"
	printf 'this is not an ELF file\n' >"$TMP/text"
	check "non-ELF kernel" run --kernel "$TMP/text"
	head -c 100 "$GUEST" >"$TMP/short.elf"
	check "truncated ELF (header)" run --kernel "$TMP/short.elf"
	head -c 5000 "$GUEST" >"$TMP/cut.elf"
	check "truncated ELF (segment)" run --kernel "$TMP/cut.elf"
	# move the first segment's physical address to 4 GiB: outside a 128 MiB guest
	cp "$GUEST" "$TMP/far.elf"
	phoff=$(od -An -t u8 -j 32 -N 8 "$TMP/far.elf" | tr -d ' ')
	printf '\x00\x00\x00\x00\x01\x00\x00\x00' |
		dd of="$TMP/far.elf" bs=1 seek=$((phoff + 24)) conv=notrunc status=none
	check "ELF segment outside guest RAM" run --kernel "$TMP/far.elf"
	check "PVH boot of an ELF without the note" run --kernel "$TMP/far.elf" --boot pvh --mem 8M
else
	echo "SKIP (partly): no /dev/kvm, kernel-file checks need a VM"
fi

check "snapshot --store (the VM writes to its own store)" snapshot --api-sock "$TMP/sock" --store "$TMP" n

# getopt's two refusals read alike in every command (opt_getopt_error)
for cmd in run snapshot restore serve "store ls"; do
	# shellcheck disable=SC2086
	check "$cmd: unknown option" $cmd --frobnicate
	expect_eq "$cmd: unknown option: message" "$(cat "$TMP/err")" \
		"snapvm $cmd: unknown option '--frobnicate' (see 'snapvm $cmd --help')"
	# shellcheck disable=SC2086
	check "$cmd: option without its value" $cmd --store
	expect_eq "$cmd: option without its value: message" "$(cat "$TMP/err")" \
		"snapvm $cmd: --store needs a value (see 'snapvm $cmd --help')"
done

# --help everywhere exits 0 and prints usage
for cmd in "" run snapshot restore invoke ls rm store serve bench "bench boot" "bench restore" \
	"bench density" "bench store" "bench vsock" "bench blk" "bench net" "bench serve"; do
	# shellcheck disable=SC2086
	out=$("$SNAPVM" $cmd --help 2>&1)
	rc=$?
	expect_eq "snapvm $cmd --help: exit code" "$rc" 0
	[[ "$out" == usage:* ]] && pass "snapvm $cmd --help prints usage" ||
		fail "snapvm $cmd --help: '$out'"
done
finish
