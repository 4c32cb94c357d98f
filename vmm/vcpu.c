/* vCPU threads: KVM_RUN, exit dispatch, and parking for pause and snapshot. */
#include "vmm/vm_internal.h"
#include "vmm/arch/x86/x86.h"
#include "common/common.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Interrupts KVM_RUN; its handler does nothing, the EINTR is what matters. */
#define VCPU_KICK_SIGNAL SIGUSR1

int vcpu_create(struct vm *vm, unsigned index)
{
	struct vcpu *vcpu = &vm->vcpus[index];
	struct kvm_cpuid2 *cpuid;
	size_t cpuid_size;
	int ret;

	vcpu->vm = vm;
	vcpu->index = index;
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, index);
	if (vcpu->fd < 0) {
		ret = -errno;
		log_error("KVM_CREATE_VCPU %u failed: %s", index, strerror(errno));
		return ret;
	}
	vcpu->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		vcpu->run = NULL;
		ret = -errno;
		log_error("mmap of vCPU %u's kvm_run failed: %s", index, strerror(errno));
		return ret;
	}
	cpuid_size = sizeof(*vm->cpuid) + vm->cpuid->nent * sizeof(vm->cpuid->entries[0]);
	cpuid = malloc(cpuid_size);
	if (!cpuid)
		return -ENOMEM;
	memcpy(cpuid, vm->cpuid, cpuid_size);
	x86_cpuid_for_vcpu(cpuid, index, vm->vcpu_count);
	ret = ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid) < 0 ? -errno : 0;
	free(cpuid);
	if (ret)
		log_error("KVM_SET_CPUID2 on vCPU %u failed: %s", index, strerror(-ret));
	return ret;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (vcpu->run)
		munmap(vcpu->run, vcpu->vm->run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
}

static uint64_t vcpu_rip(struct vcpu *vcpu)
{
	struct kvm_regs regs;

	return ioctl(vcpu->fd, KVM_GET_REGS, &regs) == 0 ? regs.rip : 0;
}

static void vcpu_fail(struct vcpu *vcpu, const char *what)
{
	log_error("vCPU %u: %s at RIP 0x%llx", vcpu->index, what,
		  (unsigned long long)vcpu_rip(vcpu));
	vcpu->failed = true;
	vm_request_stop(vcpu->vm, EXIT_RUNTIME);
}

static void vcpu_handle_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;

	/* rep ins/outs arrive as `count` accesses laid out one after another */
	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size)
		io_dispatch(&vcpu->vm->io, IO_BUS_PIO, run->io.port, data, run->io.size, is_write);
}

static void vcpu_handle_system_event(struct vcpu *vcpu)
{
	switch (vcpu->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
	case KVM_SYSTEM_EVENT_RESET:
		log_info("guest asked for %s",
			 vcpu->run->system_event.type == KVM_SYSTEM_EVENT_RESET ? "a reset"
										: "power off");
		vm_request_stop(vcpu->vm, EXIT_OK);
		break;
	default:
		vcpu_fail(vcpu, "unexpected KVM system event");
		break;
	}
}

/* Handles one exit from KVM_RUN. */
static void vcpu_handle_exit(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	char what[128];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		vcpu_handle_io(vcpu);
		break;
	case KVM_EXIT_MMIO:
		io_dispatch(&vcpu->vm->io, IO_BUS_MMIO, run->mmio.phys_addr, run->mmio.data,
			    run->mmio.len, run->mmio.is_write);
		break;
	case KVM_EXIT_SHUTDOWN:
		vcpu_fail(vcpu, "guest triple fault (KVM_EXIT_SHUTDOWN)");
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		vcpu_handle_system_event(vcpu);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(what, sizeof(what),
			 "KVM internal error (KVM_EXIT_INTERNAL_ERROR, suberror %u)",
			 run->internal.suberror);
		vcpu_fail(vcpu, what);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(what, sizeof(what), "VM entry failed (KVM_EXIT_FAIL_ENTRY, reason 0x%llx)",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vcpu_fail(vcpu, what);
		break;
	case KVM_EXIT_HLT:
		vcpu_fail(vcpu, "guest halted with interrupts off (KVM_EXIT_HLT)");
		break;
	default:
		snprintf(what, sizeof(what), "unexpected KVM exit reason %u", run->exit_reason);
		vcpu_fail(vcpu, what);
		break;
	}
}

/*
 * Parks this thread until the request changes. An I/O exit's result (an IN's
 * data) is only written to the registers by the next KVM_RUN, so first run
 * once with immediate_exit set: KVM completes the access and returns EINTR,
 * and the state that a snapshot reads is whole.
 */
