# Helpers for the tests that boot the project's Linux guest (sourced after lib.sh).

# linux_images: makes sure the guest images exist (built once into the cache
# outside the source tree; see guest/linux/build.sh) and sets VMLINUX, BZIMAGE
# INITRAMFS, ROOTFS and HELPER.
linux_images() {
	local dir="$BUILD/guest/linux"

	if ! "$SRC/guest/linux/build.sh" "$dir" >"$TMP/linux-build.log" 2>&1; then
		cat "$TMP/linux-build.log" >&2
		echo "FAIL: cannot build the Linux guest images" >&2
		exit 1
	fi
	VMLINUX="$dir/vmlinux"
	BZIMAGE="$dir/bzImage"
	INITRAMFS="$dir/initramfs.cpio"
	ROOTFS="$dir/rootfs.ext4" # shared: a test that writes to it works on a copy
	HELPER="$dir/snapvm-helper" # also runs on the host: the echo servers
}

# require_hardware_virtualization: for the tests that boot Linux fully.
require_hardware_virtualization() {
	require_kvm
	hardware_virtualization || missing "no hardware virtualization here (KVM:" \
		"$(kvm_platform)): Linux cannot reach its init on PVM, where ring-0 code is emulated"
}

# linux_converse NAME REQUESTS ARGS...: runs `snapvm run --initrd INITRAMFS
# ARGS...` with its console on a coprocess and talks the init's protocol:
# once the init says READY, sends each line of REQUESTS after the reply to
# the one before. A last request that gets no reply (`exit`) waits for the
# VM to end; one that does ends the conversation, and the VM is stopped. Sets
# REPLIES (the lines after READY, space-separated), GOT_READY (1 or empty)
# and RC (snapvm's exit status). Console in $TMP/NAME.out, snapvm's
# messages in $TMP/NAME.err; the whole conversation gets at most BOUND s.
linux_converse() {
	local name=$1 line pid from to deadline=$((SECONDS + BOUND))
	local -a requests
	mapfile -t requests <<<"$2"
	shift 2
	REPLIES="" GOT_READY=""
	coproc GUEST { exec "$SNAPVM" run --initrd "$INITRAMFS" "$@" 2>"$TMP/$name.err"; }
	# bash forgets a coprocess's descriptors and pid once it ends: keep copies
	pid=$GUEST_PID
	exec {from}<&"${GUEST[0]}" {to}>&"${GUEST[1]}"
	while [ $SECONDS -lt $deadline ] && IFS= read -r -t $((deadline - SECONDS)) line <&$from; do
		line=${line%$'\r'}
		echo "$line" >>"$TMP/$name.out"
		if [ -z "$GOT_READY" ]; then
			[ "$line" = READY ] || continue
			GOT_READY=1
		else
			# the init's replies; anything else on the console is the kernel's
			[[ "$line" =~ ^(PONG|CPUS|OK|ERR) ]] || continue
			REPLIES="${REPLIES:+$REPLIES }$line"
		fi
		[ ${#requests[@]} -gt 0 ] || break
		echo "${requests[0]}" >&$to
		requests=("${requests[@]:1}")
	done
	exec {from}<&- {to}>&-
	kill "$pid" 2>/dev/null
	wait "$pid"
	RC=$?
}

# The device tests run a script inside Linux: the guest's /init runs /test.sh
# when there is one, prints "TEST-END <status>", and ends the VM.

# linux_script_initrd NAME SCRIPT: $TMP/NAME.cpio, the guest's initramfs with
# SCRIPT as /test.sh (Linux unpacks concatenated archives in order).
linux_script_initrd() {
	local dir="$TMP/$1.root"
	mkdir -p "$dir"
	printf '#!/bin/sh\n%s\n' "$2" >"$dir/test.sh"
	chmod 0755 "$dir/test.sh"
	(cd "$dir" && echo test.sh | cpio -o -H newc -R 0:0 --quiet) >"$TMP/$1.extra.cpio"
	cat "$INITRAMFS" "$TMP/$1.extra.cpio" >"$TMP/$1.cpio"
}

# linux_script_disk NAME SCRIPT: $TMP/NAME.ext4, a copy of the guest's root
# disk with SCRIPT as /test.sh (written by debugfs: no mount, no root).
linux_script_disk() {
	printf '#!/bin/sh\n%s\n' "$2" >"$TMP/$1.test.sh"
	cp "$ROOTFS" "$TMP/$1.ext4"
	debugfs -w -R "write $TMP/$1.test.sh test.sh" "$TMP/$1.ext4" >/dev/null 2>&1 &&
		debugfs -w -R "sif test.sh mode 0100755" "$TMP/$1.ext4" >/dev/null 2>&1 ||
		{ echo "FAIL: debugfs cannot write $TMP/$1.ext4" >&2 && exit 1; }
}

# linux_start NAME ARGS...: `snapvm ARGS...` in the background, console in
# $TMP/NAME.out, messages in $TMP/NAME.err, input from $LINUX_INPUT
# (default /dev/null); sets LINUX_PID.
linux_start() {
	local name=$1
	shift
	: >"$TMP/$name.out"
	"$SNAPVM" "$@" <"${LINUX_INPUT:-/dev/null}" >"$TMP/$name.out" 2>"$TMP/$name.err" &
	LINUX_PID=$!
}

# linux_wait NAME REGEX: waits (BOUND s at most) for a console line that
# matches REGEX while the VM runs; 0 when it came.
linux_wait() {
	local deadline=$((SECONDS + BOUND))
	while [ $SECONDS -lt $deadline ]; do
		grep -qE -- "$2" "$TMP/$1.out" && return 0
		kill -0 "$LINUX_PID" 2>/dev/null || break
		sleep 0.2
	done
	grep -qE -- "$2" "$TMP/$1.out"
}

# linux_end NAME: waits for the VM that linux_start began (BOUND s, then it
# is killed); sets RC to snapvm's exit status.
linux_end() {
	local deadline=$((SECONDS + BOUND))
	while kill -0 "$LINUX_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
		sleep 0.2
	done
	kill -0 "$LINUX_PID" 2>/dev/null && { echo "$1: still running after $BOUND s: killed" >&2 &&
		kill -9 "$LINUX_PID"; }
	wait "$LINUX_PID"
	RC=$?
}

# linux_test NAME SCRIPT ARGS...: boots the Linux guest with SCRIPT as its
# /test.sh and `snapvm run ARGS...`, and waits for the end; sets RC.
linux_test() {
	local name=$1
	linux_script_initrd "$name" "$2"
	shift 2
	linux_start "$name" run --kernel "$BZIMAGE" --initrd "$TMP/$name.cpio" "$@"
	linux_end "$name"
}

# linux_field NAME WORD: the rest of the last console line that starts with WORD.
linux_field() {
	tr -d '\r' <"$TMP/$1.out" | sed -n "s/^$2 //p" | tail -n 1
}

# control_request SOCKET LINE: one request to snapvm's control socket
# (--api-sock); prints the reply line.
control_request() {
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
print(s.makefile().readline().strip())' "$1" "$2"
}
