/* The VM: KVM set-up, devices, kernel loading, and the life cycle. */
#include "vmm/vm_internal.h"
#include "vmm/arch/x86/x86.h"
#include "vmm/hw/acpi_ports.h"
#include "vmm/hw/ged.h"
#include "vmm/net/backend.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define KVM_TSS_ADDR	      0xfffbd000 /* three pages Intel's KVM needs for real mode */
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000

void vmm_config_init(struct vmm_config *config)
{
	*config = (struct vmm_config){
		.cmdline = "",
		.mem_size = 128ULL << 20,
		.cpus = 1,
		.boot = VMM_BOOT_AUTO,
		.console = VMM_CONSOLE_STDIO,
	};
}

static void vm_irq_line(void *opaque, unsigned gsi, bool level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level irq = { .irq = gsi, .level = level };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_warn("KVM_IRQ_LINE %u failed: %s", gsi, strerror(errno));
}

static const char *exception_name(uint64_t vector)
{
	static const char *const names[] = {
		"divide error",
		"debug",
		"NMI",
		"breakpoint",
		"overflow",
		"bound range",
		"invalid opcode",
		"device not available",
		"double fault",
		"coprocessor overrun",
		"invalid TSS",
		"segment not present",
		"stack fault",
		"general protection",
		"page fault",
	};

	return vector < ARRAY_SIZE(names) ? names[vector] : "exception";
}

/*
 * KVM's coalesced I/O (device_context.coalesced_zone): writes to a zone wait
 * in a ring instead of exiting to snapvm one by one. The vCPU threads pass
 * the ring's writes to the devices after every KVM_RUN, before the exit
 * itself (vm_coalesced_drain), so devices see every access in the guest's
 * order.
 */
/* With vm->coalesced_lock held. */
static void vm_coalesced_drain_locked(struct vm *vm, struct kvm_coalesced_mmio_ring *ring)
{
	for (;;) {
		uint32_t first = ring->first;
		struct kvm_coalesced_mmio *e;

		/* the kernel advances `last` after it fills the entry */
		if (first == __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE) ||
		    first >= KVM_COALESCED_MMIO_MAX)
			break;
		e = &ring->coalesced_mmio[first];
		io_dispatch(&vm->io, e->pio ? IO_BUS_PIO : IO_BUS_MMIO, e->phys_addr, e->data,
			    MIN(e->len, (uint32_t)sizeof(e->data)), true);
		__atomic_store_n(&ring->first, (first + 1) % KVM_COALESCED_MMIO_MAX,
				 __ATOMIC_RELEASE);
	}
}

void vm_coalesced_drain(struct vm *vm)
{
	struct kvm_coalesced_mmio_ring *ring =
		__atomic_load_n(&vm->coalesced_ring, __ATOMIC_ACQUIRE);

	if (!ring)
		return;
	pthread_mutex_lock(&vm->coalesced_lock);
	vm_coalesced_drain_locked(vm, ring);
	pthread_mutex_unlock(&vm->coalesced_lock);
}

/* The ring: one per VM, mapped after every vCPU's kvm_run; NULL if KVM has none. */
static struct kvm_coalesced_mmio_ring *vm_coalesced_ring(struct vm *vm, enum io_bus bus)
{
	int offset;

	if (vm->coalesced_ring)
		return vm->coalesced_ring;
	offset = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_MMIO);
	if (offset <= 0 ||
	    (bus == IO_BUS_PIO &&
	     ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_PIO) <= 0) ||
	    (size_t)(offset + 1) * PAGE_SIZE > vm->run_size)
		return NULL;
	__atomic_store_n(&vm->coalesced_ring,
			 (void *)((uint8_t *)vm->vcpus[0].run + (size_t)offset * PAGE_SIZE),
			 __ATOMIC_RELEASE);
	return vm->coalesced_ring;
}

