#!/bin/bash
# Fetches Debian 12's current kernel of one flavour (the unsigned twin of
# what linux-image-FLAVOUR depends on), unpacked once into the cache and
# keyed by the package's version, and links it into OUTDIR:
#
#   OUTDIR/vmlinuz   the kernel (a bzImage)
#   OUTDIR/modules   its /lib/modules/KVER tree, modules.dep included
#   OUTDIR/version   "PACKAGE VERSION"
#
# usage: scripts/debian-kernel.sh FLAVOUR OUTDIR    (FLAVOUR: amd64, cloud-amd64)
# cache: $SNAPVM_CACHE_DIR, else $XDG_CACHE_HOME/snapvm, else ~/.cache/snapvm
# Stock-kernel tests use cloud-amd64; the nested platform's L1 uses amd64,
# which also has 9p, virtio-pci, tun and veth as modules.
set -eu

CACHE=${SNAPVM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/snapvm}

die() {
	echo "debian-kernel.sh: $*" >&2
	exit 1
}

case "${1:-}" in
-h | --help)
	sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//'
	exit 0
	;;
esac
[ $# -eq 2 ] || die "usage: debian-kernel.sh FLAVOUR OUTDIR (see --help)"
FLAVOUR=$1
OUT=$2
case $FLAVOUR in
amd64 | cloud-amd64) ;;
*) die "unknown flavour '$FLAVOUR' (amd64 or cloud-amd64)" ;;
esac

# PACKAGE VERSION of the unsigned kernel linux-image-FLAVOUR stands for.
# apt-cache takes seconds without its binary cache, so the answer is kept
# until apt's package lists change.
package_and_version() {
	local memo pkg version
	memo=$CACHE/debian-kernel-$FLAVOUR-$(ls -l --time-style=+%s /var/lib/apt/lists/ 2>/dev/null |
		sha256sum | cut -c1-16).apt
	if { read -r pkg version <"$memo"; } 2>/dev/null && [ -n "$version" ]; then
		echo "$pkg $version"
		return
	fi
	pkg=$(apt-cache depends "linux-image-$FLAVOUR" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2 "-unsigned"; exit }')
	[ -n "$pkg" ] || die "apt knows no linux-image-$FLAVOUR (run apt-get update)"
	version=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null |
		awk '$1 == "Version:" { print $2; exit }')
	[ -n "$version" ] || die "apt knows no $pkg (run apt-get update)"
	rm -f "$CACHE/debian-kernel-$FLAVOUR-"*.apt
	echo "$pkg $version" >"$memo.$$" && mv "$memo.$$" "$memo"
	echo "$pkg $version"
}

# unpack DIR PACKAGE VERSION: downloads and unpacks into DIR, atomically.
unpack() (
	dir=$1 pkg=$2 version=$3
	tmp=$(mktemp -d "$dir.tmp.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	echo "debian-kernel.sh: fetching $pkg $version (once)" >&2
	(cd "$tmp" && apt-get download -q=2 -o APT::Sandbox::User=root "$pkg=$version") >&2 ||
		die "cannot download $pkg $version (apt-get update?)"
	dpkg-deb -x "$tmp"/*.deb "$tmp/deb"
	kver=$(ls "$tmp/deb/lib/modules")
	# the package leaves modules.dep to its postinst's depmod
	busybox depmod -b "$tmp/deb" "$kver" || die "depmod failed on $pkg"
	mv "$tmp/deb/boot/vmlinuz-$kver" "$tmp/vmlinuz"
	mv "$tmp/deb/lib/modules/$kver" "$tmp/modules"
	echo "$pkg $version" >"$tmp/version"
	rm -rf "$tmp/deb" "$tmp"/*.deb
	mv "$tmp" "$dir"
	trap - EXIT
)

mkdir -p "$CACHE" "$OUT"
read -r pkg version < <(package_and_version)
dir=$CACHE/debian-kernel-$FLAVOUR-$version
if [ ! -f "$dir/version" ]; then
	exec 9>"$CACHE/debian-kernel.lock"
	flock 9 # one download at a time; the others then find it done
	[ -f "$dir/version" ] || unpack "$dir" "$pkg" "$version"
	exec 9>&-
fi
ln -sfn "$dir/vmlinuz" "$OUT/vmlinuz"
ln -sfn "$dir/modules" "$OUT/modules"
ln -sfn "$dir/version" "$OUT/version"
