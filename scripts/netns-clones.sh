#!/bin/sh
# Network namespaces for clones, one TAP device in each (Firecracker's recipe):
# clones of one snapshot share the guest's MAC and IP address, so each gets a
# network of its own, all alike.
#
#   scripts/netns-clones.sh up N [PREFIX [TAP [ADDR]]]
#   scripts/netns-clones.sh down N [PREFIX]
#
# `up` makes namespaces PREFIX0 .. PREFIX(N-1) (default snapvm), each with its
# loopback up and a TAP device TAP (default tap0) holding the host's address
# ADDR (default 192.0.2.1/24), and prints their paths. Then:
#
#   snapvm restore NAME --clones N --netns /run/netns/PREFIX%i
#   ip netns exec PREFIX0 ping 192.0.2.2
#
# `down` removes them (with their TAP devices). Needs root (CAP_SYS_ADMIN and
# CAP_NET_ADMIN); it never touches the interfaces of the namespace it runs in.
set -eu

usage() {
	echo "usage: $0 up N [PREFIX [TAP [ADDR]]] | down N [PREFIX]" >&2
	exit 2
}

[ $# -ge 2 ] || usage
action=$1
count=$2
prefix=${3:-snapvm}
tap=${4:-tap0}
addr=${5:-192.0.2.1/24}
case $count in '' | *[!0-9]*) usage ;; esac

i=0
while [ "$i" -lt "$count" ]; do
	ns=$prefix$i
	case $action in
	up)
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		ip -n "$ns" tuntap add mode tap name "$tap"
		ip -n "$ns" addr add "$addr" dev "$tap"
		ip -n "$ns" link set "$tap" up
		echo "/run/netns/$ns"
		;;
	down)
		ip netns del "$ns" 2>/dev/null || true
		;;
	*)
		usage
		;;
	esac
	i=$((i + 1))
done
