#!/bin/bash
# virtio-blk driven by Linux's own driver: the guest boots with its root on
# /dev/vda; reads a file tree and checks it against the host's checksums;
# writes and syncs, and the host finds the bytes after the VM exits; a
# read-only disk refuses writes with an error, not a hang; each disk's
# serial is the id it was given. Needs
# Linux to boot fully (hardware virtualization, or the nested platform).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/linux_lib.sh"
require_hardware_virtualization
linux_images
BOUND=${SNAPVM_TEST_BOUND:-180}

# --- root on /dev/vda: the init runs from the disk, and writes to it ---
linux_script_disk root '
echo "ROOT $(grep " / " /proc/mounts | cut -d" " -f1,3)"
echo "written on the root disk" >/from-guest
sync'
linux_start root run --kernel "$BZIMAGE" --disk "$TMP/root.ext4" \
	--cmdline "root=/dev/vda rw init=/init"
linux_end root
expect_eq "root disk: exit status" "$RC" 0
expect_eq "root disk: / is ext4 on the root device" "$(linux_field root ROOT)" "/dev/root ext4"
expect_eq "root disk: the script ran to its end" "$(linux_field root TEST-END)" 0
expect_eq "root disk: the guest's file, read on the host" \
	"$(debugfs -R "cat from-guest" "$TMP/root.ext4" 2>/dev/null)" "written on the root disk"

# --- a file tree, a scratch disk, a read-only disk, each with a serial ---
mkdir -p "$TMP/tree/a/b" "$TMP/tree/c"
head -c 3000000 /dev/urandom >"$TMP/tree/a/b/big"
head -c 4096 /dev/urandom >"$TMP/tree/a/page"
head -c 777 /dev/urandom >"$TMP/tree/c/odd"
echo hello >"$TMP/tree/small"
(cd "$TMP/tree" && find . -type f | LC_ALL=C sort | xargs sha256sum) >"$TMP/tree.sums"
mke2fs -q -t ext4 -d "$TMP/tree" "$TMP/tree.ext4" 16M >/dev/null
truncate -s 4M "$TMP/scratch.img"
head -c 1M /dev/urandom >"$TMP/ro.img"
ro_before=$(sha256sum <"$TMP/ro.img")

# Disks are found by serial, not by name, so the test also checks that each
# serial names the right disk.
linux_test disks '
disk() { for d in /sys/block/vd*; do [ "$(cat $d/serial)" = "$1" ] && echo /dev/${d##*/}; done; }
for d in /sys/block/vd*; do echo "SERIAL ${d##*/} $(cat $d/serial)"; done
tree=$(disk tree-disk) scratch=$(disk scratch-disk) ro=$(disk ro-disk)
mount -o ro "$tree" /mnt && (cd /mnt && find . -type f | LC_ALL=C sort | xargs sha256sum) |
	sed "s/^/SUM /"
head -c 1048576 /dev/urandom >/tmp/w
echo "WROTE $(sha256sum </tmp/w | cut -d" " -f1)"
dd if=/tmp/w of="$scratch" bs=65536 conv=fsync 2>/dev/null && echo "SCRATCH ok"
echo "RO-FLAG $(cat /sys/block/${ro#/dev/}/ro)"
dd if=/tmp/w of="$ro" bs=4096 count=1 conv=fsync 2>/tmp/dd.err && echo "RO-OPEN wrote" ||
	echo "RO-OPEN refused: $(head -n 1 /tmp/dd.err)"
' \
	--disk "$TMP/tree.ext4,id=tree-disk" --disk "$TMP/scratch.img,id=scratch-disk" \
	--disk "$TMP/ro.img,ro,id=ro-disk"
expect_eq "disks: exit status" "$RC" 0
expect_eq "disks: each disk's serial" "$(tr -d '\r' <"$TMP/disks.out" | sed -n 's/^SERIAL //p' |
	tr '\n' ' ')" "vda tree-disk vdb scratch-disk vdc ro-disk "
expect_eq "disks: the tree's checksums, as the host has them" \
	"$(tr -d '\r' <"$TMP/disks.out" | sed -n 's/^SUM //p')" "$(cat "$TMP/tree.sums")"
expect_eq "disks: the bytes the guest wrote and synced are on the host" \
	"$(head -c 1048576 "$TMP/scratch.img" | sha256sum | cut -d' ' -f1)" \
	"$(linux_field disks WROTE)"
expect_eq "disks: the write to the scratch disk succeeded" "$(linux_field disks SCRATCH)" ok
expect_eq "disks: read-only disk is read-only in Linux" "$(linux_field disks RO-FLAG)" 1
# The device says read-only (VIRTIO_BLK_F_RO), so Linux fails the write itself
# (EPERM) and never sends it; the device's own refusal of a write that does
# come is virtio_devices' check, with the test guest.
expect_eq "disks: a write to the read-only disk fails at once" \
	"$(linux_field disks RO-OPEN)" "refused: dd: error writing '/dev/vdc': Operation not permitted"
expect_eq "disks: read-only disk unchanged on the host" "$(sha256sum <"$TMP/ro.img")" "$ro_before"
expect_eq "disks: the script ran to its end" "$(linux_field disks TEST-END)" 0
[ -s "$TMP/disks.err" ] && cat "$TMP/disks.err" >&2
finish
