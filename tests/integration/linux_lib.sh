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

# hardware_virtualization: true when KVM runs on VT-x or AMD-V. On PVM hosts
# (kvm_pvm, no vmx/svm flag) guest ring-0 code is emulated and Linux stops
# seconds into its boot (../shared/docs/HOST.md).
hardware_virtualization() {
	local flags

	flags=$(grep -cw -e vmx -e svm /proc/cpuinfo)
	[ "${flags:-0}" -gt 0 ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }
}

# kvm_flavour: what the skip messages name.
kvm_flavour() {
	ls /sys/module | grep -E '^kvm_' | tr '\n' ' '
}
