#!/bin/bash
# A nested KVM platform: runs COMMAND, from the repository root, inside an L1
# Linux VM that has a standard /dev/kvm (AMD SVM with nested paging, emulated
# by QEMU's TCG and driven by kvm_amd), so that snapvm can be built and tested
# on a host without KVM, or on an AMD platform when the host is Intel.
#
#   scripts/nested-kvm.sh [--mem SIZE] [--cpus N] -- COMMAND [ARGS...]
#
# COMMAND's stdout and stderr come back on ours, byte for byte (each through
# a virtio-serial port of its own, not a tty), and its exit status is ours;
# 125 means the L1 died before COMMAND finished. COMMAND runs as root, with
# stdin from /dev/null and the environment PATH, HOME, TERM, CI, LANG and
# SNAPVM_* and CTEST_*, plus SNAPVM_PLATFORM="nested svm (tcg)".
#
# The L1 is Debian's own kernel (linux-image-*-amd64-unsigned, fetched by
# scripts/debian-kernel.sh) around the host's userland: its root is the host's /,
# read-only over 9p, so every host binary and build directory runs unchanged.
# Written to the host, each at its own path: the repository, the cache dir
# below and snapvm's store ($SNAPVM_STORE, else ~/.local/share/snapvm), so
# that a snapshot taken in one call can be invoked in the next. Private to the L1 (tmpfs): /tmp, /var/tmp, /run, /dev/shm and
# ~/.cache (unless the cache dir is there). Its network: lo, and eth0 on
# QEMU's user network (10.0.2.15; the host's loopback is 10.0.2.2). Network
# namespaces, TAP and veth devices work inside.
#
# Beware: QEMU's 9p server ignores flock(2), so a lock taken inside the L1
# does not exclude the host: never build a shared cache (e.g. the Linux
# guest of guest/linux/build.sh) from inside and outside at the same time.
# The L1 also caches the read-only root, so it does not see files the host
# changes outside the repository and the cache dir while it runs.
#
# options: --mem SIZE   the L1's memory (QEMU syntax; default 4G)
#          --cpus N     its vCPUs (default 1; 2 passed tests/integration/guest_boot.sh
#                       once, but an L1 with 2 was seen to livelock before)
# env:     SNAPVM_NESTED_VERBOSE=1 shows the L1's kernel log on stderr
# cache:   the L1's kernel and initramfs, built once (a download of ~70 MB),
#          in $SNAPVM_CACHE_DIR, else $XDG_CACHE_HOME/snapvm, else
#          ~/.cache/snapvm, as nested-KEY/
set -eu
shopt -s inherit_errexit

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
INIT=$HERE/nested-kvm-init.sh
CACHE=${SNAPVM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/snapvm}
# snapvm's default store, so that snapshots outlive one call
STORE=${SNAPVM_STORE:-$HOME/.local/share/snapvm}
BUSYBOX=/bin/busybox
QEMU=qemu-system-x86_64
# the modules the L1 loads (with what they depend on, found in modules.dep)
MODULES="virtio_pci 9p 9pnet_virtio virtio_console virtio_net kvm kvm-amd tun veth"

die() {
	echo "nested-kvm.sh: $*" >&2
	exit 125
}

usage() {
	echo "usage: $0 [--mem SIZE] [--cpus N] -- COMMAND [ARGS...]"
	echo "Runs COMMAND from the repository root in an L1 VM with a nested /dev/kvm"
	echo "(QEMU TCG, AMD SVM); exits with its status (125: the L1 failed)."
}

mem=4G
cpus=1
while [ $# -gt 0 ]; do
	case $1 in
	--mem) [ $# -ge 2 ] || { usage >&2; exit 2; }; mem=$2; shift 2 ;;
	--cpus) [ $# -ge 2 ] || { usage >&2; exit 2; }; cpus=$2; shift 2 ;;
	--help | -h) usage; exit 0 ;;
	--) shift; break ;;
	*) usage >&2; exit 2 ;;
	esac
done
[ $# -ge 1 ] || { usage >&2; exit 2; }
case $cpus in '' | *[!0-9]* | 0) die "--cpus wants a positive number, not '$cpus'" ;; esac

command -v $QEMU >/dev/null || die "$QEMU is missing (package qemu-system-x86; make deps)"
[ -x $BUSYBOX ] || die "$BUSYBOX is missing (package busybox-static; make deps)"

