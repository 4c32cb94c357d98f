#!/bin/bash
# The main job, end to end: boot the test guest once, snapshot it when it is
# ready, restore clones that carry on where it was, and show the timings
# beside QEMU microvm's. $1 = build directory.
set -euo pipefail
BUILD=${1:-build}
SNAPVM="$BUILD/snapvm"
GUEST="$BUILD/guest/snapguest.elf"
STORE=$(mktemp -d /tmp/snapvm-demo.XXXXXX)
trap 'rm -rf "$STORE"' EXIT
export SNAPVM_STORE="$STORE"

step() { printf '\n== %s\n' "$*"; }

step "boot the test guest (128 MiB, a 64 MiB heap it fills at start-up) and snapshot it at READY"
"$SNAPVM" -v run --kernel "$GUEST" --mem 128M --cmdline heap=64M --snapshot-on-ready fn </dev/null
"$SNAPVM" ls

step "restore 3 clones: the same answers as the original, each its own generation id"
printf 'touch 100 7\ngen\nexit 0\n' | "$SNAPVM" restore fn --clones 3

step "one request to a fresh clone, timed"
"$SNAPVM" invoke --json fn touch 100 7

step "boot and restore times, snapvm beside QEMU microvm (10 runs each)"
"$SNAPVM" bench boot --runs 10 --vs-qemu
"$SNAPVM" bench restore --runs 10 --vs-qemu
