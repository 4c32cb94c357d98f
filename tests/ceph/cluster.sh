#!/bin/sh
# A throwaway Ceph cluster on this machine for the RADOS store's tests: one
# monitor, one manager and three memstore OSDs on 127.0.0.1, cephx off, and
# one pool of size 2. No systemd: the daemons run directly, their state in DIR.
#
#   cluster.sh up [DIR]     start it; prints the absolute path of ceph.conf
#                           and a line "pool NAME"
#   cluster.sh down [DIR]   stop it and delete DIR
#   cluster.sh kill-osd N [DIR]   SIGKILL OSD N (0..2), for failure tests
#   cluster.sh stop-osds [DIR]    SIGSTOP every OSD (they hang, like a partition)
#   cluster.sh cont-osds [DIR]    SIGCONT them again
#
# DIR defaults to $SNAPVM_CEPH_DIR or ./ceph-cluster. The daemons put unix
# sockets there: it must be on a local file system (inside the nested
# platform's L1, its private /tmp, not the build directory shared over 9p).
set -eu

POOL=snapvm
OSDS=3
cmd=${1:-}
[ $# -gt 0 ] && shift

die() {
	echo "cluster.sh: $*" >&2
	exit 1
}

dir_arg() {
	d=${1:-${SNAPVM_CEPH_DIR:-./ceph-cluster}}
	mkdir -p "$d"
	(cd "$d" && pwd)
}

# A TCP port nobody listens on, from the kernel's ephemeral range.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pids() {
	cat "$1"/run/*.pid 2>/dev/null || true
}

cluster_down() {
	d=$1
	for p in $(pids "$d"); do
		kill -CONT "$p" 2>/dev/null || true
		kill -KILL "$p" 2>/dev/null || true
	done
	# memstore holds everything in memory: nothing else to flush
	rm -rf "$d"
}

# Runs one daemon in the background, its pid in run/NAME.pid, its log in log/NAME.log.
daemon_start() {
	d=$1
	name=$2
	shift 2
	"$@" -f -c "$d/ceph.conf" >"$d/log/$name.out" 2>&1 &
	echo $! >"$d/run/$name.pid"
}

wait_for() {
	what=$1
	shift
	i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 450 ] || die "timed out waiting for $what (logs in $d/log)"
		sleep 0.2
	done
}

cluster_up() {
	d=$1
	[ -e "$d/ceph.conf" ] && cluster_down "$d" && mkdir -p "$d"
	for tool in ceph-mon ceph-mgr ceph-osd ceph monmaptool; do
		command -v $tool >/dev/null || die "$tool is missing (scripts/install-deps.sh installs ceph-mon, ceph-mgr, ceph-osd)"
	done
	mkdir -p "$d/run" "$d/log" "$d/mon" "$d/mgr"
	port=$(free_port)
	fsid=$(cat /proc/sys/kernel/random/uuid)
	cat >"$d/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$port
public network = 127.0.0.1/32
auth cluster required = none
auth service required = none
auth client required = none
ms bind ipv4 = true
ms bind ipv6 = false
ms bind msgr1 = false
run dir = $d/run
crash dir = $d/log
mon data = $d/mon/\$id
mgr data = $d/mgr/\$id
osd data = $d/osd\$id
osd objectstore = memstore
memstore device bytes = 4294967296
osd pool default size = 2
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
osd op num shards = 1
osd op num threads per shard = 2
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon osd down out interval = 0
osd heartbeat grace = 4
osd heartbeat interval = 1
mon osd min down reporters = 1
mon osd reporter subtree level = osd
osd max write size = 128
osd memory target = 939524096
osd class load list = *
osd class default list = *
mgr initial modules =
mon data avail warn = 1
mon data avail crit = 1

# daemons only: clients (snapvm, the tests) leave no logs or sockets behind
[mon]
admin socket = $d/run/\$name.asok
log file = $d/log/\$name.log
pid file = $d/run/\$name.daemon.pid
[mgr]
admin socket = $d/run/\$name.asok
log file = $d/log/\$name.log
pid file = $d/run/\$name.daemon.pid
[osd]
admin socket = $d/run/\$name.asok
log file = $d/log/\$name.log
pid file = $d/run/\$name.daemon.pid
[client]
admin socket =
log file =
EOF
	monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" "$d/monmap" >/dev/null
	ceph-mon --mkfs -i a --monmap "$d/monmap" -c "$d/ceph.conf" >"$d/log/mkfs-mon.out" 2>&1 ||
		die "ceph-mon --mkfs failed: $(tail -3 "$d/log/mkfs-mon.out")"
	daemon_start "$d" mon.a ceph-mon -i a
	wait_for "the monitor" ceph -c "$d/ceph.conf" --connect-timeout 5 mon stat
	mkdir -p "$d/mgr/x"
	daemon_start "$d" mgr.x ceph-mgr -i x
	i=0
	while [ $i -lt $OSDS ]; do
		uuid=$(cat /proc/sys/kernel/random/uuid)
		id=$(ceph -c "$d/ceph.conf" osd new "$uuid")
		mkdir -p "$d/osd$id"
		ceph-osd -c "$d/ceph.conf" -i "$id" --mkfs --osd-uuid "$uuid" >"$d/log/mkfs-osd$id.out" 2>&1 ||
			die "ceph-osd --mkfs failed: $(tail -3 "$d/log/mkfs-osd$id.out")"
		daemon_start "$d" osd.$id ceph-osd -i "$id"
		i=$((i + 1))
	done
	wait_for "three OSDs up" sh -c "ceph -c '$d/ceph.conf' osd stat | grep -q '$OSDS up'"
	ceph -c "$d/ceph.conf" osd pool create $POOL 32 32 >/dev/null 2>&1
	ceph -c "$d/ceph.conf" osd pool set $POOL size 2 >/dev/null 2>&1
	ceph -c "$d/ceph.conf" osd pool application enable $POOL snapvm >/dev/null 2>&1
	wait_for "the pool's placement groups" sh -c \
		"ceph -c '$d/ceph.conf' pg stat | grep -Eq '^([0-9]+) pgs: \\1 active\\+clean;'"
	echo "$d/ceph.conf"
	echo "pool $POOL"
}

osd_signal() {
	d=$1
	sig=$2
	for f in "$d"/run/osd.*.pid; do
		[ -e "$f" ] && kill "-$sig" "$(cat "$f")" 2>/dev/null || true
	done
}

case $cmd in
up)
	cluster_up "$(dir_arg "${1:-}")"
	;;
down)
	cluster_down "$(dir_arg "${1:-}")"
	;;
kill-osd)
	[ $# -ge 1 ] || die "usage: cluster.sh kill-osd N [DIR]"
	d=$(dir_arg "${2:-}")
	[ -e "$d/run/osd.$1.pid" ] || die "no OSD $1 in $d"
	kill -KILL "$(cat "$d/run/osd.$1.pid")"
	;;
stop-osds)
	osd_signal "$(dir_arg "${1:-}")" STOP
	;;
cont-osds)
	osd_signal "$(dir_arg "${1:-}")" CONT
	;;
*)
	die "usage: cluster.sh up|down|kill-osd N|stop-osds|cont-osds [DIR]"
	;;
esac
