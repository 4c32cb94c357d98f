/*
 * Pack objects as files in one directory. An object is written under a
 * temporary name, synced, renamed into place and the directory synced, so a
 * name only ever shows a whole, durable object.
 *
 * Objects are written with O_DIRECT while the caller hands over whole,
 * aligned 4 KiB blocks: copying into the page cache cost more CPU than
 * hashing on the development machine (docs/store-format.md). The last,
 * unaligned piece (or everything, on a file system without O_DIRECT) goes
 * through the page cache, with writeback started every few MiB so that the
 * final sync has little left to do.
 */
#include "store/backend.h"
#include "common/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WRITEBACK_STEP (8 * MiB)
#define DIRECT_ALIGN   4096

struct dir_backend {
	struct backend base;
	char dir[PATH_MAX];
	int dir_fd;
};

struct backend_upload {
	struct dir_backend *backend;
	int fd;
	bool direct; /* O_DIRECT is on */
	uint64_t written;
	uint64_t synced; /* writeback started up to here */
	char name[NAME_MAX + 1];
	char tmp[NAME_MAX + 1];
};

struct backend_object {
	int fd;
};

static struct dir_backend *to_dir(struct backend *backend)
{
	return (struct dir_backend *)backend;
}

static int dir_name_check(const char *name)
{
	if (!*name || strchr(name, '/') || strlen(name) > NAME_MAX - 24 || name[0] == '.')
		return -EINVAL;
	return 0;
}