static void vcpu_park(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;

	vcpu->run->immediate_exit = 1;
	if (!vcpu->failed && (ioctl(vcpu->fd, KVM_RUN, 0) == 0 || errno != EINTR))
		log_warn("vCPU %u: completing the last I/O before a pause did not return EINTR",
			 vcpu->index);
	vm_coalesced_drain(vm); /* a snapshot sees the devices after every write */
	pthread_mutex_lock(&vm->lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->cond);
	while (vm->request == VCPU_PARK) {
		if (vcpu->call_fn) {
			int result;

			/*
			 * Unlocked: the call's ioctls may touch guest memory, and
			 * whoever pages it in may need to stop the VM meanwhile.
			 */
			pthread_mutex_unlock(&vm->lock);
			result = vcpu->call_fn(vm, vcpu->index, vcpu->fd, vcpu->call_arg);
			pthread_mutex_lock(&vm->lock);
			vcpu->call_result = result;
			vcpu->call_fn = NULL;
			pthread_cond_broadcast(&vm->cond);
			continue;
		}
		pthread_cond_wait(&vm->cond, &vm->lock);
	}
	vm->parked--;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	vcpu->run->immediate_exit = 0;
}

#ifdef SNAPVM_TEST_HOOKS
/*
 * Test builds only: SNAPVM_TEST_VCPU_SYSCALL=NAME makes each vCPU thread make
 * that system call (no arguments) once its filter is on, so that a test sees
 * what a forbidden call does. Release builds (-DSNAPVM_TESTS=OFF) lack it.
 */
static void vcpu_test_hook(void)
{
	const char *name = getenv("SNAPVM_TEST_VCPU_SYSCALL");
	long nr = name ? sandbox_syscall_number(name) : -1;

	if (nr >= 0)
		log_warn("test hook: system call %s returned %ld (pid %d)", name,
			 syscall(nr, 0, 0, 0), (int)getpid());
}
#else
static void vcpu_test_hook(void)
{
}
#endif

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;
	int error;

	log_debug("vCPU %u thread running", vcpu->index);
	if (sandbox_thread_enter(SANDBOX_VCPU)) {
		vcpu->failed = true;
		vm_request_stop(vm, EXIT_RUNTIME);
	}
	vcpu_test_hook();
	for (;;) {
		enum vcpu_request request = vm->request;

		if (request == VCPU_STOP)
			break;
		if (request == VCPU_PARK) {
			vcpu_park(vcpu);
			continue;
		}
		if (vcpu->failed) {
			/* the VM is stopping because of this vCPU: wait to be told */
			pthread_mutex_lock(&vm->lock);
			while (vm->request == VCPU_RUN)
				pthread_cond_wait(&vm->cond, &vm->lock);
			pthread_mutex_unlock(&vm->lock);
			continue;
		}
		error = ioctl(vcpu->fd, KVM_RUN, 0) < 0 ? errno : 0;
		/* writes KVM kept back come before this exit, and before a stop or pause */
		vm_coalesced_drain(vm);
		if (error) {
			/* EINTR: a kick; EAGAIN: an AP that just received its SIPI */
			if (error == EINTR || error == EAGAIN)
				continue;
			log_error("vCPU %u: KVM_RUN failed: %s", vcpu->index, strerror(error));
			vcpu->failed = true;
			vm_request_stop(vm, EXIT_RUNTIME);
			continue;
		}
		vcpu_handle_exit(vcpu);
	}
	return NULL;
}

static void vcpu_kick_handler(int signal)
{
	(void)signal;
}

static void vcpu_kick_handler_install(void)
{
	struct sigaction sa = { .sa_handler = vcpu_kick_handler };

	sigemptyset(&sa.sa_mask);
	sigaction(VCPU_KICK_SIGNAL, &sa, NULL); /* no SA_RESTART: KVM_RUN must return */
}

int vcpu_thread_start(struct vcpu *vcpu)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	int ret;

	pthread_once(&once, vcpu_kick_handler_install);
	ret = pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);
	if (ret) {
		log_error("cannot start the thread of vCPU %u: %s", vcpu->index, strerror(ret));
		return -ret;
	}
	vcpu->thread_started = true;
	return 0;
}

void vcpus_kick(struct vm *vm)
{
	for (unsigned i = 0; i < vm->vcpu_count; i++) {
		struct vcpu *vcpu = &vm->vcpus[i];

		if (!vcpu->thread_started)
			continue;
		/* set before the signal: a thread about to enter KVM_RUN returns at once */
		vcpu->run->immediate_exit = 1;
		pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
	}
}