static int vm_coalesced_zone(void *opaque, enum io_bus bus, uint64_t addr, uint32_t size, bool on)
{
	struct vm *vm = opaque;
	struct kvm_coalesced_mmio_zone zone = { .addr = addr,
						.size = size,
						.pio = bus == IO_BUS_PIO };
	struct kvm_coalesced_mmio_ring *ring;
	int ret = 0;

	/* one change at a time, and no reader of the ring meanwhile */
	pthread_mutex_lock(&vm->coalesced_lock);
	ring = vm_coalesced_ring(vm, bus);
	if (!ring) {
		log_info("this KVM has no coalesced %s: every write to 0x%llx exits",
			 bus == IO_BUS_PIO ? "port I/O" : "MMIO", (unsigned long long)addr);
		ret = -ENOTSUP;
		goto out;
	}
	if (!on)
		vm_coalesced_drain_locked(vm, ring); /* what the zone holds comes first */
	if (ioctl(vm->vm_fd, on ? KVM_REGISTER_COALESCED_MMIO : KVM_UNREGISTER_COALESCED_MMIO,
		  &zone) < 0) {
		ret = -errno;
		log_warn("KVM_%sREGISTER_COALESCED_MMIO 0x%llx failed: %s", on ? "" : "UN",
			 (unsigned long long)addr, strerror(errno));
	}
out:
	pthread_mutex_unlock(&vm->coalesced_lock);
	return ret;
}

static void vm_guest_event(void *opaque, enum guest_event event, uint64_t value, uint64_t rip)
{
	struct vm *vm = opaque;

	switch (event) {
	case GUEST_EVENT_READY:
		log_info("guest is ready (code %llu)", (unsigned long long)value);
		log_debug("guest ready");
		if (vm->event_fn)
			vm->event_fn(vm, VM_EVENT_READY, value, vm->event_opaque);
		break;
	case GUEST_EVENT_EXIT:
		log_info("guest exits with status %llu", (unsigned long long)value);
		vm_request_stop(vm, (int)value);
		break;
	case GUEST_EVENT_PANIC:
		log_error("guest panic: %s (vector %llu) at RIP 0x%llx", exception_name(value),
			  (unsigned long long)value, (unsigned long long)rip);
		vm_request_stop(vm, EXIT_RUNTIME);
		break;
	case GUEST_EVENT_RESET:
		log_info("guest reset the machine (i8042)");
		vm_request_stop(vm, EXIT_OK);
		break;
	case GUEST_EVENT_CONSOLE_BATCHING:
		break; /* the UART's */
	case GUEST_EVENT_POWER_OFF:
		log_info("guest powered off (ACPI S5)");
		vm_request_stop(vm, EXIT_OK);
		break;
	case GUEST_EVENT_GUEST_PANIC:
		log_error("guest kernel panicked (pvpanic)");
		vm_request_stop(vm, VMM_EXIT_GUEST_PANIC);
		break;
	}
	for (unsigned i = 0; i < vm->device_count; i++)
		if (vm->devices[i].ops->guest_event)
			vm->devices[i].ops->guest_event(vm->devices[i].dev, event, value);
}

static int vm_create_devices(struct vm *vm)
{
	struct device_context ctx = {
		.io = &vm->io,
		.mem = &vm->mem,
		.vm = vm,
		.irq_line = vm_irq_line,
		.guest_event = vm_guest_event,
		.console_out_fd = vm->console.out_fd,
		.console_in_fd = vm->console.in_fd,
		.coalesced_zone = vm_coalesced_zone,
		.loop = vm->loop,
		.vm_fd = vm->vm_fd,
		.config = &vm->config,
		.virtio_slots = &vm->virtio_slots,
		.generation = vm->generation,
	};

	for (const struct device_ops *const *d = vmm_devices(); *d; d++) {
		const struct device_ops *ops = *d;
		unsigned count = ops->instances ? ops->instances(&vm->config) : 1;

		for (ctx.instance = 0; ctx.instance < count; ctx.instance++) {
			void *dev = vm->device_count < VM_MAX_DEVICES ? ops->create(&ctx) : NULL;

			if (!dev) {
				log_error("cannot create device %s", ops->name);
				return -ENOMEM;
			}
			vm->devices[vm->device_count++] =
				(struct vm_device){ ops, dev, ctx.instance };
			if (ops == &ged_device_ops)
				vm->ged = dev;
		}
	}
	return 0;
}