# hash_of WORDS...: a short hash of the words and of the files among them.
hash_of() {
	for word in "$@"; do
		if [ -f "$word" ]; then cat "$word"; else echo "$word"; fi
	done | sha256sum | cut -c1-16
}

# shquote WORD: WORD quoted for sh and bash, whatever it holds.
shquote() {
	printf "'%s'" "${1//\'/\'\\\'\'}"
}

# modules_in_order MODDIR NAMES...: the paths (under MODDIR, a kernel's
# /lib/modules/KVER) of the named modules and of their dependencies, each
# after what it needs.
modules_in_order() {
	local base=$1 mod path
	shift
	declare -A deps=() seen=()
	while IFS=: read -r path rest; do
		deps[$path]=$rest
	done <"$base/modules.dep"
	visit() {
		local dep
		[ -z "${seen[$1]-}" ] || return 0
		seen[$1]=1
		for dep in ${deps[$1]}; do visit "$dep"; done
		echo "$1"
	}
	for mod in "$@"; do
		path=$(printf '%s\n' "${!deps[@]}" | grep -E "/$mod\.ko(\.xz)?$" | head -n 1)
		[ -n "$path" ] || die "module $mod is not in $base"
		visit "$path"
	done
}

# Builds the L1's initramfs into DIR, atomically, from the Debian kernel
# that debian-kernel.sh linked into KERNEL (vmlinuz, modules/).
l1_build() {
	local dir=$1 kernel=$2 tmp path name
	tmp=$(mktemp -d "$dir.tmp.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	mkdir -p "$tmp/stage/bin" "$tmp/stage/modules" "$tmp/stage/proc" \
		"$tmp/stage/sys" "$tmp/stage/dev"
	cp $BUSYBOX "$tmp/stage/bin/busybox"
	ln -s busybox "$tmp/stage/bin/sh"
	install -m 0755 "$INIT" "$tmp/stage/init"
	# shellcheck disable=SC2086
	modules_in_order "$kernel/modules" $MODULES >"$tmp/paths"
	while read -r path; do
		name=${path##*/}
		name=${name%.xz}
		case $path in
		*.xz) xz -dc "$kernel/modules/$path" >"$tmp/stage/modules/$name" ;;
		*) cp "$kernel/modules/$path" "$tmp/stage/modules/$name" ;;
		esac
		echo "${name%.ko}"
	done <"$tmp/paths" >"$tmp/stage/modules.list"
	# uncompressed: the L1's kernel would take longer to inflate it under TCG
	(cd "$tmp/stage" && find . | LC_ALL=C sort |
		cpio -o -H newc -R 0:0 --reproducible --quiet) >"$tmp/initramfs.cpio"
	cp "$kernel/vmlinuz" "$tmp/vmlinuz"
	cp "$kernel/version" "$tmp/version"
	rm -rf "$tmp/stage" "$tmp/paths"
	mv "$tmp" "$dir"
	trap - EXIT
}

# The cached L1 for the current kernel package, this script and its init.
l1_dir() {
	local kernel=$CACHE/nested-kernel key dir
	"$HERE/debian-kernel.sh" amd64 "$kernel" >&2 || die "cannot fetch the L1's kernel"
	key=$(hash_of "$(cat "$kernel/version")" \
		"$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null)" \
		"$HERE/nested-kvm.sh" "$INIT")
	dir=$CACHE/nested-$key
	if [ ! -f "$dir/initramfs.cpio" ]; then
		# one build at a time; the others then find it done
		exec 8>"$CACHE/nested.lock"
		flock 8
		[ -f "$dir/initramfs.cpio" ] || (l1_build "$dir" "$kernel")
		exec 8>&-
	fi
	echo "$dir"
}

l1=$(l1_dir) || exit 125
mkdir -p "$CACHE" "$STORE"
CACHE=$(cd "$CACHE" && pwd -P)
STORE=$(cd "$STORE" && pwd -P)
REPO=$(cd "$REPO" && pwd -P)

