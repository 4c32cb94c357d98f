/* The daemon's state: made once by `snapvm serve` (or a unit test), freed at the end. */
#include "serve/internal.h"
#include "common/common.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

/* A private directory for the clones' control sockets (short: sun_path holds 107 bytes). */
static int run_dir_make(struct serve *serve)
{
	const char *tmp = getenv("TMPDIR");

	if (serve->config.run_dir) {
		if (path_format(serve->run_dir, sizeof(serve->run_dir), "%s",
				serve->config.run_dir) == 0)
			return 0;
		log_error("run directory path too long");
		return -ENAMETOOLONG;
	}
	if (!tmp || !tmp[0] || strlen(tmp) > 64)
		tmp = "/tmp";
	snprintf(serve->run_dir, sizeof(serve->run_dir), "%s/snapvm-serve.XXXXXX", tmp);
	if (!mkdtemp(serve->run_dir)) {
		int ret = -errno;

		log_error("cannot make a directory in %s: %s", tmp, strerror(-ret));
		return ret;
	}
	serve->own_run_dir = true;
	return 0;
}

static void run_dir_remove(struct serve *serve)
{
	DIR *dir;
	struct dirent *d;
	char path[256];

	if (!serve->own_run_dir)
		return;
	dir = opendir(serve->run_dir);
	while (dir && (d = readdir(dir))) {
		if (d->d_name[0] != '.' &&
		    !path_format(path, sizeof(path), "%s/%s", serve->run_dir, d->d_name))
			unlink(path);
	}
	if (dir)
		closedir(dir);
	rmdir(serve->run_dir);
}

static int serve_init_sync(struct serve *serve)
{
	pthread_condattr_t attr;

	pthread_mutex_init(&serve->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&serve->slot_cond, &attr);
	pthread_cond_init(&serve->idle_cond, &attr);
	pthread_condattr_destroy(&attr);
	serve_metrics_init(&serve->metrics);
	serve->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	serve->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return serve->epoll_fd < 0 || serve->wake_fd < 0 ? -errno : 0;
}

int serve_create(const struct serve_config *config, struct serve **out)
{
	struct serve *serve = calloc(1, sizeof(*serve));
	int ret;

	if (!serve)
		return -ENOMEM;
	serve->config = *config;
	serve->epoll_fd = serve->wake_fd = -1;
	if (config->store_dir)
		snprintf(serve->store_dir, sizeof(serve->store_dir), "%s", config->store_dir);
	else
		snapshot_repo_default_dir(serve->store_dir, sizeof(serve->store_dir));
	serve->config.store_dir = serve->store_dir;
	ret = serve_init_sync(serve);
	if (ret) {
		log_error("cannot set up: %s", strerror(-ret));
		goto err;
	}
	/* for writing: DELETE /snapshots/NAME; the store is made if missing */
	ret = store_open(serve->store_dir, STORE_OPEN_WRITE, &serve->store);
	if (ret)
		goto err; /* the store has said why */
	ret = run_dir_make(serve);
	if (ret)
		goto err;
	serve->config.run_dir = serve->run_dir;
	if (config->jail_base && mkdir(config->jail_base, 0755) < 0 && errno != EEXIST) {
		ret = -errno;
		log_error("cannot make the jails' directory %s: %s", config->jail_base,
			  strerror(errno));
		goto err;
	}
	*out = serve;
	return 0;
err:
	serve_destroy(serve);
	return ret;
}

void serve_destroy(struct serve *serve)
{
	if (!serve)
		return;
	while (serve->children) {
		struct serve_child *c = serve->children;

		serve->children = c->next;
		serve_child_free(c);
	}
	run_dir_remove(serve);
	if (serve->store)
		store_close(serve->store);
	if (serve->epoll_fd >= 0)
		close(serve->epoll_fd);
	if (serve->wake_fd >= 0)
		close(serve->wake_fd);
	serve_metrics_destroy(&serve->metrics);
	pthread_cond_destroy(&serve->slot_cond);
	pthread_cond_destroy(&serve->idle_cond);
	pthread_mutex_destroy(&serve->lock);
	free(serve);
}

void serve_wait_idle(struct serve *serve)
{
	pthread_mutex_lock(&serve->lock);
	while (serve->active)
		pthread_cond_wait(&serve->idle_cond, &serve->lock);
	pthread_mutex_unlock(&serve->lock);
}

void serve_count_client_gone(struct serve *serve)
{
	pthread_mutex_lock(&serve->metrics.lock);
	serve->metrics.clients_gone++;
	pthread_mutex_unlock(&serve->metrics.lock);
}
