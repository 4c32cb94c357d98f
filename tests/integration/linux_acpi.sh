#!/bin/bash
# Linux finds snapvm's machine through ACPI, with no virtio_mmio.device=
# words: Debian's stock cloud kernel (its virtio, button and evdev drivers
# loaded as modules from the initramfs) and the project's kernel each find
# two disks (serials and contents), the entropy device, the virtio console
# and every vCPU; power off on the ACPI power button (the control socket's
# stop) with status 0; and, snapshotted once, give three clones three VM
# generation ids (read where the DSDT's ADDR points, through /dev/mem) and,
# where the kernel has the vmgenid driver (the project's; Debian's cloud
# kernel has none), three different /dev/urandom outputs right after the
# restore: the VMGenID notify reseeded each clone's RNG. A kernel panic ends
# the VM with status 3 (pvpanic). The guest's /init
# is linux_acpi_init.sh. Needs KVM on VT-x/AMD-V (or the nested platform).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/linux_lib.sh"
require_hardware_virtualization
KERNELS=${SNAPVM_ACPI_TEST_KERNELS:-project stock} # both, unless a developer picks one
case " $KERNELS " in *" project "*) linux_images ;; esac
STOCK="$BUILD/guest/debian-cloud"
[ -e "$STOCK/vmlinuz" ] || "$SRC/scripts/debian-kernel.sh" cloud-amd64 "$STOCK" ||
	{ echo "FAIL: cannot fetch Debian's cloud kernel" >&2; exit 1; }
export SNAPVM_STORE="$TMP/store"
BOUND=${SNAPVM_TEST_BOUND:-240} # seconds for one boot, however slow the host
# the stock kernel's drivers, as modules (with what they need, from modules.dep)
STOCK_MODULES="virtio_mmio virtio_blk virtio-rng virtio_console button evdev pvpanic-mmio"

# module_paths DIR NAME...: each module's path under DIR and its dependencies', in load order.
module_paths() {
	local dir=$1 name line path
	shift
	for name in "$@"; do
		line=$(grep -E "/$name\.ko(\.[a-z]+)?:" "$dir/modules.dep") ||
			{ echo "FAIL: no module $name in $dir" >&2; return 1; }
		path=${line%%:*}
		# modules.dep lists what a module needs last-loaded first
		echo "${line#*:}" | tr ' ' '\n' | sed '/^$/d' | tac
		echo "$path"
	done | awk '!seen[$0]++'
}