# The per-invocation directory, the L1's io export: config, run.sh, status,
# and the FIFOs QEMU writes the L1's stdout, stderr (and console) to.
io=$(mktemp -d "${TMPDIR:-/tmp}/nested-kvm.XXXXXX")
qemu_pid=
cat_pids=
# shellcheck disable=SC2317 # (a trap)
cleanup() {
	[ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
	# shellcheck disable=SC2086
	[ -z "$cat_pids" ] || kill $cat_pids 2>/dev/null || true
	rm -rf "$io"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

home_cache=
[ -n "${HOME-}" ] && [ "$HOME" != / ] && home_cache=$HOME/.cache
verbose=${SNAPVM_NESTED_VERBOSE:-0}
{
	echo "REPO=$(shquote "$REPO")"
	echo "CACHE=$(shquote "$CACHE")"
	echo "STORE=$(shquote "$STORE")"
	echo "HOME_CACHE=$(shquote "$home_cache")"
	echo "VERBOSE=$(shquote "$verbose")"
} >"$io/config"
{
	for var in PATH HOME TERM CI LANG $(compgen -e | grep -E '^(SNAPVM|CTEST)_'); do
		[ -z "${!var+set}" ] || echo "export $var=$(shquote "${!var}")"
	done
	echo "export SNAPVM_PLATFORM='nested svm (tcg)'"
	echo "cd $(shquote "$REPO") || exit 125"
	printf 'set --'
	for arg in "$@"; do printf ' %s' "$(shquote "$arg")"; done
	echo
	echo 'exec "$@"'
} >"$io/run.sh"

# stream FIFO FD: copies what QEMU writes to FIFO to our FD.
stream() {
	mkfifo "$io/$1"
	cat "$io/$1" >&"$2" &
	cat_pids="$cat_pids $!"
}
stream stdout 1
stream stderr 2
if [ "$verbose" = 1 ]; then
	stream console 2
	console=$io/console
	append="console=ttyS0 panic=-1"
else
	console=$io/console.log
	append="console=ttyS0 panic=-1 quiet loglevel=3"
fi

accel=tcg,tb-size=512
[ "$cpus" -eq 1 ] || accel=$accel,thread=multi
# qesc PATH: PATH as a QEMU option value (a comma doubles)
qesc() {
	printf '%s' "${1//,/,,}"
}
# export TAG PATH [,readonly=on]: a 9p export for the L1
exports=()
export_dir() {
	exports+=(-fsdev "local,id=$1,path=$(qesc "$2"),security_model=none,multidevs=remap${3-}"
		-device "virtio-9p-pci,fsdev=$1,mount_tag=$1")
}
export_dir root / ,readonly=on
export_dir io "$io"
export_dir repo "$REPO"
export_dir cache "$CACHE"
export_dir store "$STORE"
$QEMU -nodefaults -no-user-config -display none -no-reboot \
	-machine q35 -accel "$accel" -cpu max -smp "$cpus" -m "$mem" \
	-kernel "$l1/vmlinuz" -initrd "$l1/initramfs.cpio" -append "$append" \
	-chardev file,id=console,path="$(qesc "$console")" -serial chardev:console \
	-device virtio-serial-pci \
	-chardev file,id=stdout,path="$(qesc "$io/stdout")" -device virtserialport,chardev=stdout,name=stdout \
	-chardev file,id=stderr,path="$(qesc "$io/stderr")" -device virtserialport,chardev=stderr,name=stderr \
	"${exports[@]}" \
	-nic user,model=virtio-net-pci \
	</dev/null &
qemu_pid=$!
qemu_status=0
wait "$qemu_pid" || qemu_status=$?
qemu_pid=
# Lets the copies end even if QEMU never opened their FIFO: an open for
# reading and writing never blocks, and its close leaves them with EOF.
for fifo in "$io"/stdout "$io"/stderr "$io"/console; do
	[ -p "$fifo" ] && { exec 9<>"$fifo"; exec 9>&-; }
done
# shellcheck disable=SC2086
wait $cat_pids
cat_pids=

if [ ! -f "$io/status" ]; then
	echo "nested-kvm.sh: the L1 VM died before its command finished" \
		"(QEMU exit status $qemu_status)" >&2
	if [ -s "$io/console.log" ]; then
		echo "nested-kvm.sh: its kernel log ends with:" >&2
		grep -m 1 -E 'Kernel panic|BUG:|Oops' "$io/console.log" >&2 || true
		tail -n 10 "$io/console.log" >&2
	fi
	exit 125
fi
exit "$(cat "$io/status")"
