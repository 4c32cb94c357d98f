#!/bin/sh
# Builds snapvm's Linux guest from Debian packages: vmlinux and bzImage from
# linux-source-6.1 (tinyconfig + snapvm.config), and an initramfs and an ext4
# root disk around busybox-static and snapvm-helper (helper/, static). The images go to a cache outside the source tree, one
# directory per hash of their inputs, so an unchanged guest is never built
# twice (a kernel build takes minutes); OUTDIR gets symbolic links to them.
#
# usage: guest/linux/build.sh OUTDIR
# cache: $SNAPVM_CACHE_DIR, else $XDG_CACHE_HOME/snapvm, else ~/.cache/snapvm
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: build.sh OUTDIR}
CACHE=${SNAPVM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/snapvm}
TARBALL=/usr/src/linux-source-6.1.tar.xz
BUSYBOX=/bin/busybox

die() {
	echo "guest/linux/build.sh: $*" >&2
	exit 1
}

package_version() {
	dpkg-query -W -f='${Version}' "$1" 2>/dev/null || die "package $1 is not installed (make deps)"
}

# hash_of WORDS...: a short hash of the words and of the files among them.
hash_of() {
	for word in "$@"; do
		if [ -f "$word" ]; then cat "$word"; else echo "$word"; fi
	done | sha256sum | cut -c1-16
}

# Checks that every option snapvm.config sets survived Kconfig's dependency rules.
config_check() {
	grep -E '^CONFIG_[A-Z0-9_]+=' "$HERE/snapvm.config" | while read -r line; do
		grep -qx "$line" "$1" || die "Kconfig dropped $line (see $1)"
	done
}

# A subshell, so that the source tree (over a gigabyte) goes whatever happens.
kernel_build() (
	dir=$1
	src=$dir/src
	trap 'rm -rf "$src"' EXIT
	rm -rf "$dir" && mkdir -p "$src"
	echo "build.sh: building Linux $(package_version linux-source-6.1) for the guest" \
		"in $dir (a few minutes)" >&2
	tar -xf "$TARBALL" -C "$src" --strip-components=1
	# the same banner from the same inputs, whoever builds it when
	KBUILD_BUILD_TIMESTAMP="Debian $(package_version linux-source-6.1)"
	export ARCH=x86_64 KBUILD_BUILD_USER=snapvm KBUILD_BUILD_HOST=snapvm KBUILD_BUILD_TIMESTAMP
	{ make -C "$src" -s tinyconfig &&
		"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" \
			"$HERE/snapvm.config" &&
		make -C "$src" -s olddefconfig; } >"$dir/build.log" 2>&1 ||
		die "configuring the kernel failed; log: $dir/build.log"
	config_check "$src/.config"
	if ! make -C "$src" -j "$(nproc)" vmlinux bzImage >>"$dir/build.log" 2>&1; then
		tail -n 30 "$dir/build.log" >&2
		die "kernel build failed; log: $dir/build.log"
	fi
	cp "$src/vmlinux" "$src/arch/x86/boot/bzImage" "$src/.config" "$dir/"
)

# userland_stage DIR: the guest's userland: busybox with a link per applet,
# snapvm-helper and the init.
userland_stage() {
	mkdir -p "$1/bin" "$1/proc" "$1/sys" "$1/dev" "$1/tmp" "$1/mnt"
	cp "$BUSYBOX" "$1/bin/busybox"
	for applet in $("$BUSYBOX" --list); do
		[ -e "$1/bin/$applet" ] || ln -s busybox "$1/bin/$applet"
	done
	gcc -static -Os -s -Wall -Wextra -Werror -o "$1/bin/snapvm-helper" "$HERE"/helper/*.c ||
		die "cannot build snapvm-helper (a static binary needs libc6-dev)"
	install -m 0755 "$HERE/init" "$1/init"
}

# The same userland twice: as an initramfs, and as an ext4 root disk
# (mke2fs -d: no mount, no root needed) for root=/dev/vda.
userland_build() {
	stage=$(mktemp -d)
	userland_stage "$stage"
	(cd "$stage" && find . | LC_ALL=C sort |
		cpio -o -H newc -R 0:0 --reproducible --quiet) >"$1.tmp"
	mke2fs -q -t ext4 -L snapvm-root -E root_owner=0:0 -d "$stage" "$2.tmp" 32M >/dev/null ||
		die "mke2fs failed (package e2fsprogs)"
	cp "$stage/bin/snapvm-helper" "$3.tmp" # static: the host's tests use it too
	rm -rf "$stage"
	mv "$1.tmp" "$1"
	mv "$2.tmp" "$2"
	mv "$3.tmp" "$3"
}

[ -r "$TARBALL" ] || die "$TARBALL is missing (package linux-source-6.1; make deps)"
[ -x "$BUSYBOX" ] || die "$BUSYBOX is missing (package busybox-static; make deps)"
mkdir -p "$CACHE" "$OUT"
exec 9>"$CACHE/linux.lock"
flock 9 # one build at a time; the others then find it done

# this script is part of each key: how it builds is an input too
kernel_key=$(hash_of "$(package_version linux-source-6.1)" "$(gcc -dumpfullversion)" \
	"$HERE/snapvm.config" "$HERE/build.sh")
kernel_dir=$CACHE/linux-$kernel_key
[ -f "$kernel_dir/bzImage" ] && [ -f "$kernel_dir/vmlinux" ] || kernel_build "$kernel_dir"

userland_key=$(hash_of "$(package_version busybox-static)" "$HERE/init" "$HERE"/helper/* \
	"$(gcc -dumpfullversion)" "$(package_version libc6-dev)" "$(package_version e2fsprogs)" \
	"$HERE/build.sh")
initramfs=$CACHE/initramfs-$userland_key.cpio
rootfs=$CACHE/rootfs-$userland_key.ext4
helper=$CACHE/snapvm-helper-$userland_key
[ -f "$initramfs" ] && [ -f "$rootfs" ] && [ -f "$helper" ] ||
	userland_build "$initramfs" "$rootfs" "$helper"

ln -sf "$kernel_dir/vmlinux" "$OUT/vmlinux"
ln -sf "$kernel_dir/bzImage" "$OUT/bzImage"
ln -sf "$initramfs" "$OUT/initramfs.cpio"
ln -sf "$rootfs" "$OUT/rootfs.ext4" # read-only: a test that writes works on a copy
ln -sf "$helper" "$OUT/snapvm-helper"
