/*
 * vmm/: runs a VM on KVM: guest memory, vCPU threads, the port-I/O and MMIO
 * registry, the event loop, x86 boot and the devices. It knows nothing of
 * snapshots stores; snapshot/ drives it through the calls below.
 */
#ifndef SNAPVM_VMM_H
#define SNAPVM_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMM_MAX_CPUS	16
#define VMM_MIN_MEM	(4ULL << 20)
#define VMM_MAX_MEM	(256ULL << 30)
#define VMM_CMDLINE_MAX 4096 /* bytes, including the terminating NUL */
/* The exit status of a VM whose kernel reported a panic through pvpanic. */
#define VMM_EXIT_GUEST_PANIC 3

enum vmm_boot_mode {
	VMM_BOOT_AUTO,	/* bzImage: 64-bit entry; vmlinux: PVH entry if noted; other ELF: e_entry */
	VMM_BOOT_ELF64, /* long mode at e_entry, %rsi = Linux boot_params */
	VMM_BOOT_PVH,	/* 32-bit protected mode at the PVH note's entry, %ebx = start_info */
};

enum vmm_console_kind {
	VMM_CONSOLE_STDIO, /* guest output to stdout, stdin to the guest */
	VMM_CONSOLE_FILE,  /* guest output appended to a file, stdin to the guest */
	VMM_CONSOLE_NONE,
	VMM_CONSOLE_FDS,    /* the caller's descriptors: console_in_fd, console_out_fd */
	VMM_CONSOLE_VIRTIO, /* stdio on a virtio console (hvc0); the UART still prints to stdout */
};

#define VMM_MAX_DISKS	  8
#define VMM_DISK_PATH_MAX 4096
#define VMM_DISK_ID_MAX	  20 /* bytes of a virtio-blk serial (GET_ID) */

#define VMM_MAX_DEVICE_ARGS 8	/* option values of the devices that read their own */
#define VMM_DEVICE_ARG_MAX  512 /* bytes of one, the NUL included */

/* One value of a VM option that names its device type (vmm_config.device_args). */
struct vmm_device_arg {
	const char *device;		/* device_ops.name */
	char value[VMM_DEVICE_ARG_MAX]; /* as given; "" for a switch (--rng) */
};

#define VMM_MAX_NETS	   4
#define VMM_MAX_HOSTFWDS   8
#define VMM_TAP_NAME_MAX   16 /* IFNAMSIZ, the NUL included */
#define VMM_NETNS_PATH_MAX 4096
#define VMM_NET_GUEST_ADDR 0x0a00020fu /* 10.0.2.15: the user network's first DHCP address */

enum vmm_net_backend {
	VMM_NET_TAP = 1,  /* an existing TAP device (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR) */
	VMM_NET_USER = 2, /* user-mode networking through libslirp */
};

/* A host port forwarded into a user-mode network, as QEMU's hostfwd= does. */
struct vmm_hostfwd {
	bool udp;
	uint16_t host_port;
	uint16_t guest_port;
	uint32_t host_addr;  /* IPv4, host byte order; 0: every address */
	uint32_t guest_addr; /* IPv4, host byte order; 0: VMM_NET_GUEST_ADDR */
};

/* A device's I/O limits (README.md, "Rate limits"); 0: none. */
#define VMM_RATE_GIVEN_BANDWIDTH 0x1
#define VMM_RATE_GIVEN_OPS	 0x2
#define VMM_RATE_MAX		 (1ULL << 40) /* a second, either kind */
struct vmm_rate_limit {
	uint64_t bandwidth; /* bytes a second */
	uint64_t ops;	    /* requests (disk) or frames (net) a second */
	unsigned given;	    /* VMM_RATE_GIVEN_*: set on the command line (overrides a snapshot's) */
};

/* A virtio-net device and the host network behind it. */
struct vmm_net {
	enum vmm_net_backend backend;
	uint8_t mac[6]; /* all zero: 52:54:00:12:34:56 plus the device's index */
	char tap[VMM_TAP_NAME_MAX];
	unsigned hostfwd_count;
	struct vmm_hostfwd hostfwds[VMM_MAX_HOSTFWDS];
	struct vmm_rate_limit rate; /* each direction on its own */
};

/* A virtio-blk disk: a raw file. */
struct vmm_disk {
	char path[VMM_DISK_PATH_MAX];
	bool read_only;
	char id[VMM_DISK_ID_MAX + 1]; /* serial reported to the guest; empty: none */
	struct vmm_rate_limit rate;
};

