/*
 * The device registry refuses two device types with one section id: a
 * snapshot could not tell their states apart. This binary registers a
 * device that takes the control port's id, so the first use of the
 * registry must stop the process with a line naming both.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/device.h"

static const struct device_ops clash_device_ops = {
	.name = "clash",
	.section_id = 0x0200, /* the control port's (vmm/hw/ctl.c) */
	.state_version = 1,
	.state_size = 4,
};
DEVICE_REGISTER(clash_device_ops);

static void test_registry_refuses_a_shared_id(void **state)
{
	char line[512] = "";
	int pipefd[2], status;
	ssize_t n;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pipefd[1], STDERR_FILENO);
		vmm_devices();
		_exit(0); /* not reached when the check works */
	}
	close(pipefd[1]);
	n = read(pipefd[0], line, sizeof(line) - 1);
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
	assert_true(n > 0);
	line[n] = '\0';
	assert_non_null(strstr(line, "two devices share a section id"));
	assert_non_null(strstr(line, "control-port"));
	assert_non_null(strstr(line, "clash"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registry_refuses_a_shared_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
