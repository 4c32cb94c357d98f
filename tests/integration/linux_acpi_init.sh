#!/bin/busybox sh
# /init of linux_acpi.sh's initramfs: reports what the kernel found through
# ACPI, then waits for the power button (acpitest=power), has itself
# snapshotted and, in each clone, reads its RNG (acpitest=clone), or panics
# (acpitest=panic).
# Busybox only.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
# a stock kernel's drivers are modules, listed in load order
for m in $(cat /etc/acpitest-modules 2>/dev/null); do
	insmod "/lib/modules/$m" || echo "INSMOD-FAILED $m"
done
mode=$(sed -n 's/.*acpitest=\([a-z-]*\).*/\1/p' /proc/cmdline)
# the devices probe as their drivers load; wait for them (the test bounds the wait)
until [ -e /sys/block/vdb ] && [ -e /sys/class/misc/hw_random/rng_current ]; do sleep 0.1; done
echo "CPUS $(grep -c '^processor' /proc/cpuinfo)"
for d in vda vdb; do
	echo "DISK $d $(cat /sys/block/$d/serial) $(head -c 8 /dev/$d)"
done
echo "RNG $(cat /sys/class/misc/hw_random/rng_current)"
[ -e /sys/class/tty/hvc0 ] && echo "CONSOLE hvc0"
grep -q virtio_mmio.device= /proc/cmdline && echo "CMDLINE-HAS-VIRTIO-WORDS"

genid() { dd if=/dev/mem bs=16 skip=$((0xef000 / 16)) count=1 2>/dev/null | od -An -tx1 | tr -d ' \n'; }
forks() { dmesg | grep -c "crng reseeded due to virtual machine fork"; }

case "$mode" in
power)
	for e in /sys/class/input/event*; do
		grep -q "Power Button" "$e/device/name" 2>/dev/null && ev=/dev/input/${e##*/}
	done
	echo "POWER-READY ${ev:-none}"
	# the first input event is the button's press: then power off, as a
	# distribution's logind would
	head -c 1 "$ev" >/dev/null
	echo "POWER-PRESSED"
	poweroff -f
	;;
panic)
	# pvpanic tells snapvm before panic=-1 would reboot
	echo "PANIC-NOW"
	echo c >/proc/sysrq-trigger
	;;
clone*)
	[ -d /sys/bus/acpi/drivers/vmgenid ] && vmgenid=1 || echo "NO-VMGENID-DRIVER"
	boot=$(genid)
	echo "GENID-BOOT $boot"
	# Linux reseeds its RNG from the input pool once the seed is older than
	# a second or more (crng_has_old_seed): read now, so that the seed is
	# fresh when snapvm snapshots the guest a few microseconds later, and a
	# clone's first read gets no time-based reseed. Then the ready code
	# (control port 0x600) makes snapvm --snapshot-on-ready take it here.
	# /dev/random first: it blocks until the RNG is ready, after which only
	# time (or a notify) reseeds it. In its first two minutes of uptime
	# Linux reseeds every few seconds; after them once a minute. A clone
	# that runs slowly (three at once on the nested platform) would
	# otherwise get a time-based reseed before its first read, and differ
	# from its siblings with or without the notify.
	head -c 1 /dev/random >/dev/null
	if [ -n "${vmgenid:-}" ]; then
		until [ "$(cut -d. -f1 /proc/uptime)" -ge 121 ]; do sleep 1; done
	fi
	head -c 16 /dev/urandom >/dev/null
	/bin/acpitest-ready
	# a clone goes on here, with the id snapvm wrote before its vCPUs ran
	until [ "$(genid)" != "$boot" ]; do :; done
	# the VMGenID notify reseeds the RNG (Linux logs it); clone-nowait reads
	# at once, to see what a clone without the notify would get
	if [ -n "${vmgenid:-}" ] && [ "$mode" = clone ]; then
		until [ "$(forks)" -ge 1 ]; do sleep 0.05; done
	fi
	echo "RANDOM $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	echo "GENID $(genid)"
	poweroff -f
	;;
esac
echo "NO-MODE"
poweroff -f