struct vmm_config {
	const char *kernel_path;
	const char *initrd_path; /* NULL: no initrd */
	const char *cmdline;	 /* a Linux kernel gets it after snapvm's defaults */
	bool no_legacy;		 /* no COM1 UART (README.md, "--no-legacy") */
	bool acpi;		 /* ACPI tables and devices (README.md, "ACPI") */
	bool graceful;		 /* SIGTERM presses the power button (vm_shutdown) */
	uint64_t mem_size;
	unsigned cpus;
	enum vmm_boot_mode boot;
	enum vmm_console_kind console;
	const char *console_path; /* VMM_CONSOLE_FILE */
	int console_in_fd;	  /* VMM_CONSOLE_FDS; -1 for no input */
	int console_out_fd;	  /* VMM_CONSOLE_FDS; -1 to drop output */

	/* virtio devices */
	unsigned disk_count;
	struct vmm_disk disks[VMM_MAX_DISKS];
	unsigned net_count;
	struct vmm_net nets[VMM_MAX_NETS];
	/* network namespace (a file such as /run/netns/NAME) vm_create enters; empty: ours */
	char netns[VMM_NETNS_PATH_MAX];

	/*
	 * The values of the VM options that configure a device type of their
	 * own (--rng, --vsock): the option's declaration names the device
	 * (options/vm_options.c), and the device checks and reads its values
	 * (device_ops.check_arg, vmm_config_device_arg), so no field here
	 * names it.
	 */
	unsigned device_arg_count;
	struct vmm_device_arg device_args[VMM_MAX_DEVICE_ARGS];
};

/* The range of device section ids (vmm/device.h), before the instance number << 16. */
#define VMM_DEVICE_SECTION_FIRST 0x0200
#define VMM_DEVICE_SECTION_LAST	 0x0fff

/* One device as the snapshot code sees it. */
struct vm_device_info {
	const char *name;
	uint32_t section_id; /* VMM_DEVICE_SECTION_FIRST-_LAST, plus the instance number << 16 */
	uint32_t state_version;
	uint32_t state_size;
	uint32_t state_version_oldest; /* device_ops.state_version_oldest */
};

/* A device's saved state as a snapshot holds it, for vmm_config_restore. */
struct vmm_saved_device {
	uint32_t section_id; /* vm_device_info.section_id */
	uint32_t version;
	const void *state;
	uint64_t length;
};

/*
 * Whether a device takes a saved state of this version and length: its own
 * version and size, or an older version it still reads (from
 * state_version_oldest on), shorter: a prefix of today's, zero-extended.
 */
bool vmm_device_state_fits(const struct vm_device_info *info, uint32_t version, uint64_t length);

/*
 * The configuration of a VM restored from saved devices: each device of the
 * saved VM from its own saved state, host resources and rate limits from the
 * restore options in wanted, everything else as wanted has it. 0, or -EINVAL
 * with one line logged (a state that does not fit, or options that do not
 * fit the saved devices).
 */
int vmm_config_restore(const struct vmm_config *wanted, const struct vmm_saved_device *saved,
		       unsigned saved_count, struct vmm_config *config);

struct vm;

/* What the guest reported through the control port, or why the VM stopped. */
enum vm_event {
	VM_EVENT_READY, /* value: ready code */
};

/* Fills in the defaults: 128 MiB, 1 vCPU, automatic boot, console on stdio. */
void vmm_config_init(struct vmm_config *config);
/* The index-th value config gives device type `name` ("" for a switch), or NULL. */
const char *vmm_config_device_arg(const struct vmm_config *config, const char *name,
				  unsigned index);
/*
 * Gives device type `name` one more value ("" switches it on), once the
 * device has checked it (device_ops.check_arg). 0, or -EINVAL (no such
 * device, a value it refuses) or -ENOSPC, with one line logged.
 */
int vmm_config_device_arg_add(struct vmm_config *config, const char *name, const char *value);
/* Forgets every value config gives device type `name`. */
void vmm_config_device_args_drop(struct vmm_config *config, const char *name);
/* The MAC of network device `index`: the configured one, else 52:54:00:12:34:56 + index. */
void vmm_net_mac(const struct vmm_config *config, unsigned index, uint8_t mac[6]);

/*
 * Opens /dev/kvm and reads the CPUID it supports now, for the next
 * vm_create() of this process to take: a process made ahead of its VM (a
 * warm process, invoke --warm) does the part that needs host paths before
 * it gives up the host's root. 0, or -errno logged.
 */
int vm_host_open_ahead(void);
/*
 * Creates the KVM VM, its memory, devices and vCPUs (not yet running); 0 or
 * -errno. With config->netns set, the calling thread first enters that
 * network namespace: it opens the TAP devices and runs the event loop (user
 * networking's sockets), so call vm_run() from the same thread.
 */
int vm_create(const struct vmm_config *config, struct vm **vm);
/*
 * Loads config->kernel_path and sets the boot vCPU's registers. 0, or -EINVAL
 * for a bad file (or -errno for I/O errors), logged.
 */
int vm_load_kernel(struct vm *vm);
/* True if the file is a Linux kernel: a bzImage, or an ELF with Linux's notes (a vmlinux). */
bool vmm_kernel_is_linux(const char *path);
/* Starts one thread per vCPU; with paused, they wait for vm_resume(). */
int vm_start(struct vm *vm, bool paused);
/*
 * Runs the event loop until the guest exits or fails; returns the exit
 * status for the process (the guest's code, or EXIT_RUNTIME with a message).
 */