/*
 * One id per VM: a restore makes a new VM, so every clone gets its own, and
 * the control port and VMGenID give the guest the same one.
 */
static void vm_generation_new(struct vm *vm)
{
	if (getrandom(vm->generation, sizeof(vm->generation), 0) != sizeof(vm->generation)) {
		/* never two clones with one id: fall back to time and process */
		uint64_t parts[2] = { time_realtime_ns(),
				      (uint64_t)getpid() << 32 ^ time_now_ns() };

		memcpy(vm->generation, parts, sizeof(parts));
	}
}

const uint8_t *vm_generation(const struct vm *vm)
{
	return vm->generation;
}

int vm_power_button(struct vm *vm)
{
	if (!vm->ged)
		return -ENODEV;
	ged_event_raise(vm->ged, ACPI_GED_EVENT_POWER_BUTTON);
	return 0;
}

static void vm_on_shutdown_timer(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;

	(void)events;
	/* once: the loop may come round again before it sees the stop */
	vm_unwatch_fd(vm, vm->shutdown_timer_fd);
	log_warn("the guest did not power off within %u s of the power button: stopping it",
		 VMM_POWER_OFF_GRACE_MS / 1000);
	vm_request_stop(vm, vm->shutdown_status);
}

/* The grace period after a power button press: a timerfd in the event loop. */
static int vm_shutdown_timer_arm(struct vm *vm)
{
	struct itimerspec grace = { .it_value = { VMM_POWER_OFF_GRACE_MS / 1000,
						  VMM_POWER_OFF_GRACE_MS % 1000 * 1000000L } };

	vm->shutdown_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (vm->shutdown_timer_fd < 0 || timerfd_settime(vm->shutdown_timer_fd, 0, &grace, NULL))
		return -errno;
	return event_loop_add(vm->loop, vm->shutdown_timer_fd, EPOLLIN, vm_on_shutdown_timer, vm);
}

void vm_shutdown(struct vm *vm, int status)
{
	if (!vm->ged || vm->shutdown_timer_fd >= 0) {
		if (vm->ged)
			log_info("asked again: stopping the guest without waiting");
		vm_request_stop(vm, status);
		return;
	}
	vm->shutdown_status = status;
	if (vm_shutdown_timer_arm(vm)) {
		log_warn("cannot time the power button's grace period: stopping the guest now");
		vm_request_stop(vm, status);
		return;
	}
	log_info("pressing the ACPI power button");
	vm_power_button(vm);
}

void vm_generation_notify(struct vm *vm)
{
	if (vm->ged)
		ged_event_raise(vm->ged, ACPI_GED_EVENT_GENERATION);
}

int vm_virtio_cmdline(const struct vm *vm, char *buf, size_t size)
{
	size_t len = 0;

	if (size)
		buf[0] = '\0';
	for (unsigned i = 0; i < vm->virtio_slots.count; i++) {
		int n = snprintf(buf + len, size - len, "%svirtio_mmio.device=%lluK@0x%llx:%u",
				 i ? " " : "", (unsigned long long)(VIRTIO_MMIO_SIZE / 1024),
				 (unsigned long long)vm->virtio_slots.slot[i].base,
				 vm->virtio_slots.slot[i].irq);

		if (n < 0 || (size_t)n >= size - len)
			return -ENOSPC;
		len += (size_t)n;
	}
	return (int)len;
}

/* What vm_host_open_ahead() opened, until a vm_create() takes it. */
static struct {
	int kvm_fd; /* -1: nothing opened ahead */
	struct kvm_cpuid2 *cpuid;
} ahead = { .kvm_fd = -1 };

