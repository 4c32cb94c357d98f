/* cli/: `snapvm run` argument parsing, including every kind of bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cli/run_options.h"
#include "common/common.h"

#define PARSE(options, ...)                                                    \
	run_options_parse((int)ARRAY_SIZE(((char *[]){ "run", __VA_ARGS__ })), \
			  (char *[]){ "run", __VA_ARGS__, NULL }, options)

static void test_run_defaults(void **state)
{
	struct run_options o;

	(void)state;
	assert_int_equal(PARSE(&o, "--kernel", "k.elf"), 0);
	assert_string_equal(o.vm.config.kernel_path, "k.elf");
	assert_int_equal(o.vm.config.mem_size, 128ULL << 20);
	assert_int_equal(o.vm.config.cpus, 1);
	assert_int_equal(o.vm.config.boot, VMM_BOOT_AUTO);
	assert_int_equal(o.vm.config.console, VMM_CONSOLE_STDIO);
	assert_string_equal(o.vm.config.cmdline, "");
	assert_false(o.help);
}

static void test_run_all_options(void **state)
{
	struct run_options o;

	(void)state;
	assert_int_equal(PARSE(&o, "--kernel", "k", "--cmdline", "heap=16M", "--mem", "1G",
			       "--cpus", "4", "--console", "file:/tmp/out", "--boot", "pvh"),
			 0);
	assert_string_equal(o.vm.config.cmdline, "heap=16M");
	assert_int_equal(o.vm.config.mem_size, 1ULL << 30);
	assert_int_equal(o.vm.config.cpus, 4);
	assert_int_equal(o.vm.config.console, VMM_CONSOLE_FILE);
	assert_string_equal(o.vm.config.console_path, "/tmp/out");
	assert_int_equal(o.vm.config.boot, VMM_BOOT_PVH);
	assert_int_equal(PARSE(&o, "--kernel=k", "--boot=elf64", "--console=none"), 0);
	assert_int_equal(o.vm.config.boot, VMM_BOOT_ELF64);
	assert_int_equal(o.vm.config.console, VMM_CONSOLE_NONE);
}

static void test_run_help(void **state)
{
	struct run_options o;

	(void)state;
	assert_int_equal(PARSE(&o, "--help"), 0);
	assert_true(o.help);
	assert_int_equal(PARSE(&o, "-h"), 0);
	assert_true(o.help);
}

static void test_run_bad_input(void **state)
{
	struct run_options o;

	(void)state;
	assert_int_equal(PARSE(&o, "--kernel", "k", "--bogus"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--mem", "0"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--mem", "1M"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--mem", "300G"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--mem", "5000K1"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--mem", "4097K"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--cpus", "0"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--cpus", "17"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--cpus", "two"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--console", "tty"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--console", "file:"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--boot", "bios"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "extra"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--cpus", "1"), EXIT_USAGE); /* no --kernel */
	assert_int_equal(PARSE(&o, "--kernel"), EXIT_USAGE);	/* value missing */
}

static void test_run_virtio_devices(void **state)
{
	struct run_options o;

	(void)state;
	assert_int_equal(PARSE(&o, "--kernel", "k"), 0);
	assert_int_equal(o.vm.config.disk_count, 0);
	assert_null(vmm_config_device_arg(&o.vm.config, "virtio-vsock", 0));
	assert_null(vmm_config_device_arg(&o.vm.config, "virtio-rng", 0));
	/* disks must exist (and be writable unless ro) when the options are read */
	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", "/dev/null", "--disk",
			       "/b,c.img,ro,id=serial-1", "--vsock", "42,/tmp/v.sock", "--rng",
			       "--console", "virtio"),
			 EXIT_USAGE); /* a comma in the path is taken as a flag */
	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", "/dev/null", "--disk",
			       "/dev/zero,ro,id=serial-1", "--vsock", "42,/tmp/v.sock", "--rng",
			       "--console", "virtio"),
			 0);
	assert_int_equal(o.vm.config.disk_count, 2);
	assert_string_equal(o.vm.config.disks[0].path, "/dev/null");
	assert_false(o.vm.config.disks[0].read_only);
	assert_string_equal(o.vm.config.disks[0].id, "");
	assert_string_equal(o.vm.config.disks[1].path, "/dev/zero");
	assert_true(o.vm.config.disks[1].read_only);
	assert_string_equal(o.vm.config.disks[1].id, "serial-1");
	assert_string_equal(vmm_config_device_arg(&o.vm.config, "virtio-vsock", 0),
			    "42,/tmp/v.sock");
	assert_null(vmm_config_device_arg(&o.vm.config, "virtio-vsock", 1));
	assert_string_equal(vmm_config_device_arg(&o.vm.config, "virtio-rng", 0), "");
	assert_int_equal(o.vm.config.console, VMM_CONSOLE_VIRTIO);
}