int vm_run(struct vm *vm);
/*
 * Stops the VM from any thread; vm_run() returns `status`. The first call
 * wins. Running vCPUs are kicked out of the guest before this returns.
 */
void vm_request_stop(struct vm *vm, int status);
/*
 * Presses the ACPI power button (a GED event); any thread. -ENODEV when the
 * VM has no ACPI: the caller then stops the VM its own way.
 */
int vm_power_button(struct vm *vm);
/*
 * Asks the guest to power off: with ACPI, presses the power button and stops
 * the VM with `status` if the guest is still running VMM_POWER_OFF_GRACE_MS
 * later (or at a second request); without ACPI, stops it with `status` now.
 * On the event loop's thread.
 */
void vm_shutdown(struct vm *vm, int status);
#define VMM_POWER_OFF_GRACE_MS 10000
/*
 * Tells the guest that its generation id changed (a GED event that Linux's
 * vmgenid driver takes to reseed its RNG): after a restore, once the vCPUs'
 * state is in place and before they run. Nothing without ACPI.
 */
void vm_generation_notify(struct vm *vm);
/* The VM's 128-bit generation id (what the control port and VMGenID give the guest). */
const uint8_t *vm_generation(const struct vm *vm);
/* Stops the vCPUs, releases every resource. */
void vm_destroy(struct vm *vm);

/* Called (on a vCPU thread) when the guest signals an event. */
void vm_set_event_handler(struct vm *vm,
			  void (*fn)(struct vm *vm, enum vm_event event, uint64_t value,
				     void *opaque),
			  void *opaque);

/* Kicks every vCPU out of KVM_RUN and parks it with its last I/O completed. */
int vm_pause(struct vm *vm);
/* Lets parked vCPUs run again. */
void vm_resume(struct vm *vm);
/* Runs fn on each vCPU's own thread while paused; returns the first error. */
int vm_vcpus_call(struct vm *vm, int (*fn)(struct vm *vm, unsigned index, int vcpu_fd, void *arg),
		  void *arg);
/*
 * vm_start(vm, true) then vm_vcpus_call(vm, fn, arg), with fn queued before
 * the threads exist: each runs it as soon as it parks, sparing two hand-offs
 * between threads (~50 us each when the other CPU sleeps). The first error.
 */
int vm_start_paused_call(struct vm *vm,
			 int (*fn)(struct vm *vm, unsigned index, int vcpu_fd, void *arg),
			 void *arg);

/* Runs fn(vm, opaque) on the event loop's thread soon; callable from any thread. */
int vm_run_on_loop(struct vm *vm, void (*fn)(struct vm *vm, void *opaque), void *opaque);
/* Watches fd in the VM's event loop (EPOLLIN etc.); fn runs on the loop's thread. */
int vm_watch_fd(struct vm *vm, int fd, uint32_t events, void (*fn)(void *opaque, uint32_t events),
		void *opaque);
/* Stops watching fd. */
void vm_unwatch_fd(struct vm *vm, int fd);

/*
 * Backs guest RAM with transparent huge pages where the host has them: fewer
 * faults for guests that touch much memory, at the price of 2 MiB granules.
 * Booted VMs have them; restores that page memory in lazily do not.
 */
void vm_ram_huge_pages(struct vm *vm);

/* Guest RAM: one host mapping of *size bytes; snapshot page N is ram + N * 4096. */
uint8_t *vm_ram(const struct vm *vm, uint64_t *size);
/* The configuration the VM was created with (host resources included). */
const struct vmm_config *vm_config(const struct vm *vm);

/* Devices, in the fixed order in which they are saved and restored. */
unsigned vm_device_count(const struct vm *vm);
void vm_device_describe(const struct vm *vm, unsigned index, struct vm_device_info *info);
/* Finishes a device's in-flight work before its state is saved; 0 or -errno. */
int vm_device_quiesce(struct vm *vm, unsigned index);
/* Writes the device's saved state (info.state_size bytes). */
void vm_device_save(struct vm *vm, unsigned index, void *state);
/* Checks and applies saved state; -EINVAL if it cannot be this device's. */
int vm_device_restore(struct vm *vm, unsigned index, const void *state);

/*
 * Writes the virtio-mmio devices as Linux command-line words
 * ("virtio_mmio.device=4K@0xd0000000:5 ..."), in device order; returns the
 * length, or -ENOSPC if it does not fit in size bytes (NUL included).
 */
int vm_virtio_cmdline(const struct vm *vm, char *buf, size_t size);

/* The KVM file descriptors, for state capture. */
int vm_kvm_fd(const struct vm *vm);
int vm_fd(const struct vm *vm);
unsigned vm_vcpu_count(const struct vm *vm);

#endif