/* /dev/kvm, its API version checked: the descriptor, or -errno logged. */
static int kvm_open(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC), version;

	if (fd < 0) {
		int ret = -errno;

		log_error("cannot open /dev/kvm: %s (is KVM loaded, and may this user use it?)",
			  strerror(errno));
		return ret;
	}
	version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		log_error("/dev/kvm speaks API version %d, snapvm needs %d", version,
			  KVM_API_VERSION);
		close(fd);
		return -ENOTSUP;
	}
	return fd;
}

int vm_host_open_ahead(void)
{
	int fd;

	if (ahead.kvm_fd >= 0)
		return 0;
	fd = kvm_open();
	if (fd < 0)
		return fd;
	ahead.cpuid = x86_cpuid_supported(fd);
	if (!ahead.cpuid) {
		close(fd);
		return -EIO;
	}
	ahead.kvm_fd = fd;
	return 0;
}

static int vm_open_kvm(struct vm *vm)
{
	if (ahead.kvm_fd >= 0) {
		vm->kvm_fd = ahead.kvm_fd;
		vm->cpuid = ahead.cpuid;
		ahead.kvm_fd = -1;
		ahead.cpuid = NULL;
	} else {
		vm->kvm_fd = kvm_open();
		if (vm->kvm_fd < 0)
			return vm->kvm_fd;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		int ret = -errno;

		log_error("KVM_CREATE_VM failed: %s", strerror(errno));
		return ret;
	}
	vm->run_size = (size_t)ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	return 0;
}

static int vm_setup_kvm(struct vm *vm)
{
	uint64_t identity_map = KVM_IDENTITY_MAP_ADDR;

	/* needed by Intel's KVM for real-mode guests; other flavours may refuse them */
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity_map) < 0)
		log_debug("KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0)
		log_debug("KVM_SET_TSS_ADDR: %s", strerror(errno));
	for (unsigned i = 0; i < vm->mem.region_count; i++) {
		const struct guest_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region region = {
			.slot = i,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uint64_t)(uintptr_t)(vm->mem.host + r->offset),
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
			int ret = -errno;

			log_error("KVM_SET_USER_MEMORY_REGION (slot %u) failed: %s", i,
				  strerror(errno));
			return ret;
		}
	}
	/* after the memory slots: on PVM, a slot added after the irqchip costs ~6 ms more */
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		int ret = -errno;

		log_error("KVM_CREATE_IRQCHIP failed: %s", strerror(errno));
		return ret;
	}
	if (!vm->cpuid)
		vm->cpuid = x86_cpuid_supported(vm->kvm_fd);
	return vm->cpuid ? 0 : -EIO;
}

static void vm_on_stop_event(void *opaque, uint32_t events);
static void vm_on_loop_call(void *opaque, uint32_t events);

