#!/bin/bash
# The main job, end to end: boot the test guest, talk to it, and show the
# boot time beside QEMU microvm's. $1 = build directory.
set -euo pipefail
BUILD=${1:-build}
SNAPVM="$BUILD/snapvm"
GUEST="$BUILD/guest/snapguest.elf"

step() { printf '\n== %s\n' "$*"; }

step "boot the test guest (128 MiB, 16 MiB heap) and send it requests"
printf 'ping\ntouch 100 7\ncpus\nexit 3\n' |
	"$SNAPVM" run --kernel "$GUEST" --mem 128M --cpus 2 --cmdline heap=16M || rc=$?
echo "snapvm exited with ${rc:-0} (the guest asked for 3)"

step "boot time, snapvm beside QEMU microvm (10 runs each)"
"$SNAPVM" bench boot --runs 10 --vs-qemu
