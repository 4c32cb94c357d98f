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