/* The event loop and what it always watches: stop requests and calls from other threads. */
static int vm_loop_create(struct vm *vm)
{
	int ret = event_loop_create(&vm->loop);

	if (ret)
		return ret;
	vm->stop_event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_event_fd < 0 || pipe2(vm->loop_call_fds, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	ret = event_loop_add(vm->loop, vm->stop_event_fd, EPOLLIN, vm_on_stop_event, vm);
	if (!ret)
		ret = event_loop_add(vm->loop, vm->loop_call_fds[0], EPOLLIN, vm_on_loop_call, vm);
	return ret;
}

int vm_create(const struct vmm_config *config, struct vm **out)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	int ret;

	if (!vm)
		return -ENOMEM;
	vm->config = *config;
	vm->kvm_fd = vm->vm_fd = vm->stop_event_fd = vm->signal_fd = -1;
	vm->shutdown_timer_fd = -1;
	vm->loop_call_fds[0] = vm->loop_call_fds[1] = -1;
	vm->console.in_fd = vm->console.out_fd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->coalesced_lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->request = VCPU_RUN;
	vm_generation_new(vm);
	*out = vm;

	if (config->netns[0]) {
		ret = net_namespace_enter(config->netns);
		if (ret) {
			log_error("cannot enter network namespace %s: %s", config->netns,
				  strerror(-ret));
			return ret;
		}
	}
	ret = vm_loop_create(vm);
	if (ret)
		return ret;
	guest_memory_layout(&vm->mem, config->mem_size);
	ret = guest_memory_map(&vm->mem);
	if (ret) {
		log_error("cannot map %llu MiB of guest memory: %s",
			  (unsigned long long)(config->mem_size >> 20), strerror(-ret));
		return ret;
	}
	log_debug("guest memory mapped");
	ret = vm_open_kvm(vm);
	if (!ret)
		ret = vm_setup_kvm(vm);
	log_debug("KVM VM set up");
	if (!ret)
		ret = console_host_open(config, &vm->console);
	if (!ret)
		ret = vm_create_devices(vm);
	if (ret)
		return ret;
	vm->vcpu_count = config->cpus;
	vm->vcpus = calloc(config->cpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return -ENOMEM;
	for (unsigned i = 0; i < config->cpus; i++)
		vm->vcpus[i].fd = -1;
	for (unsigned i = 0; i < config->cpus; i++) {
		ret = vcpu_create(vm, i);
		if (ret)
			return ret;
	}
	return 0;
}

void vm_set_event_handler(struct vm *vm,
			  void (*fn)(struct vm *vm, enum vm_event event, uint64_t value,
				     void *opaque),
			  void *opaque)
{
	vm->event_fn = fn;
	vm->event_opaque = opaque;
}

static void vm_on_stop_event(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;

	(void)events;
	event_loop_stop(vm->loop);
}

static void vm_on_signal(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	struct signalfd_siginfo info;

	(void)events;
	if (read(vm->signal_fd, &info, sizeof(info)) != sizeof(info))
		return;
	/* the shell's convention for a process ended by a signal */
	if (info.ssi_signo == SIGTERM && vm->config.graceful) {
		log_info("SIGTERM: asking the guest to power off");
		vm_shutdown(vm, 128 + (int)info.ssi_signo);
		return;
	}
	log_info("stopping on signal %u", info.ssi_signo);
	vm_request_stop(vm, 128 + (int)info.ssi_signo);
}

/* SIGINT, SIGTERM and SIGHUP stop the VM through a signalfd in the loop. */
static int vm_signals_watch(struct vm *vm)
{
	sigset_t signals;

	sigemptyset(&signals);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGHUP);
	/* blocked before any vCPU thread exists, so that every thread inherits the mask */
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
	vm->signal_fd = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
	if (vm->signal_fd < 0)
		return -errno;
	return event_loop_add(vm->loop, vm->signal_fd, EPOLLIN, vm_on_signal, vm);
}

int vm_start(struct vm *vm, bool paused)
{
	int ret = vm_signals_watch(vm);

	for (unsigned i = 0; !ret && i < vm->device_count; i++)
		if (vm->devices[i].ops->start)
			ret = vm->devices[i].ops->start(vm->devices[i].dev);
	if (ret) {
		log_error("cannot set up the event loop: %s", strerror(-ret));
		return ret;
	}
	vm->request = paused ? VCPU_PARK : VCPU_RUN;
	for (unsigned i = 0; i < vm->vcpu_count; i++) {
		ret = vcpu_thread_start(&vm->vcpus[i]);
		if (ret)
			return ret;
	}
	if (paused) {
		pthread_mutex_lock(&vm->lock);
		while (vm->parked < vm->vcpu_count)
			pthread_cond_wait(&vm->cond, &vm->lock);
		pthread_mutex_unlock(&vm->lock);
	}
	return 0;
}

