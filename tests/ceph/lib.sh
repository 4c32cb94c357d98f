# Shared by the RADOS store's tests (sourced after tests/integration/lib.sh):
# each test starts its own throwaway cluster (tests/ceph/cluster.sh) and
# tears it down on exit, so that a test that kills OSDs harms no other.
# The cluster's files go under $TMP, a local file system on the host and in
# the nested platform's L1 alike (the daemons make unix sockets there, which
# the L1's 9p shares of the build directory cannot hold).

CLUSTER="$SRC/tests/ceph/cluster.sh"

# ceph_up: starts the cluster; sets CEPH_DIR, CEPH_CONF and CEPH_POOL. Skips
# (with the reason) where the Ceph daemons are not installed.
ceph_up() {
	local out
	for tool in ceph-mon ceph-mgr ceph-osd ceph; do
		command -v $tool >/dev/null ||
			skip "$tool is not installed (scripts/install-deps.sh installs the Ceph packages)"
	done
	CEPH_DIR=$(mktemp -d "$TMP/ceph.XXXXXX")
	trap 'kill -9 $(jobs -p) 2>/dev/null; ceph_down; rm -rf "$TMP"' EXIT
	local start=$SECONDS
	out=$("$CLUSTER" up "$CEPH_DIR") || {
		echo "FAIL: the test cluster did not start" >&2
		tail -n 20 "$CEPH_DIR"/log/*.log >&2 2>/dev/null
		exit 1
	}
	CEPH_CONF=$(sed -n 1p <<<"$out")
	CEPH_POOL=$(sed -n 's/^pool //p' <<<"$out")
	echo "cluster up in $((SECONDS - start)) s: $CEPH_CONF, pool $CEPH_POOL"
}

ceph_down() {
	[ -n "${CEPH_DIR:-}" ] && "$CLUSTER" down "$CEPH_DIR"
	CEPH_DIR=
}

# rados_store HOST: the store spec of "host" HOST, with a cache directory of its own.
rados_store() {
	echo "rados:$CEPH_POOL?conf=$CEPH_CONF&cache=$TMP/host-$1"
}
