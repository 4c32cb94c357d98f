/*
 * options/: the options of a VM, declared once for both front ends. Each
 * entry of vm_options[] is one option: its command-line flag, its field in
 * a POST /vms body, its help lines, its parser, and whether a restore takes
 * it too. cli/ builds `snapvm run`'s getopt table and help from it; serve/
 * turns a JSON body into the `snapvm run` arguments of a child with it, and
 * a clone's or an invocation's body into its restore-time arguments. The
 * value parsers and the usage errors they print are here too, for every
 * command that takes a VM option (run, restore, invoke).
 */
#ifndef SNAPVM_OPTIONS_H
#define SNAPVM_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/common.h"
#include "vmm/vmm.h"

/* Prints "snapvm CMD: MESSAGE (see 'snapvm CMD --help')" on stderr; returns EXIT_USAGE. */
int opt_usage_error(const char *command, const char *fmt, ...) PRINTF_LIKE(2, 3);
/*
 * The usage error for what getopt_long returned instead of an option (run
 * with opterr = 0 and a leading ':' in optstring): ':' is "OPTION needs a
 * value", anything else "unknown option 'OPTION'". Returns EXIT_USAGE.
 */
int opt_getopt_error(const char *command, int opt, char *const argv[]);
/* Parses a size option value into *bytes, or reports a usage error naming the option. */
int opt_parse_size(const char *command, const char *option, const char *text, uint64_t *bytes);
/* Parses an unsigned option value in [min, max], or reports a usage error naming the option. */
int opt_parse_uint(const char *command, const char *option, const char *text, uint64_t min,
		   uint64_t max, uint64_t *value);

/* --acpi: auto gives ACPI to Linux kernels only (decided once the kernel is known). */
enum vm_acpi { VM_ACPI_AUTO, VM_ACPI_ON, VM_ACPI_OFF };

/* What the VM options set. */
struct vm_settings {
	struct vmm_config config;
	enum vm_acpi acpi;
};

/* The defaults: vmm_config_init(), ACPI auto. */
void vm_settings_init(struct vm_settings *settings);

/* How an option takes its value, on the command line and in a JSON body. */
enum vm_option_kind {
	VM_OPTION_SWITCH, /* --rng; JSON true or false */
	VM_OPTION_TEXT,	  /* --kernel PATH; a JSON string */
	VM_OPTION_NUMBER, /* --mem 256M; a JSON string or a whole number */
	VM_OPTION_LIST,	  /* --disk ..., repeatable; a JSON list of strings */
};

struct vm_option {
	const char *flag; /* on the command line: "--kernel" */
	/* in a POST /vms body, and a restore option's in clone and invoke bodies too; NULL: none */
	const char *field;
	enum vm_option_kind kind;
	const char *help; /* its help lines: a printf format of one int, help_number */
	int help_number;
	/* Parses value (NULL for a switch) into settings; 0 or EXIT_USAGE after a message. */
	int (*parse)(const char *command, const char *value, struct vm_settings *settings);
	/*
	 * A host resource that a snapshot does not keep: restore and invoke take
	 * the option too, and need it when the snapshot's VM had the device.
	 */
	bool restore;
	/*
	 * The device type (its device_ops.name) that takes this option's
	 * values itself, checked by the device (device_ops.check_arg) into
	 * vmm_config.device_args; parse is NULL then. A new device needs no
	 * parser here and no field in struct vmm_config.
	 */
	const char *device;
};

/* Every VM option, in the order of the help; ends with a zeroed entry. */
extern const struct vm_option vm_options[];

/* Applies option o with its value (NULL for a switch); 0 or EXIT_USAGE after a message. */
int vm_option_parse(const struct vm_option *o, const char *command, const char *value,
		    struct vm_settings *settings);

/* Prints every option's help lines, in order. */
void vm_options_help(FILE *out);

/* The value parsers of the options restore and invoke take too. 0 or EXIT_USAGE. */

/* Parses a --console value: stdio, none, virtio or file:PATH. */
int console_option_parse(const char *command, const char *text, struct vmm_config *config);
/* Adds a --disk PATH[,ro][,id=NAME][,bw=BYTES][,iops=N] to config. */
int disk_option_parse(const char *command, const char *text, struct vmm_config *config);
/*
 * The device options a restore takes too (vm_option.device and .restore:
 * a device's host resource, such as --vsock), for the getopt tables of
 * restore and invoke: each entry's value is VM_RESTORE_OPT plus its index
 * in vm_options. Writes at most VM_RESTORE_OPT_ROOM entries; returns how
 * many.
 */
#define VM_RESTORE_OPT	    0x2000
#define VM_RESTORE_OPT_ROOM 16
struct option;
size_t vm_restore_longopts(struct option *longopts);
/*
 * Applies one of them (opt from vm_restore_longopts): the device checks
 * the value, and a non-list option's new value replaces the old. 0 or
 * EXIT_USAGE after one line.
 */
int vm_restore_option_parse(int opt, const char *value, struct vmm_config *config);
/* Prints their help lines. */
void vm_restore_options_help(FILE *out);
/* Adds a --net tap=NAME[,mac=MAC] or user[,mac=MAC][,hostfwd=RULE]..., with bw= and pps=. */
int net_option_parse(const char *command, const char *text, struct vmm_config *config);
/* Parses --netns PATH into config. */
int netns_option_parse(const char *command, const char *text, struct vmm_config *config);

#endif
