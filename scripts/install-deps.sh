#!/bin/sh
# Installs the Debian 12 packages snapvm needs to build, test and benchmark,
# but only those that are missing, so that a second run costs nothing.
set -eu

PACKAGES="
build-essential
cmake
pkg-config
clang-format
clang
libclang-rt-14-dev
libzstd-dev
liblmdb-dev
lmdb-utils
liburing-dev
libssl-dev
libcmocka-dev
libslirp-dev
libseccomp-dev
libmicrohttpd-dev
libjansson-dev
curl
iproute2
iputils-ping
qemu-system-x86
python3
gnuplot-nox
linux-source-6.1
busybox-static
bc
bison
flex
cpio
e2fsprogs
lz4
xz-utils
libelf-dev
librados-dev
ceph-mon
ceph-mgr
ceph-osd
ceph-common
"

missing=""
for pkg in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $pkg"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing; run as root or install them" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