static void test_run_virtio_bad_input(void **state)
{
	struct run_options o;

	(void)state;
	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", ""), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", ",ro"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", "/dev/null,rw"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", "/dev/null,id="), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", "/dev/null,id=123456789012345678901"),
			 EXIT_USAGE); /* 21 bytes */
	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", "/nonexistent.img"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", "/dev/null", "--disk", "/dev/null",
			       "--disk", "/dev/null", "--disk", "/dev/null", "--disk", "/dev/null",
			       "--disk", "/dev/null", "--disk", "/dev/null", "--disk", "/dev/null"),
			 0); /* eight */
	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", "/dev/null", "--disk", "/dev/null",
			       "--disk", "/dev/null", "--disk", "/dev/null", "--disk", "/dev/null",
			       "--disk", "/dev/null", "--disk", "/dev/null", "--disk", "/dev/null",
			       "--disk", "/dev/null"),
			 EXIT_USAGE); /* nine */
	assert_int_equal(PARSE(&o, "--kernel", "k", "--vsock", "3"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--vsock", "2,/tmp/v"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--vsock", "4294967296,/tmp/v"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--vsock", "x,/tmp/v"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--vsock", "3,"), EXIT_USAGE);
	assert_int_equal(
		PARSE(&o, "--kernel", "k", "--vsock",
		      "3,/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
		EXIT_USAGE); /* no room for _PORT */
}

/* bw= takes the sizes of --mem (a second, "/s" optional); iops= and pps= whole numbers. */
static void test_run_rate_limits(void **state)
{
	struct run_options o;

	(void)state;
	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", "/dev/null,bw=4M,iops=100", "--disk",
			       "/dev/zero,ro,iops=7", "--net", "user,bw=512K/s,pps=1000", "--net",
			       "tap=t0,bw=0"),
			 0);
	assert_int_equal(o.vm.config.disks[0].rate.bandwidth, 4ULL << 20);
	assert_int_equal(o.vm.config.disks[0].rate.ops, 100);
	assert_int_equal(o.vm.config.disks[0].rate.given,
			 VMM_RATE_GIVEN_BANDWIDTH | VMM_RATE_GIVEN_OPS);
	assert_int_equal(o.vm.config.disks[1].rate.bandwidth, 0);
	assert_int_equal(o.vm.config.disks[1].rate.ops, 7);
	assert_int_equal(o.vm.config.disks[1].rate.given, VMM_RATE_GIVEN_OPS);
	assert_int_equal(o.vm.config.nets[0].rate.bandwidth, 512 << 10);
	assert_int_equal(o.vm.config.nets[0].rate.ops, 1000);
	assert_int_equal(o.vm.config.nets[1].rate.bandwidth, 0); /* given as none */
	assert_int_equal(o.vm.config.nets[1].rate.given, VMM_RATE_GIVEN_BANDWIDTH);

	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", "/dev/null,bw="), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", "/dev/null,bw=fast"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", "/dev/null,bw=4X"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", "/dev/null,bw=2T"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", "/dev/null,iops=-1"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", "/dev/null,iops=1K"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--disk", "/dev/null,pps=10"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--net", "user,iops=10"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--net", "user,pps=99999999999999"),
			 EXIT_USAGE);
}

static void test_run_net_devices(void **state)
{
	static const uint8_t mac[6] = { 0x02, 0x00, 0x00, 0xab, 0xcd, 0xef };
	struct run_options o;
	const struct vmm_hostfwd *f;

	(void)state;
	assert_int_equal(PARSE(&o, "--kernel", "k", "--net", "tap=tap0", "--net",
			       "user,mac=02:00:00:ab:cd:ef,hostfwd=udp:127.0.0.1:5555-:7,"
			       "hostfwd=::2222-10.0.2.16:22",
			       "--netns", "/run/netns/a"),
			 0);
	assert_int_equal(o.vm.config.net_count, 2);
	assert_int_equal(o.vm.config.nets[0].backend, VMM_NET_TAP);
	assert_string_equal(o.vm.config.nets[0].tap, "tap0");
	assert_int_equal(o.vm.config.nets[0].mac[0], 0); /* the device's default */
	assert_int_equal(o.vm.config.nets[1].backend, VMM_NET_USER);
	assert_memory_equal(o.vm.config.nets[1].mac, mac, 6);
	assert_int_equal(o.vm.config.nets[1].hostfwd_count, 2);
	f = &o.vm.config.nets[1].hostfwds[0];
	assert_true(f->udp);
	assert_int_equal(f->host_addr, 0x7f000001);
	assert_int_equal(f->host_port, 5555);
	assert_int_equal(f->guest_addr, 0);
	assert_int_equal(f->guest_port, 7);
	f = &o.vm.config.nets[1].hostfwds[1];
	assert_false(f->udp);
	assert_int_equal(f->host_addr, 0);
	assert_int_equal(f->host_port, 2222);
	assert_int_equal(f->guest_addr, 0x0a000210);
	assert_int_equal(f->guest_port, 22);
	assert_string_equal(o.vm.config.netns, "/run/netns/a");
}

