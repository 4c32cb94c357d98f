#!/bin/bash
# Runs COMMAND (from the repository root) where KVM is: here when /dev/kvm
# works, else on the nested platform (scripts/nested-kvm.sh: AMD SVM under
# QEMU's TCG), saying so in one line. `make demo` and `make bench` go
# through it, so they work on a host without KVM too, only slower.
#
# usage: scripts/on-kvm.sh [--nested] COMMAND [ARGS...]
#   --nested   the nested platform even where /dev/kvm works
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/kvm-detect.sh"

nested=0
if [ "${1:-}" = --nested ]; then
	nested=1
	shift
fi
if [ $# -eq 0 ] || [ "$1" = --help ] || [ "$1" = -h ]; then
	sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//'
	[ $# -gt 0 ]
	exit
fi
cd "$(dirname "$HERE")"
if [ $nested = 0 ] && kvm_usable; then
	exec "$@"
fi
if [ $nested = 0 ]; then
	echo "on-kvm: no usable /dev/kvm here: running on the nested platform (AMD SVM" \
		"under QEMU TCG: slower, and only ratios mean anything)" >&2
fi
exec "$HERE/nested-kvm.sh" -- "$@"
