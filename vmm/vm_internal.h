/* The VM object, shared by the files of vmm/ (private). */
#ifndef SNAPVM_VMM_VM_INTERNAL_H
#define SNAPVM_VMM_VM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <linux/kvm.h>

#include "vmm/device.h"
#include "vmm/io.h"
#include "vmm/loop.h"
#include "vmm/memory.h"
#include "vmm/vmm.h"

#define VM_MAX_DEVICES 20

/* What the vCPU threads are asked to do, checked after every exit. */
enum vcpu_request {
	VCPU_RUN,
	VCPU_PARK, /* vm_pause(): complete pending I/O, then wait */
	VCPU_STOP, /* leave the thread */
};

struct vcpu {
	struct vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	bool failed; /* a fatal exit: never enter KVM_RUN again */
	/* vm_vcpus_call(): work for this thread while parked (under vm->lock) */
	int (*call_fn)(struct vm *vm, unsigned index, int vcpu_fd, void *arg);
	void *call_arg;
	int call_result;
};

struct vm_device {
	const struct device_ops *ops;
	void *dev;
	unsigned instance; /* among the devices of this ops table */
};

/* console.c: the descriptors of the guest's console on the host side. */
struct console_host {
	int in_fd;  /* -1: the guest gets no input */
	int out_fd; /* -1: its output goes nowhere */
	bool out_owned;
};

struct vm {
	struct vmm_config config;
	int kvm_fd;
	int vm_fd;
	size_t run_size;
	struct guest_memory mem;
	struct io_registry io;
	struct kvm_cpuid2 *cpuid;
	unsigned vcpu_count;
	struct vcpu *vcpus;
	unsigned device_count;
	struct vm_device devices[VM_MAX_DEVICES];
	struct ged *ged;	/* NULL without ACPI */
	uint8_t generation[16]; /* device_context.generation */
	/* KVM's coalesced-I/O ring, after every vCPU's kvm_run; NULL until a zone exists */
	struct kvm_coalesced_mmio_ring *coalesced_ring;
	pthread_mutex_t coalesced_lock;	       /* one reader of the ring at a time */
	struct virtio_mmio_slots virtio_slots; /* the virtio-mmio devices, in creation order */

	struct event_loop *loop;
	int stop_event_fd;     /* written when the VM must stop */
	int signal_fd;	       /* SIGINT, SIGTERM, SIGHUP */
	int shutdown_timer_fd; /* vm_shutdown(): the grace period; -1 until a button press */
	int shutdown_status;
	int loop_call_fds[2]; /* vm_run_on_loop(): a pipe of struct loop_call */
	struct console_host console;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	_Atomic enum vcpu_request request;
	unsigned parked;
	bool stop_requested;
	int exit_status;

	void (*event_fn)(struct vm *vm, enum vm_event event, uint64_t value, void *opaque);
	void *event_opaque;
};

/* vm.c: passes the writes KVM kept in the coalesced-I/O ring to the devices. */
void vm_coalesced_drain(struct vm *vm);

/* vcpu.c */
int vcpu_create(struct vm *vm, unsigned index);
void vcpu_destroy(struct vcpu *vcpu);
int vcpu_thread_start(struct vcpu *vcpu);
/* Asks every vCPU thread to act on vm->request now. */
void vcpus_kick(struct vm *vm);

/* console.c: opens the console's descriptors as config says; 0 or -errno (logged). */
int console_host_open(const struct vmm_config *config, struct console_host *host);
void console_host_close(struct console_host *host);

#endif
