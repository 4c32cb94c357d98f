/*
 * The VM options, one entry each (options.h says who reads what). Adding an
 * option here gives it to `snapvm run` (flag and help) and, with a field
 * name, to POST /vms; marked restore, to the clone and invoke requests too.
 * A device's option marked restore reaches `snapvm restore` and `invoke`
 * through vm_restore_longopts; the disk and network options, which have
 * parsers of their own here, are in those commands' tables by hand.
 */
#include "options/options.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

void vm_settings_init(struct vm_settings *settings)
{
	memset(settings, 0, sizeof(*settings));
	vmm_config_init(&settings->config);
	settings->acpi = VM_ACPI_AUTO;
}

static int kernel_parse(const char *command, const char *value, struct vm_settings *s)
{
	(void)command;
	s->config.kernel_path = value;
	return 0;
}

static int initrd_parse(const char *command, const char *value, struct vm_settings *s)
{
	(void)command;
	s->config.initrd_path = value;
	return 0;
}

static int cmdline_parse(const char *command, const char *value, struct vm_settings *s)
{
	(void)command;
	s->config.cmdline = value;
	return 0;
}

static int mem_parse(const char *command, const char *value, struct vm_settings *s)
{
	uint64_t *size = &s->config.mem_size;
	int ret = opt_parse_size(command, "--mem", value, size);

	if (!ret && (*size < VMM_MIN_MEM || *size > VMM_MAX_MEM || *size % PAGE_SIZE))
		ret = opt_usage_error(
			command, "--mem: %s is not a multiple of 4 KiB from 4M to 256G", value);
	return ret;
}

static int cpus_parse(const char *command, const char *value, struct vm_settings *s)
{
	uint64_t cpus;
	int ret = opt_parse_uint(command, "--cpus", value, 1, VMM_MAX_CPUS, &cpus);

	s->config.cpus = (unsigned)cpus;
	return ret;
}

static int console_parse(const char *command, const char *value, struct vm_settings *s)
{
	return console_option_parse(command, value, &s->config);
}

int console_option_parse(const char *command, const char *text, struct vmm_config *config)
{
	if (!strcmp(text, "stdio")) {
		config->console = VMM_CONSOLE_STDIO;
	} else if (!strcmp(text, "none")) {
		config->console = VMM_CONSOLE_NONE;
	} else if (!strcmp(text, "virtio")) {
		config->console = VMM_CONSOLE_VIRTIO;
	} else if (!strncmp(text, "file:", 5) && text[5]) {
		config->console = VMM_CONSOLE_FILE;
		config->console_path = text + 5;
	} else {
		return opt_usage_error(
			command, "--console: '%s' is not stdio, none, virtio or file:PATH", text);
	}
	return 0;
}

static int boot_parse(const char *command, const char *value, struct vm_settings *s)
{
	static const struct {
		const char *name;
		enum vmm_boot_mode mode;
	} modes[] = { { "auto", VMM_BOOT_AUTO },
		      { "elf64", VMM_BOOT_ELF64 },
		      { "pvh", VMM_BOOT_PVH } };

	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		if (!strcmp(value, modes[i].name)) {
			s->config.boot = modes[i].mode;
			return 0;
		}
	}
	return opt_usage_error(command, "--boot: '%s' is not auto, elf64 or pvh", value);
}

static int no_legacy_parse(const char *command, const char *value, struct vm_settings *s)
{
	(void)command;
	(void)value;
	s->config.no_legacy = true;
	return 0;
}

static int disk_parse(const char *command, const char *value, struct vm_settings *s)
{
	return disk_option_parse(command, value, &s->config);
}

static int net_parse(const char *command, const char *value, struct vm_settings *s)
{
	return net_option_parse(command, value, &s->config);
}

static int netns_parse(const char *command, const char *value, struct vm_settings *s)
{
	return netns_option_parse(command, value, &s->config);
}

static int acpi_parse(const char *command, const char *value, struct vm_settings *s)
{
	if (!strcmp(value, "on"))
		s->acpi = VM_ACPI_ON;
	else if (!strcmp(value, "off"))
		s->acpi = VM_ACPI_OFF;
	else
		return opt_usage_error(command, "--acpi: '%s' is not on or off", value);
	return 0;
}

static int graceful_parse(const char *command, const char *value, struct vm_settings *s)
{
	(void)command;
	(void)value;
	s->config.graceful = true;
	return 0;
}

