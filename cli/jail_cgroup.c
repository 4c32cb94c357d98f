/*
 * The jail's cgroup v2 leaf: CGROUP2/snapvm/COMMAND-PID, with memory.max,
 * cpu.max and pids.max. The cgroup2 mount and its controllers are found at
 * run time (a hybrid host may mount it at /sys/fs/cgroup/unified with the
 * controllers held by cgroup v1): a limit whose controller is missing is
 * refused with one line, before anything starts.
 */
#include "cli/jail.h"
#include "common/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define JAIL_CGROUP_GROUP "snapvm" /* every jail's leaf is in CGROUP2/snapvm */

/* Finds where cgroup2 is mounted, from /proc/self/mountinfo. */
static int cgroup2_mount_find(char *out, size_t size)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096], point[PATH_MAX];
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while (ret && fgets(line, sizeof(line), f)) {
		const char *type = strstr(line, " - ");

		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ... - TYPE SOURCE ... */
		if (type && !strncmp(type, " - cgroup2 ", 11) &&
		    sscanf(line, "%*s %*s %*s %*s %4095s", point) == 1)
			ret = path_format(out, size, "%s", point);
	}
	fclose(f);
	return ret;
}

static int file_read(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int file_write(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* True if word is one of the space-separated words of list. */
static bool word_in(const char *list, const char *word)
{
	size_t len = strlen(word);

	for (const char *p = strstr(list, word); p; p = strstr(p + 1, word))
		if ((p == list || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\n' || !p[len]))
			return true;
	return false;
}

/* Writes "+controller" into dir/cgroup.subtree_control unless it is there already. */
static int cgroup_enable(const char *dir, const char *controller)
{
	char path[PATH_MAX], have[512], text[32];
	int ret = path_format(path, sizeof(path), "%s/cgroup.subtree_control", dir);

	if (!ret)
		ret = file_read(path, have, sizeof(have));
	if (ret || word_in(have, controller))
		return ret;
	snprintf(text, sizeof(text), "+%s", controller);
	return file_write(path, text);
}

/* Writes text into the leaf's file name. */
static int leaf_write(const struct jail *jail, const char *name, const char *text)
{
	char path[PATH_MAX];
	int ret = path_format(path, sizeof(path), "%s/%s", jail->cgroup, name);

	return ret ? ret : file_write(path, text);
}

struct controller_need {
	const char *name;
	const char *option;
	bool needed;
};

/* The controllers the limits need are offered at the cgroup2 root, and enabled for snapvm/. */
static int cgroup_controllers_enable(const struct jail *jail, const char *root,
				     const struct controller_need *needs, size_t count)
{
	char path[PATH_MAX], have[512], group[PATH_MAX];
	int ret;

	if (path_format(path, sizeof(path), "%s/cgroup.controllers", root) ||
	    file_read(path, have, sizeof(have)))
		have[0] = '\0';
	for (size_t i = 0; i < count; i++) {
		if (needs[i].needed && !word_in(have, needs[i].name)) {
			fprintf(stderr,
				"snapvm %s: %s needs the cgroup v2 '%s' controller, which %s "
				"does not have (held by cgroup v1?)\n",
				jail->command, needs[i].option, needs[i].name, root);
			return EXIT_RUNTIME;
		}
	}
	ret = path_format(group, sizeof(group), "%s/" JAIL_CGROUP_GROUP, root);
	if (!ret && mkdir(group, 0755) < 0 && errno != EEXIST)
		ret = -errno;
	for (size_t i = 0; !ret && i < count; i++)
		if (needs[i].needed && !(ret = cgroup_enable(root, needs[i].name)))
			ret = cgroup_enable(group, needs[i].name);
	if (ret)
		fprintf(stderr, "snapvm %s: cannot enable the cgroup v2 controllers in %s: %s\n",
			jail->command, group, strerror(-ret));
	return ret ? EXIT_RUNTIME : 0;
}

/* The limits, written into the new leaf. */
static int cgroup_limits_write(const struct jail *jail)
{
	const struct jail_options *o = &jail->options;
	char text[64];
	int ret = 0;

	if (o->mem_max) {
		snprintf(text, sizeof(text), "%llu", (unsigned long long)o->mem_max);
		ret = leaf_write(jail, "memory.max", text);
		/* past the limit, the OOM killer, not swap */
		if (!ret && leaf_write(jail, "memory.swap.max", "0") == -EACCES)
			ret = -EACCES;
	}
	if (!ret && o->cpu_quota) {
		snprintf(text, sizeof(text), "%llu %llu", (unsigned long long)o->cpu_quota,
			 (unsigned long long)o->cpu_period);
		ret = leaf_write(jail, "cpu.max", text);
	}
	if (!ret && o->pids_max) {
		snprintf(text, sizeof(text), "%llu", (unsigned long long)o->pids_max);
		ret = leaf_write(jail, "pids.max", text);
	}
	if (ret)
		fprintf(stderr, "snapvm %s: cannot set the limits of cgroup %s: %s\n",
			jail->command, jail->cgroup, strerror(-ret));
	return ret ? EXIT_RUNTIME : 0;
}

int jail_cgroup_create(struct jail *jail)
{
	const struct jail_options *o = &jail->options;
	const struct controller_need needs[] = {
		{ "memory", "--jail-mem", o->mem_max != 0 },
		{ "cpu", "--jail-cpu", o->cpu_quota != 0 },
		{ "pids", "--jail-pids", o->pids_max != 0 },
	};
	char root[PATH_MAX];
	int ret;

	if (!o->mem_max && !o->cpu_quota && !o->pids_max)
		return 0;
	if (cgroup2_mount_find(root, sizeof(root))) {
		fprintf(stderr,
			"snapvm %s: the --jail-* limits need cgroup v2, which is not mounted\n",
			jail->command);
		return EXIT_RUNTIME;
	}
	ret = cgroup_controllers_enable(jail, root, needs, ARRAY_SIZE(needs));
	if (ret)
		return ret;
	if (path_format(jail->cgroup, sizeof(jail->cgroup), "%s/" JAIL_CGROUP_GROUP "/%s-%d", root,
			jail->command, (int)getpid()) ||
	    (mkdir(jail->cgroup, 0755) < 0 && errno != EEXIST)) {
		fprintf(stderr, "snapvm %s: cannot make cgroup %s: %s\n", jail->command,
			jail->cgroup, strerror(errno));
		jail->cgroup[0] = '\0';
		return EXIT_RUNTIME;
	}
	ret = cgroup_limits_write(jail);
	if (ret)
		jail_cgroup_remove(jail);
	return ret;
}

int jail_cgroup_join(const struct jail *jail, pid_t pid)
{
	char text[32];
	int ret;

	if (!jail->cgroup[0])
		return 0;
	snprintf(text, sizeof(text), "%d", (int)pid);
	ret = leaf_write(jail, "cgroup.procs", text);
	if (ret)
		fprintf(stderr, "snapvm %s: cannot move the jailed process into cgroup %s: %s\n",
			jail->command, jail->cgroup, strerror(-ret));
	return ret ? EXIT_RUNTIME : 0;
}

/* The count of one memory.events line ("oom ", "oom_kill "), 0 if none. */
static uint64_t memory_event(const char *events, const char *name)
{
	size_t len = strlen(name);

	for (const char *p = strstr(events, name); p; p = strstr(p + 1, name))
		if (p == events || p[-1] == '\n')
			return strtoull(p + len, NULL, 10);
	return 0;
}

enum jail_oom jail_cgroup_oom(const struct jail *jail)
{
	char path[PATH_MAX], events[1024];

	if (!jail->cgroup[0] || path_format(path, sizeof(path), "%s/memory.events", jail->cgroup) ||
	    file_read(path, events, sizeof(events)))
		return JAIL_OOM_NONE;
	if (memory_event(events, "oom_kill "))
		return JAIL_OOM_KILLED;
	return memory_event(events, "oom ") ? JAIL_OOM_REACHED : JAIL_OOM_NONE;
}

void jail_cgroup_remove(struct jail *jail)
{
	struct timespec pause = { .tv_nsec = 10 * 1000 * 1000 };

	if (!jail->cgroup[0])
		return;
	/* the leaf empties a moment after its last process is reaped: a hang guard, not a wait */
	for (int i = 0; i < 200 && rmdir(jail->cgroup) < 0 && errno == EBUSY; i++)
		nanosleep(&pause, NULL);
	jail->cgroup[0] = '\0';
}