static void test_run_net_bad_input(void **state)
{
	static char *const bad[] = {
		"tap=",
		"tap=a-name-far-too-long",
		"slirp",
		"user,mac=01:00:00:00:00:01", /* multicast */
		"user,mac=52:54:00:12:34",
		"user,mac=52:54:00:12:34:5g",
		"tap=t,hostfwd=udp::1-:2", /* hostfwd is for user networks */
		"user,hostfwd=sctp::1-:2",
		"user,hostfwd=udp::0-:7",
		"user,hostfwd=udp::70000-:7",
		"user,hostfwd=udp:1.2.3:5-:7",
		"user,hostfwd=udp::5:7",
		"user,hostfwd=udp::5-:",
		"user,bogus",
	};
	struct run_options o;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (PARSE(&o, "--kernel", "k", "--net", bad[i]) != EXIT_USAGE)
			fail_msg("--net %s was accepted", bad[i]);
	}
	assert_int_equal(PARSE(&o, "--kernel", "k", "--netns", "/run/netns/a"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--net", "user", "--net", "user", "--net",
			       "user", "--net", "user", "--net", "user"),
			 EXIT_USAGE);
}

static void test_run_linux_options(void **state)
{
	struct run_options o;

	(void)state;
	assert_int_equal(PARSE(&o, "--kernel", "bzImage"), 0);
	assert_null(o.vm.config.initrd_path);
	assert_false(o.vm.config.no_legacy);
	assert_int_equal(PARSE(&o, "--kernel", "bzImage", "--initrd", "initramfs.cpio",
			       "--no-legacy", "--console", "virtio"),
			 0);
	assert_string_equal(o.vm.config.initrd_path, "initramfs.cpio");
	assert_true(o.vm.config.no_legacy);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--no-legacy", "--console", "none"), 0);
	/* without COM1 the serial console has nowhere to go */
	assert_int_equal(PARSE(&o, "--kernel", "k", "--no-legacy"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--no-legacy", "--console", "file:/tmp/x"),
			 EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--initrd"), EXIT_USAGE);
}

/* The jail options: parsed into run_options.jail, checked together. */
static void test_run_jail_options(void **state)
{
	struct run_options o;

	(void)state;
	assert_int_equal(PARSE(&o, "--kernel", "k"), 0);
	assert_null(o.jail.dir);
	assert_int_equal(o.jail.uid, JAIL_DEFAULT_ID);
	assert_int_equal(o.jail.gid, JAIL_DEFAULT_ID);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--jail", "/srv/j", "--uid", "1000", "--gid",
			       "2000", "--jail-netns", "--jail-mem", "256M", "--jail-cpu",
			       "50000/100000", "--jail-pids", "64"),
			 0);
	assert_string_equal(o.jail.dir, "/srv/j");
	assert_int_equal(o.jail.uid, 1000);
	assert_int_equal(o.jail.gid, 2000);
	assert_true(o.jail.netns);
	assert_int_equal(o.jail.mem_max, 256ULL << 20);
	assert_int_equal(o.jail.cpu_quota, 50000);
	assert_int_equal(o.jail.cpu_period, 100000);
	assert_int_equal(o.jail.pids_max, 64);
	/* bad input: one usage error each */
	assert_int_equal(PARSE(&o, "--kernel", "k", "--jail", "rel"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--jail-mem", "64M"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--uid", "5"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--jail", "/j", "--uid", "0"), EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--jail", "/j", "--jail-mem", "100K"),
			 EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--jail", "/j", "--jail-cpu", "500/100000"),
			 EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--jail", "/j", "--jail-cpu", "5000"),
			 EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--jail", "/j", "--jail-cpu", "5000/2000000"),
			 EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--jail", "/j", "--jail-pids", "0"),
			 EXIT_USAGE);
	assert_int_equal(PARSE(&o, "--kernel", "k", "--jail", "/j", "--snapshot-on-ready", "x"),
			 EXIT_USAGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_run_defaults),
		cmocka_unit_test(test_run_all_options),
		cmocka_unit_test(test_run_help),
		cmocka_unit_test(test_run_bad_input),
		cmocka_unit_test(test_run_virtio_devices),
		cmocka_unit_test(test_run_virtio_bad_input),
		cmocka_unit_test(test_run_linux_options),
		cmocka_unit_test(test_run_net_devices),
		cmocka_unit_test(test_run_net_bad_input),
		cmocka_unit_test(test_run_rate_limits),
		cmocka_unit_test(test_run_jail_options),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