void vm_request_stop(struct vm *vm, int status)
{
	uint64_t one = 1;
	bool kick = false;

	pthread_mutex_lock(&vm->lock);
	if (!vm->stop_requested) {
		vm->stop_requested = true;
		vm->exit_status = status;
		if (vm->stop_event_fd >= 0 && write(vm->stop_event_fd, &one, sizeof(one)) < 0)
			log_warn("cannot wake the event loop: %s", strerror(errno));
	}
	/*
	 * Running vCPUs stop now, not when the loop gets round to it: a caller
	 * may be about to let a vCPU out of a fault it must not see through.
	 * (Parked vCPUs are left to the loop: they may be busy with a call.)
	 */
	if (vm->request == VCPU_RUN) {
		vm->request = VCPU_STOP;
		kick = true;
	}
	pthread_mutex_unlock(&vm->lock);
	if (kick)
		vcpus_kick(vm);
}

static void vm_stop_vcpus(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->request = VCPU_STOP;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	vcpus_kick(vm);
	for (unsigned i = 0; i < vm->vcpu_count; i++) {
		if (vm->vcpus[i].thread_started) {
			pthread_join(vm->vcpus[i].thread, NULL);
			vm->vcpus[i].thread_started = false;
		}
	}
}

int vm_run(struct vm *vm)
{
	/* set-up is over: from here this thread is the event loop and the devices */
	int ret = sandbox_thread_enter(SANDBOX_LOOP) ? -EPERM : event_loop_run(vm->loop);

	if (ret) {
		log_error("event loop failed: %s", strerror(-ret));
		vm_request_stop(vm, EXIT_RUNTIME);
	}
	vm_stop_vcpus(vm);
	return vm->exit_status;
}

int vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->request != VCPU_RUN) {
		pthread_mutex_unlock(&vm->lock);
		return -EBUSY;
	}
	vm->request = VCPU_PARK;
	pthread_mutex_unlock(&vm->lock);
	vcpus_kick(vm);
	pthread_mutex_lock(&vm->lock);
	while (vm->parked < vm->vcpu_count)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	/* a VM told to stop while parked never runs again */
	if (vm->request == VCPU_PARK)
		vm->request = vm->stop_requested ? VCPU_STOP : VCPU_RUN;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

static void vm_vcpus_calls_set(struct vm *vm,
			       int (*fn)(struct vm *vm, unsigned index, int vcpu_fd, void *arg),
			       void *arg)
{
	for (unsigned i = 0; i < vm->vcpu_count; i++) {
		vm->vcpus[i].call_fn = fn;
		vm->vcpus[i].call_arg = arg;
	}
}

/* With vm->lock held: until every vCPU has run its call; the first error. */
static int vm_vcpus_calls_wait(struct vm *vm)
{
	int ret = 0;

	for (unsigned i = 0; i < vm->vcpu_count; i++) {
		while (vm->vcpus[i].call_fn)
			pthread_cond_wait(&vm->cond, &vm->lock);
		if (!ret)
			ret = vm->vcpus[i].call_result;
	}
	return ret;
}

