# Helpers for the tests that boot the project's Linux guest (sourced after lib.sh).

# linux_images: makes sure the guest images exist (built once into the cache
# outside the source tree; see guest/linux/build.sh) and sets VMLINUX, BZIMAGE
# and INITRAMFS.
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
