#!/bin/sh
# The init of scripts/nested-kvm.sh's L1 VM, run by busybox sh as PID 1. It is
# not meant to be run by hand: nested-kvm.sh puts it in the L1's initramfs as
# /init, next to busybox and the kernel modules the L1 needs.
#
# stage 1 (in the initramfs): loads the modules (/modules.list, in dependency
#   order), mounts the host's / read-only over 9p as the new root, the
#   per-invocation directory (tag io: config, run.sh, status), tmpfs where the
#   host's userland expects to write, the read-write exports (tags repo,
#   cache and store, at the host's paths), brings up lo and eth0, then switch_roots.
# stage 2 (in the new root, from a copy of busybox and of this script in
#   /run/nested-kvm): runs io/run.sh with bash (the host's), stdin from
#   /dev/null, stdout and stderr to the virtio-serial ports named stdout and
#   stderr, writes its exit status to io/status and powers off.
#
# A failure before the command runs leaves no io/status: nested-kvm.sh then
# reports it (exit 125) with the end of the kernel log, where this script's
# messages go too.

# the 9p mount options: big messages; the read-only root may cache everything
# (it is fresh at each boot), the read-write exports only what is mmapped, so
# that every write goes straight to the host
P9="trans=virtio,version=9p2000.L,msize=512000"
P9_RO="$P9,cache=loose,ro"
P9_RW="$P9,cache=mmap"
DIR=/run/nested-kvm # where stage 2 and the io export live, in the new root

fail() {
	echo "nested-kvm-init: $*" >&2
	# the host sees no status, so says the L1 died, and shows this line
	sync
	poweroff -f
	sleep 10
	exit 1
}

stage1() {
	export PATH=/bin
	/bin/busybox --install -s /bin
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev
	exec </dev/console >/dev/console 2>&1
	while read -r mod; do
		insmod "/modules/$mod.ko" || fail "insmod $mod failed"
	done </modules.list

	new=/newroot
	mkdir -p $new
	mount -t 9p -o "$P9_RO" root $new || fail "cannot mount the host's / over 9p"
	mount -t tmpfs -o mode=0755 tmpfs $new/run || fail "cannot mount /run"
	mkdir -p $new$DIR/io
	mount -t 9p -o "$P9_RW" io $new$DIR/io || fail "cannot mount the io export"
	# REPO CACHE STORE HOME_CACHE VERBOSE, written by nested-kvm.sh
	# shellcheck disable=SC1090,SC1091
	. $new$DIR/io/config

	for dir in /tmp /var/tmp /dev/shm; do
		mount -t tmpfs -o mode=1777 tmpfs "$new$dir" || fail "cannot mount $dir"
	done
	# tools that cache under ~/.cache get a private one, unless the
	# read-write cache export covers it
	if [ -n "$HOME_CACHE" ] && [ -d "$new$HOME_CACHE" ]; then
		mount -t tmpfs -o mode=0755 tmpfs "$new$HOME_CACHE"
	fi
	# the read-write exports, shorter paths first, so that an outer one
	# never hides one inside it
	order=$(printf '%s\n' "${#CACHE} cache" "${#REPO} repo" "${#STORE} store" |
		sort -n | cut -d' ' -f2)
	for tag in $order; do
		case $tag in
		cache) path=$CACHE ;;
		repo) path=$REPO ;;
		store) path=$STORE ;;
		esac
		# (under a tmpfs above, its mount point has to be made)
		[ -d "$new$path" ] || mkdir -p "$new$path" || fail "no $path in the L1"
		mount -t 9p -o "$P9_RW" "$tag" "$new$path" || fail "cannot mount $path"
	done

	mount --move /proc $new/proc
	mount --move /sys $new/sys
	mount --move /dev $new/dev
	mount -t cgroup2 cgroup2 $new/sys/fs/cgroup 2>/dev/null
	mkdir -p $new/dev/pts $new/dev/mqueue
	mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts $new/dev/pts
	mount -t mqueue mqueue $new/dev/mqueue
	ln -sf pts/ptmx $new/dev/ptmx
	# what udev or systemd would make: bash's process substitution needs /dev/fd
	ln -sf /proc/self/fd $new/dev/fd
	ln -sf /proc/self/fd/0 $new/dev/stdin
	ln -sf /proc/self/fd/1 $new/dev/stdout
	ln -sf /proc/self/fd/2 $new/dev/stderr

	hostname snapvm-l1
	ip link set lo up
	# QEMU's user network: the host's loopback is 10.0.2.2
	{ ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 &&
		ip route add default via 10.0.2.2; } || fail "cannot configure eth0"

	cp /bin/busybox /init $new$DIR/
	exec switch_root $new $DIR/busybox sh $DIR/init stage2
}

# port NAME: the device of the virtio-serial port named NAME
port() {
	for p in /sys/class/virtio-ports/*; do
		[ "$(cat "$p/name" 2>/dev/null)" = "$1" ] && echo "/dev/${p##*/}" && return
	done
	fail "no virtio-serial port named $1"
}

stage2() {
	out=$(port stdout)
	err=$(port stderr)
	# run.sh sets the environment, goes to the repository and runs the command
	env -i /bin/bash --noprofile --norc $DIR/io/run.sh </dev/null >"$out" 2>"$err"
	status=$?
	sync
	echo $status >$DIR/io/status.tmp && mv $DIR/io/status.tmp $DIR/io/status
	sync
	poweroff -f
	sleep 10
}

case ${1-} in
stage2)
	# after switch_root: the host's userland around us, but our own applets
	$DIR/busybox mkdir -p $DIR/bin
	$DIR/busybox --install -s $DIR/bin
	PATH=$DIR/bin
	stage2
	;;
*) stage1 ;;
esac