int vm_vcpus_call(struct vm *vm, int (*fn)(struct vm *vm, unsigned index, int vcpu_fd, void *arg),
		  void *arg)
{
	int ret;

	pthread_mutex_lock(&vm->lock);
	if (vm->request != VCPU_PARK || vm->parked < vm->vcpu_count) {
		pthread_mutex_unlock(&vm->lock);
		return -EBUSY;
	}
	vm_vcpus_calls_set(vm, fn, arg);
	pthread_cond_broadcast(&vm->cond);
	ret = vm_vcpus_calls_wait(vm);
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

int vm_start_paused_call(struct vm *vm,
			 int (*fn)(struct vm *vm, unsigned index, int vcpu_fd, void *arg),
			 void *arg)
{
	int ret;

	vm_vcpus_calls_set(vm, fn, arg); /* no vCPU thread exists yet to race with */
	ret = vm_start(vm, true);
	if (ret)
		return ret;
	pthread_mutex_lock(&vm->lock);
	ret = vm_vcpus_calls_wait(vm);
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

struct loop_call {
	void (*fn)(struct vm *vm, void *opaque);
	void *opaque;
};

/* Calls queued for the loop's thread travel through a pipe: atomic for small writes. */
static void vm_on_loop_call(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	struct loop_call call;

	(void)events;
	while (read(vm->loop_call_fds[0], &call, sizeof(call)) == sizeof(call))
		call.fn(vm, call.opaque);
}

int vm_run_on_loop(struct vm *vm, void (*fn)(struct vm *vm, void *opaque), void *opaque)
{
	struct loop_call call = { fn, opaque };

	return write(vm->loop_call_fds[1], &call, sizeof(call)) == sizeof(call) ? 0 : -EIO;
}

int vm_watch_fd(struct vm *vm, int fd, uint32_t events, void (*fn)(void *opaque, uint32_t events),
		void *opaque)
{
	return event_loop_add(vm->loop, fd, events, fn, opaque);
}

void vm_unwatch_fd(struct vm *vm, int fd)
{
	event_loop_remove(vm->loop, fd);
}

void vm_ram_huge_pages(struct vm *vm)
{
	int ret = guest_memory_huge_pages(&vm->mem);

	if (ret)
		log_debug("no transparent huge pages for guest RAM: %s", strerror(-ret));
}

const struct vmm_config *vm_config(const struct vm *vm)
{
	return &vm->config;
}

uint8_t *vm_ram(const struct vm *vm, uint64_t *size)
{
	*size = vm->mem.size;
	return vm->mem.host;
}

unsigned vm_device_count(const struct vm *vm)
{
	return vm->device_count;
}

void vm_device_describe(const struct vm *vm, unsigned index, struct vm_device_info *info)
{
	const struct device_ops *ops = vm->devices[index].ops;

	/* several disks share an ops table: each instance has a section of its own */
	*info = (struct vm_device_info){ ops->name,
					 ops->section_id | vm->devices[index].instance << 16,
					 ops->state_version, ops->state_size,
					 ops->state_version_oldest };
}

int vm_device_quiesce(struct vm *vm, unsigned index)
{
	return vm->devices[index].ops->quiesce(vm->devices[index].dev);
}

void vm_device_save(struct vm *vm, unsigned index, void *state)
{
	vm->devices[index].ops->save(vm->devices[index].dev, state);
}

int vm_device_restore(struct vm *vm, unsigned index, const void *state)
{
	return vm->devices[index].ops->restore(vm->devices[index].dev, state);
}

int vm_kvm_fd(const struct vm *vm)
{
	return vm->kvm_fd;
}

int vm_fd(const struct vm *vm)
{
	return vm->vm_fd;
}

unsigned vm_vcpu_count(const struct vm *vm)
{
	return vm->vcpu_count;
}

static void close_fd(int fd)
{
	if (fd >= 0)
		close(fd);
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	if (vm->vcpus) {
		vm_stop_vcpus(vm);
		for (unsigned i = 0; i < vm->vcpu_count; i++)
			vcpu_destroy(&vm->vcpus[i]);
		free(vm->vcpus);
	}
	for (unsigned i = vm->device_count; i-- > 0;)
		vm->devices[i].ops->destroy(vm->devices[i].dev);
	console_host_close(&vm->console);
	event_loop_destroy(vm->loop);
	close_fd(vm->signal_fd);
	close_fd(vm->shutdown_timer_fd);
	close_fd(vm->loop_call_fds[0]);
	close_fd(vm->loop_call_fds[1]);
	close_fd(vm->stop_event_fd);
	close_fd(vm->vm_fd);
	close_fd(vm->kvm_fd);
	guest_memory_unmap(&vm->mem);
	free(vm->cpuid);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
	pthread_mutex_destroy(&vm->coalesced_lock);
	free(vm);
}