static int dir_upload_begin(struct backend *backend, const char *name, struct backend_upload **out)
{
	struct dir_backend *db = to_dir(backend);
	struct backend_upload *up;

	if (dir_name_check(name))
		return -EINVAL;
	up = calloc(1, sizeof(*up));
	if (!up)
		return -ENOMEM;
	up->backend = db;
	snprintf(up->name, sizeof(up->name), "%s", name);
	snprintf(up->tmp, sizeof(up->tmp), ".tmp-%s-%d", name, (int)getpid());
	up->fd = openat(db->dir_fd, up->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT,
			0644);
	up->direct = up->fd >= 0;
	if (up->fd < 0 && errno == EINVAL)
		up->fd =
			openat(db->dir_fd, up->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (up->fd < 0) {
		int err = -errno;

		log_error("store: cannot create %s/%s: %s", db->dir, up->tmp, strerror(errno));
		free(up);
		return err;
	}
	*out = up;
	return 0;
}

/* Leaves O_DIRECT for the rest of the object, which is not made of aligned blocks. */
static int dir_upload_buffered(struct backend_upload *up)
{
	int flags = fcntl(up->fd, F_GETFL);

	if (flags < 0 || fcntl(up->fd, F_SETFL, flags & ~O_DIRECT) < 0)
		return -errno;
	up->direct = false;
	up->synced = up->written;
	return 0;
}

static int dir_upload_append(struct backend_upload *up, const void *data, size_t len)
{
	int ret = 0;

	if (up->direct && (len % DIRECT_ALIGN || (uintptr_t)data % DIRECT_ALIGN))
		ret = dir_upload_buffered(up);
	if (!ret)
		ret = write_all(up->fd, data, len);

	if (ret) {
		log_error("store: cannot write %s/%s: %s", up->backend->dir, up->tmp,
			  strerror(-ret));
		return ret;
	}
	up->written += len;
	if (!up->direct && up->written - up->synced >= WRITEBACK_STEP) {
		sync_file_range(up->fd, (off_t)up->synced, (off_t)(up->written - up->synced),
				SYNC_FILE_RANGE_WRITE);
		up->synced = up->written;
	}
	return 0;
}

static void dir_upload_abort(struct backend_upload *up)
{
	close(up->fd);
	unlinkat(up->backend->dir_fd, up->tmp, 0);
	free(up);
}

static int dir_upload_commit(struct backend_upload *up)
{
	struct dir_backend *db = up->backend;
	const char *step = "sync";
	int err;

	if (fdatasync(up->fd) < 0)
		goto err;
	step = "rename";
	if (renameat(db->dir_fd, up->tmp, db->dir_fd, up->name) < 0)
		goto err;
	step = "sync the directory of";
	if (fsync(db->dir_fd) < 0)
		goto err;
	close(up->fd);
	free(up);
	return 0;
err:
	err = -errno;
	log_error("store: cannot %s %s/%s: %s", step, db->dir, up->name, strerror(errno));
	dir_upload_abort(up);
	return err;
}

static int dir_object_open(struct backend *backend, const char *name, struct backend_object **out)
{
	struct dir_backend *db = to_dir(backend);
	struct backend_object *obj;
	int fd;

	if (dir_name_check(name))
		return -EINVAL;
	fd = openat(db->dir_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	obj = malloc(sizeof(*obj));
	if (!obj) {
		close(fd);
		return -ENOMEM;
	}
	obj->fd = fd;
	*out = obj;
	return 0;
}

static int dir_object_read(struct backend_object *obj, uint64_t offset, void *buf, size_t len)
{
	int ret = pread_all(obj->fd, buf, len, offset);

	/* pread_all says -EIO when the file ends early: that is a short pack. */
	return ret == -EIO ? -EBADMSG : ret;
}

static int dir_object_fd(struct backend_object *obj)
{
	return obj->fd;
}

static int dir_object_size(struct backend_object *obj, uint64_t *size)
{
	struct stat st;

	if (fstat(obj->fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

static void dir_object_close(struct backend_object *obj)
{
	close(obj->fd);
	free(obj);
}

static int dir_list(struct backend *backend, int (*fn)(void *opaque, const char *name),
		    void *opaque)
{
	struct dir_backend *db = to_dir(backend);
	int fd = openat(db->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d;
	int ret = 0;

	if (fd < 0 || !(d = fdopendir(fd))) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		log_error("store: cannot list %s: %s", db->dir, strerror(-ret));
		return ret;
	}
	while (!ret && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			ret = fn(opaque, de->d_name);
	}
	closedir(d);
	return ret;
}

static int dir_remove(struct backend *backend, const char *name)
{
	struct dir_backend *db = to_dir(backend);

	if (!*name || strchr(name, '/'))
		return -EINVAL;
	if (unlinkat(db->dir_fd, name, 0) < 0) {
		int err = -errno;

		if (err != -ENOENT)
			log_error("store: cannot delete %s/%s: %s", db->dir, name, strerror(errno));
		return err;
	}
	return 0;
}

/* A directory descriptor left open would let a jailed process open any file of the store. */
static void dir_seal(struct backend *backend)
{
	struct dir_backend *db = to_dir(backend);

	if (db->dir_fd >= 0)
		close(db->dir_fd);
	db->dir_fd = -1;
}

static void dir_destroy(struct backend *backend)
{
	struct dir_backend *db = to_dir(backend);

	if (db->dir_fd >= 0)
		close(db->dir_fd);
	free(db);
}

static const struct backend_ops dir_ops = {
	.upload_begin = dir_upload_begin,
	.upload_append = dir_upload_append,
	.upload_commit = dir_upload_commit,
	.upload_abort = dir_upload_abort,
	.object_open = dir_object_open,
	.object_read = dir_object_read,
	.object_fd = dir_object_fd,
	.object_size = dir_object_size,
	.object_close = dir_object_close,
	.list = dir_list,
	.remove = dir_remove,
	.seal = dir_seal,
	.destroy = dir_destroy,
};

int backend_dir_create(const char *dir, bool create, struct backend **backend)
{
	struct dir_backend *db = calloc(1, sizeof(*db));
	int err;

	if (!db)
		return -ENOMEM;
	if (path_format(db->dir, sizeof(db->dir), "%s", dir)) {
		free(db);
		return -ENAMETOOLONG;
	}
	if (create && mkdir(dir, 0755) < 0 && errno != EEXIST)
		goto err;
	db->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (db->dir_fd < 0)
		goto err;
	db->base.ops = &dir_ops;
	*backend = &db->base;
	return 0;
err:
	err = -errno;
	log_error("store: cannot open pack directory %s: %s", dir, strerror(errno));
	free(db);
	return err;
}