/* clang-format off */
const struct vm_option vm_options[] = {
	{ "--kernel", "kernel", VM_OPTION_TEXT,
	  "  --kernel PATH      a Linux bzImage or vmlinux, or snapvm's test guest (ELF64)\n",
	  0, kernel_parse, false, NULL },
	{ "--initrd", "initrd", VM_OPTION_TEXT,
	  "  --initrd PATH      initial ramdisk (initramfs) for a Linux kernel\n",
	  0, initrd_parse, false, NULL },
	{ "--cmdline", "cmdline", VM_OPTION_TEXT,
	  "  --cmdline STR      kernel command line; Linux gets it after snapvm's\n"
	  "                     defaults (console=ttyS0 ... reboot=k panic=-1 and the\n"
	  "                     virtio devices); the test guest gets it alone (heap=SIZE)\n",
	  0, cmdline_parse, false, NULL },
	{ "--mem", "mem", VM_OPTION_NUMBER,
	  "  --mem SIZE         guest RAM, e.g. 128M or 2G (default 128M)\n",
	  0, mem_parse, false, NULL },
	{ "--cpus", "cpus", VM_OPTION_NUMBER,
	  "  --cpus N           vCPUs, 1 to %d (default 1)\n",
	  VMM_MAX_CPUS, cpus_parse, false, NULL },
	{ "--console", NULL, VM_OPTION_TEXT,
	  "  --console WHERE    stdio (default), file:PATH (output to PATH, input from\n"
	  "                     stdin), none, or virtio (stdio on a virtio console, the\n"
	  "                     guest's hvc0; the serial port still prints to stdout)\n",
	  0, console_parse, false, NULL },
	{ "--boot", "boot", VM_OPTION_TEXT,
	  "  --boot MODE        auto (default: a bzImage's 64-bit entry; an ELF's PVH\n"
	  "                     entry if it has one, else its ELF entry), elf64 (ELF\n"
	  "                     entry in 64-bit mode, Linux boot_params) or pvh\n",
	  0, boot_parse, false, NULL },
	{ "--no-legacy", "no_legacy", VM_OPTION_SWITCH,
	  "  --no-legacy        no COM1 serial port (as QEMU microvm isa-serial=off);\n"
	  "                     needs --console virtio or none\n",
	  0, no_legacy_parse, false, NULL },
	{ "--disk", "disk", VM_OPTION_LIST,
	  "  --disk PATH[,ro][,id=NAME][,bw=BYTES][,iops=N]\n"
	  "                     a raw disk image as a virtio block device (repeatable,\n"
	  "                     up to %d); ro: read-only; id: the serial the guest reads;\n"
	  "                     bw: bytes a second (K, M, G suffixes), iops: requests a\n"
	  "                     second, beyond which the guest is slowed down\n",
	  VMM_MAX_DISKS, disk_parse, true, NULL },
	{ "--vsock", "vsock", VM_OPTION_TEXT,
	  "  --vsock CID,PATH   a virtio vsock device with guest CID: host programs\n"
	  "                     connect to PATH and send 'CONNECT <port>\\n'; guest\n"
	  "                     connections to host port P go to PATH_P\n",
	  0, NULL, true, "virtio-vsock" },
	{ "--rng", "rng", VM_OPTION_SWITCH,
	  "  --rng              a virtio entropy device (host getrandom)\n",
	  0, NULL, false, "virtio-rng" },
	{ "--net", "net", VM_OPTION_LIST,
	  "  --net tap=NAME[,mac=MAC][,bw=BYTES][,pps=N]\n"
	  "                     a virtio network device on TAP device NAME (repeatable,\n"
	  "                     up to %d; default MAC 52:54:00:12:34:56, +1 per device);\n"
	  "                     bw: bytes a second, pps: frames a second, each direction\n"
	  "  --net user[,mac=MAC][,hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:PORT]...\n"
	  "                     a virtio network device on user-mode networking (libslirp,\n"
	  "                     10.0.2.0/24, guest 10.0.2.15 by default), host ports\n"
	  "                     forwarded to the guest; bw= and pps= as for tap\n",
	  VMM_MAX_NETS, net_parse, true, NULL },
	{ "--netns", "netns", VM_OPTION_TEXT,
	  "  --netns PATH       run the VM's host side (TAP devices, user networking) in\n"
	  "                     the network namespace PATH, e.g. /run/netns/NAME\n",
	  0, netns_parse, true, NULL },
	{ "--acpi", NULL, VM_OPTION_TEXT,
	  "  --acpi on|off      ACPI tables (devices, CPUs, power button, pvpanic,\n"
	  "                     VM generation id); default: on for a Linux kernel, off\n"
	  "                     for any other. With ACPI, Linux finds the virtio devices\n"
	  "                     in the DSDT and gets no virtio_mmio.device= words\n",
	  0, acpi_parse, false, NULL },
	{ "--graceful", NULL, VM_OPTION_SWITCH,
	  "  --graceful         SIGTERM presses the ACPI power button (as the control\n"
	  "                     socket's stop does) instead of stopping the VM; the\n"
	  "                     guest gets %d s to power off before it is stopped\n",
	  VMM_POWER_OFF_GRACE_MS / 1000, graceful_parse, false, NULL },
	{ 0 },
};
/* clang-format on */

/* A device's option: the device checks its value, and a single one replaces the last. */
static int device_arg_apply(const struct vm_option *o, const char *value, struct vmm_config *config)
{
	if (o->kind != VM_OPTION_LIST)
		vmm_config_device_args_drop(config, o->device);
	return vmm_config_device_arg_add(config, o->device, value ? value : "") ? EXIT_USAGE : 0;
}

int vm_option_parse(const struct vm_option *o, const char *command, const char *value,
		    struct vm_settings *settings)
{
	if (o->parse)
		return o->parse(command, value, settings);
	return device_arg_apply(o, value, &settings->config);
}

static bool restore_device_option(const struct vm_option *o)
{
	return o->device && o->restore;
}

size_t vm_restore_longopts(struct option *longopts)
{
	size_t n = 0;

	for (const struct vm_option *o = vm_options; o->flag; o++) {
		if (!restore_device_option(o))
			continue;
		if (n == VM_RESTORE_OPT_ROOM)
			abort(); /* more restore device options than the room: raise it */
		longopts[n++] = (struct option){ o->flag + 2,
						 o->kind == VM_OPTION_SWITCH ? no_argument
									     : required_argument,
						 NULL, VM_RESTORE_OPT + (int)(o - vm_options) };
	}
	return n;
}

int vm_restore_option_parse(int opt, const char *value, struct vmm_config *config)
{
	return device_arg_apply(&vm_options[opt - VM_RESTORE_OPT], value, config);
}

void vm_restore_options_help(FILE *out)
{
	for (const struct vm_option *o = vm_options; o->flag; o++)
		if (restore_device_option(o))
			fprintf(out, o->help, o->help_number);
}

void vm_options_help(FILE *out)
{
	for (const struct vm_option *o = vm_options; o->flag; o++)
		fprintf(out, o->help, o->help_number);
}
