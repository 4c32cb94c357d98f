# What KVM this host offers (sourced by scripts/run-tests.sh, scripts/on-kvm.sh
# and the integration tests' lib.sh).

# kvm_usable: /dev/kvm exists and opens read-write (PVM included).
kvm_usable() {
	[ -c /dev/kvm ] && (: <>/dev/kvm) 2>/dev/null
}

# hardware_virtualization: KVM runs on VT-x or AMD-V. On PVM hosts (kvm_pvm,
# no vmx/svm flag) guest ring-0 code is emulated and Linux stops seconds into
# its boot (../shared/docs/HOST.md).
hardware_virtualization() {
	grep -qw -e vmx -e svm /proc/cpuinfo &&
		{ [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }
}

# kvm_platform: the KVM a run uses, as results and logs name it: the nested
# platform's name (scripts/nested-kvm.sh exports it), else "native (MODULES)".
kvm_platform() {
	if [ -n "${SNAPVM_PLATFORM:-}" ]; then
		echo "$SNAPVM_PLATFORM"
	else
		echo "native ($(ls /sys/module | grep -E '^kvm_' | tr '\n' ' ' | sed 's/ $//'))"
	fi
}
