/*
 * powerbutton: what acpid or systemd-logind do on a full distribution: the
 * ACPI power button driver reports KEY_POWER as an input event, and someone
 * in userland has to power the machine off. Here that someone is this loop
 * over every /dev/input/event* device.
 */
#include "helper.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <unistd.h>

#include <linux/input.h>

#define MAX_INPUTS 8

int power_button_main(int argc, char **argv)
{
	struct pollfd fds[MAX_INPUTS];
	int count = 0;
	DIR *dir = opendir("/dev/input");
	struct dirent *entry;

	(void)argv;
	if (argc != 1)
		return 2;
	while (dir && (entry = readdir(dir)) && count < MAX_INPUTS) {
		char path[300];

		if (strncmp(entry->d_name, "event", 5))
			continue;
		snprintf(path, sizeof(path), "/dev/input/%s", entry->d_name);
		fds[count].fd = open(path, O_RDONLY | O_CLOEXEC);
		fds[count].events = POLLIN;
		if (fds[count].fd >= 0)
			count++;
	}
	if (dir)
		closedir(dir);
	if (!count) {
		fprintf(stderr,
			"snapvm-helper powerbutton: no input device (no ACPI power button)\n");
		return 1;
	}
	while (poll(fds, (nfds_t)count, -1) >= 0) {
		for (int i = 0; i < count; i++) {
			struct input_event event;

			if (!fds[i].revents ||
			    read(fds[i].fd, &event, sizeof(event)) != sizeof(event))
				continue;
			if (event.type == EV_KEY && event.code == KEY_POWER && event.value == 1) {
				fprintf(stderr, "snapvm-helper: power button: powering off\n");
				sync();
				reboot(RB_POWER_OFF);
			}
		}
	}
	return 1;
}