# initramfs OUT [MODULES_DIR]: busybox, the test's /init and the listed modules.
initramfs() {
	local out=$1 modules=${2:-} stage=$TMP/stage m
	rm -rf "$stage"
	mkdir -p "$stage/bin" "$stage/etc" "$stage/proc" "$stage/sys" "$stage/dev" "$stage/lib/modules"
	cp /bin/busybox "$stage/bin/busybox"
	# the ready code on snapvm's control port (a shell cannot do port I/O,
	# without /dev/port, which the stock kernel's clone did not get through);
	# static, like guest/linux's helper
	cat >"$TMP/ready.c" <<-'EOF'
		#include <stdio.h>
		#include <sys/io.h>
		int main(void)
		{
			if (ioperm(0x600, 4, 1) < 0) {
				perror("acpitest-ready: ioperm");
				return 1;
			}
			outl(1, 0x600);
			return 0;
		}
	EOF
	gcc -static -Os -s -o "$stage/bin/acpitest-ready" "$TMP/ready.c" ||
		{ echo "FAIL: cannot build the ready helper (libc6-dev)" >&2; exit 1; }
	install -m 0755 "$SRC/tests/integration/linux_acpi_init.sh" "$stage/init"
	if [ -n "$modules" ]; then
		module_paths "$modules" $STOCK_MODULES >"$TMP/modules.list" || exit 1
		while read -r m; do
			mkdir -p "$stage/lib/modules/$(dirname "$m")"
			cp "$modules/$m" "$stage/lib/modules/$m"
		done <"$TMP/modules.list"
		cp "$TMP/modules.list" "$stage/etc/acpitest-modules"
	fi
	(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$out"
}

# wait_line FILE PATTERN PID: until FILE has a line matching PATTERN; false if PID ends first.
wait_line() {
	local deadline=$((SECONDS + BOUND))
	until tr -d '\r' <"$1" | grep -qE "$2"; do
		kill -0 "$3" 2>/dev/null && [ $SECONDS -lt $deadline ] || return 1
		sleep 0.2
	done
}

# devices_and_power NAME KERNEL INITRD CPUS: boots, checks what the guest found, presses the power button.
devices_and_power() {
	local name=$1 kernel=$2 initrd=$3 cpus=$4 out=$TMP/$1.out pid rc reply
	: >"$out"
	"$SNAPVM" -v run --kernel "$kernel" --initrd "$initrd" --mem 256M --cpus "$cpus" \
		--console virtio --rng --disk "$TMP/a.img,id=SERIAL-A" --disk "$TMP/b.img,id=SERIAL-B" \
		--api-sock "$TMP/$name.sock" --cmdline "acpitest=power quiet" \
		</dev/null >"$out" 2>"$TMP/$name.err" &
	pid=$!
	if wait_line "$out" "^POWER-READY" $pid; then
		reply=$(control_request "$TMP/$name.sock" stop)
		expect_eq "$name: stop answered" "$reply" "ok stopping"
	fi
	wait_timeout $pid
	rc=$?
	expect_eq "$name: powered off on the power button (exit status)" "$rc" 0
	expect_eq "$name: vCPUs" "$(line_of "$out" CPUS)" "CPUS $cpus"
	expect_eq "$name: disk vda" "$(line_of "$out" 'DISK vda')" "DISK vda SERIAL-A disk-a-1"
	expect_eq "$name: disk vdb" "$(line_of "$out" 'DISK vdb')" "DISK vdb SERIAL-B disk-b-2"
	expect_eq "$name: entropy device" "$(line_of "$out" RNG)" "RNG virtio_rng.0"
	expect_eq "$name: virtio console" "$(line_of "$out" CONSOLE)" "CONSOLE hvc0"
	expect_eq "$name: no virtio_mmio.device= words" "$(line_of "$out" CMDLINE-HAS)" ""
	expect_eq "$name: no module failed" "$(line_of "$out" INSMOD-FAILED)" ""
	expect_eq "$name: the button pressed" "$(line_of "$out" POWER-PRESSED)" "POWER-PRESSED"
	grep -q "guest powered off (ACPI S5)" "$TMP/$name.err" ||
		fail "$name: snapvm did not see the ACPI power-off"
	[ $FAILURES = 0 ] || tail -n 40 "$out" "$TMP/$name.err" >&2
}

# line_of FILE PREFIX: the first console line starting with PREFIX, without CR.
line_of() {
	tr -d '\r' <"$1" | grep -m1 "^$2" || true
}

# wait_timeout PID: its exit status, or 124 after BOUND s (it is killed).
wait_timeout() {
	local deadline=$((SECONDS + BOUND))
	while kill -0 "$1" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
	kill -0 "$1" 2>/dev/null && { kill -9 "$1"; wait "$1"; return 124; }
	wait "$1"
}

# panics NAME KERNEL INITRD: a kernel panic ends the VM with pvpanic's status.
panics() {
	local name=$1 rc
	timeout $BOUND "$SNAPVM" run --kernel "$2" --initrd "$3" --mem 256M --console virtio --rng \
		--disk "$TMP/a.img" --disk "$TMP/b.img" --cmdline "acpitest=panic quiet" \
		</dev/null >"$TMP/$name.out" 2>"$TMP/$name.err"
	rc=$?
	expect_eq "$name: a kernel panic ends the VM with status 3 (pvpanic)" "$rc" 3
	grep -q "guest kernel panicked (pvpanic)" "$TMP/$name.err" ||
		fail "$name: no 'guest kernel panicked (pvpanic)' on stderr"
	[ "$rc" = 3 ] || tail -n 20 "$TMP/$name.out" "$TMP/$name.err" >&2
}

# clones NAME KERNEL INITRD MODE: the guest has itself snapshotted (its ready
# code); three clones of it, one after the other, print their ids and RNG
# output and power off.
clones() {
	local name=$1 kernel=$2 initrd=$3 mode=$4 out=$TMP/$1.out rc
	timeout $BOUND "$SNAPVM" run --kernel "$kernel" --initrd "$initrd" --mem 256M \
		--console virtio --rng --disk "$TMP/a.img" --disk "$TMP/b.img" \
		--snapshot-on-ready "$name" --cmdline "acpitest=$mode quiet" \
		</dev/null >"$out" 2>"$TMP/$name.err"
	expect_eq "$name: snapshot at the guest's ready code, VM stopped" "$?" 0
	# one at a time, memory loaded before they run: each gets to its first
	# read within milliseconds of guest time, with nothing in between that
	# would make its RNG output differ from its siblings' by chance (three
	# clones at once, paging lazily, were seen to differ without the notify)
	: >"$TMP/$name.clones"
	for i in 0 1 2; do
		timeout $BOUND "$SNAPVM" restore "$name" --memory eager --console stdio \
			--disk "$TMP/a.img" --disk "$TMP/b.img" </dev/null \
			2>>"$TMP/$name.clones.err" | sed "s/^/[$i] /" >>"$TMP/$name.clones"
		rc=${PIPESTATUS[0]}
		expect_eq "$name: clone $i powered off" "$rc" 0
	done
	CLONE_IDS=$(clone_values "$name" GENID)
	CLONE_RANDOM=$(clone_values "$name" RANDOM)
	BOOT_ID=$(line_of "$out" GENID-BOOT)
	tr -d '\r' <"$TMP/$name.clones" | grep -q "\] GENID ${BOOT_ID#GENID-BOOT }" &&
		fail "$name: a clone kept the snapshot's generation id"
	echo "   $name: $(tr -d '\r' <"$TMP/$name.clones" | grep -E '\] (GENID|RANDOM) ' | sort | tr '\n' ' ')"
	[ "$CLONE_IDS" = 3 ] && [ "$FAILURES" = 0 ] ||
		tail -n 30 "$out" "$TMP/$name.err" "$TMP/$name.clones" "$TMP/$name.clones.err" >&2
}

# clone_values NAME WORD: how many different WORD values the clones printed.
clone_values() {
	tr -d '\r' <"$TMP/$1.clones" | sed -n "s/^\[[0-9]*\] $2 //p" | sort -u | grep -c . || true
}

dd if=/dev/zero of="$TMP/a.img" bs=1M count=1 status=none
dd if=/dev/zero of="$TMP/b.img" bs=1M count=1 status=none
printf 'disk-a-1' | dd of="$TMP/a.img" conv=notrunc status=none
printf 'disk-b-2' | dd of="$TMP/b.img" conv=notrunc status=none
initramfs "$TMP/project.cpio"
initramfs "$TMP/stock.cpio" "$STOCK/modules"
echo "kernels: $KERNELS; stock: $(cat "$STOCK/version")"

for k in $KERNELS; do
	if [ $k = project ]; then
		kernel=$BZIMAGE initrd=$TMP/project.cpio
	else
		kernel=$STOCK/vmlinuz initrd=$TMP/stock.cpio
	fi
	devices_and_power $k-2cpu "$kernel" "$initrd" 2
	[ $k = project ] && devices_and_power $k-4cpu "$kernel" "$initrd" 4
	panics $k-panic "$kernel" "$initrd"
	clones $k-clone "$kernel" "$initrd" clone
	expect_eq "$k: three clones, three generation ids" "$CLONE_IDS" 3
	if [ $k = project ]; then
		expect_eq "$k: three clones, three /dev/urandom outputs" "$CLONE_RANDOM" 3
	fi
done
finish
