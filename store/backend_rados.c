/*
 * Packs as objects in a Ceph RADOS pool, with a local file per pack as a
 * cache of the ranges read so far (remote.h says what else the pool holds).
 *
 * Uploads create the object exclusively (so two hosts never share a pack
 * id), then stream it in 4 MiB aio writes, several in flight, while the same
 * bytes go into the local cache file: the host that wrote a snapshot
 * restores it from its cache. An object is not referenced by the catalog
 * until the snapshot that uses it is published, and gc (holding the
 * exclusive lock, so no upload is under way) deletes objects the catalog
 * does not name.
 *
 * Reads go through the cache file, fetched in 64 KiB blocks: which blocks
 * are present is known from the file's extents (SEEK_DATA), so every process
 * on the host shares what any of them fetched. Several missing runs are
 * fetched with parallel aio reads. Every chunk read from the file is checked
 * against its digest by the caller, as with local packs.
 */
#include "store/remote.h"
#include "common/common.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <rados/librados.h>

#define UPLOAD_BLOCK	 (4 * MiB)
#define UPLOAD_INFLIGHT	 16 /* 64 MiB of writes in flight: 1.35 s for 261 MiB here, 8: 1.5 s */
#define FETCH_BLOCK	 (64 * 1024)
#define FETCH_RUN_MAX	 (4 * MiB)
#define FETCH_INFLIGHT	 64
#define LOCK_OBJECT	 "snapvm.lock"
#define LOCK_NAME	 "snapvm"
#define LOCK_DURATION_S	 30 /* a crashed holder blocks the others this long at most */
#define LOCK_RENEW_NS	 (10 * 1000000000ULL)
#define CACHE_SIZE_XATTR "user.snapvm.size"
#define OMAP_PAGE	 1024

/*
 * librados is loaded when a RADOS store is opened, not linked: it brings in
 * Ceph's C++ runtime, which costs every snapvm process ~15 ms to load.
 */
#define RADOS_FUNCTIONS(X)              \
	X(rados_aio_create_completion2) \
	X(rados_aio_get_return_value)   \
	X(rados_aio_read)               \
	X(rados_aio_release)            \
	X(rados_aio_wait_for_complete)  \
	X(rados_aio_write)              \
	X(rados_conf_read_file)         \
	X(rados_conf_set)               \
	X(rados_connect)                \
	X(rados_create)                 \
	X(rados_create_read_op)         \
	X(rados_create_write_op)        \
	X(rados_ioctx_create)           \
	X(rados_ioctx_destroy)          \
	X(rados_lock_exclusive)         \
	X(rados_lock_shared)            \
	X(rados_nobjects_list_close)    \
	X(rados_nobjects_list_next)     \
	X(rados_nobjects_list_open)     \
	X(rados_omap_get_end)           \
	X(rados_omap_get_next2)         \
	X(rados_read)                   \
	X(rados_read_op_omap_get_vals2) \
	X(rados_read_op_operate)        \
	X(rados_release_read_op)        \
	X(rados_release_write_op)       \
	X(rados_remove)                 \
	X(rados_shutdown)               \
	X(rados_stat)                   \
	X(rados_unlock)                 \
	X(rados_write_full)             \
	X(rados_write_op_create)        \
	X(rados_write_op_omap_rm_keys2) \
	X(rados_write_op_omap_cmp)      \
	X(rados_write_op_omap_set2)     \
	X(rados_write_op_operate)

static struct {
#define X(f) __typeof__(&f) f##_fn;
	RADOS_FUNCTIONS(X)
#undef X
} rados_lib;
static pthread_once_t rados_lib_once = PTHREAD_ONCE_INIT;
static char rados_lib_error[256];

static void rados_lib_load(void)
{
	void *h = dlopen("librados.so.2", RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		snprintf(rados_lib_error, sizeof(rados_lib_error),
			 "cannot load librados (Debian: librados2): %s", dlerror());
		return;
	}
#define X(f)                                                                           \
	if (!(rados_lib.f##_fn = (__typeof__(&f))dlsym(h, #f)) && !rados_lib_error[0]) \
		snprintf(rados_lib_error, sizeof(rados_lib_error), "librados has no %s", #f);
	RADOS_FUNCTIONS(X)
#undef X
}

/* Loads librados once; -ENOSYS (logged) if it cannot be. */
static int rados_lib_ready(void)
{
	pthread_once(&rados_lib_once, rados_lib_load);
	if (rados_lib_error[0]) {
		log_error("store: %s", rados_lib_error);
		return -ENOSYS;
	}
	return 0;
}

struct remote {
	struct remote_spec spec;
	pthread_mutex_t connect_lock;
	pthread_cond_t connect_cond;
	pthread_t connector; /* connects when asked: see remote_connector */
	bool connector_started;
	bool connect_asked;  /* remote_ready asked the connector to connect */
	bool connector_exit; /* remote_disconnect: the connector ends, unasked */
	bool connected;	     /* a connection was tried (remote_ready) */
	int connect_ret;     /* and its outcome */
	rados_t cluster;
	rados_ioctx_t io;
	char pool[128];
	char cookie[64];
	bool locked;
	bool exclusive;
	uint64_t locked_ns; /* when the lock was last taken or renewed */
};

struct rados_backend {
	struct backend base;
	struct remote *remote;
	char dir[PATH_MAX];
	int dir_fd;
};

struct backend_upload {
	struct rados_backend *backend;
	char name[NAME_MAX + 1];
	int cache_fd;
	uint8_t *buf; /* the block being filled */
	size_t buf_len;
	uint64_t written; /* bytes handed to aio writes */
	struct upload_io {
		rados_completion_t c;
		uint8_t *buf;
	} io[UPLOAD_INFLIGHT];
	unsigned next; /* slot of the next aio write */
	int error;
};

struct backend_object {
	struct rados_backend *backend;
	char name[NAME_MAX + 1];
	int fd;
	uint64_t size;
	pthread_mutex_t lock; /* guards present */
	uint8_t *present;     /* a byte per FETCH_BLOCK: fetched into fd */
	size_t blocks;
};

/* Writes all of buf at offset; -errno on failure. */
static int pwrite_all(int fd, const void *buf, size_t len, uint64_t offset)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		offset += (uint64_t)n;
	}
	return 0;
}

/* Deletes a directory of plain files. */
static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
	rmdir(path);
}

bool remote_spec_is(const char *spec)
{
	return !strncmp(spec, REMOTE_PREFIX, strlen(REMOTE_PREFIX));
}

/* Copies a query value into out; -EINVAL if it does not fit. */
static int spec_value(const char *value, size_t len, char *out, size_t size)
{
	if (len == 0 || len >= size)
		return -EINVAL;
	memcpy(out, value, len);
	out[len] = '\0';
	return 0;
}

int remote_spec_parse(const char *spec, struct remote_spec *out)
{
	const char *p = spec + strlen(REMOTE_PREFIX), *q = strchr(p, '?');
	size_t pool_len = q ? (size_t)(q - p) : strlen(p);
	const char *home = getenv("HOME");
	char timeout[16] = "";
	int ret = 0;

	memset(out, 0, sizeof(*out));
	out->timeout_s = REMOTE_TIMEOUT_S;
	snprintf(out->id, sizeof(out->id), "admin");
	if (!remote_spec_is(spec) || spec_value(p, pool_len, out->pool, sizeof(out->pool)))
		goto bad;
	for (p = q ? q + 1 : NULL; p && *p && !ret;) {
		const char *end = strchr(p, '&'), *eq = strchr(p, '=');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (!eq || eq > p + len)
			goto bad;
		if (!strncmp(p, "conf=", 5))
			ret = spec_value(eq + 1, len - 5, out->conf, sizeof(out->conf));
		else if (!strncmp(p, "id=", 3))
			ret = spec_value(eq + 1, len - 3, out->id, sizeof(out->id));
		else if (!strncmp(p, "cache=", 6))
			ret = spec_value(eq + 1, len - 6, out->cache, sizeof(out->cache));
		else if (!strncmp(p, "timeout=", 8))
			ret = spec_value(eq + 1, len - 8, timeout, sizeof(timeout));
		else
			goto bad;
		p = end ? end + 1 : NULL;
	}
	if (ret)
		goto bad;
	if (!timeout[0] && getenv("SNAPVM_STORE_TIMEOUT"))
		snprintf(timeout, sizeof(timeout), "%s", getenv("SNAPVM_STORE_TIMEOUT"));
	if (timeout[0]) {
		char *end;
		unsigned long t = strtoul(timeout, &end, 10);

		if (*end || t == 0 || t > 3600)
			goto bad;
		out->timeout_s = (unsigned)t;
	}
	if (!out->cache[0] &&
	    path_format(out->cache, sizeof(out->cache), "%s/.cache/snapvm/rados-%s",
			home && *home ? home : "/root", out->pool))
		goto bad;
	return 0;
bad:
	log_error("store: '%s' is not rados:POOL[?conf=PATH&id=CLIENT&cache=DIR&timeout=SECONDS]",
		  spec);
	return -EINVAL;
}

/* Loads librados, connects and opens the pool, once (remote_ready). */
static void remote_connect_now(struct remote *r)
{
	const struct remote_spec *spec = &r->spec;
	const char *step = "load librados";
	char timeout[16];
	int ret = rados_lib_ready();

	snprintf(timeout, sizeof(timeout), "%u", spec->timeout_s);
	if (ret)
		goto out;
	step = "create a cluster handle";
	ret = rados_lib.rados_create_fn(&r->cluster, spec->id);
	if (ret)
		goto err;
	step = "read the configuration";
	ret = rados_lib.rados_conf_read_file_fn(r->cluster, spec->conf[0] ? spec->conf : NULL);
	if (!ret)
		ret = rados_lib.rados_conf_set_fn(r->cluster, "rados_osd_op_timeout", timeout);
	if (!ret)
		ret = rados_lib.rados_conf_set_fn(r->cluster, "rados_mon_op_timeout", timeout);
	if (!ret)
		ret = rados_lib.rados_conf_set_fn(r->cluster, "client_mount_timeout", timeout);
	if (!ret) {
		step = "connect to the cluster";
		ret = rados_lib.rados_connect_fn(r->cluster);
	}
	if (!ret) {
		step = "open the pool";
		ret = rados_lib.rados_ioctx_create_fn(r->cluster, spec->pool, &r->io);
	}
	if (ret) {
		rados_lib.rados_shutdown_fn(r->cluster);
		r->cluster = NULL;
	}
err:
	if (ret)
		log_error("store rados:%s: cannot %s%s%s: %s", spec->pool, step,
			  spec->conf[0] ? " with " : "", spec->conf, strerror(-ret));
out:
	r->connect_ret = ret;
}

/*
 * The thread that connects. librados starts its own threads (messengers,
 * timers) from the thread that connects, and they inherit that thread's
 * seccomp filter: connecting from a pager's or an event loop's thread would
 * leave them with its narrow list. This thread is made when the store is
 * opened, so it, and librados's threads, keep the filter the process had
 * then (snapvm's start-up filter).
 */
static void *remote_connector(void *arg)
{
	struct remote *r = arg;

	pthread_mutex_lock(&r->connect_lock);
	while (!r->connect_asked && !r->connector_exit)
		pthread_cond_wait(&r->connect_cond, &r->connect_lock);
	if (r->connect_asked && !r->connected) {
		remote_connect_now(r);
		r->connected = true;
	}
	pthread_cond_broadcast(&r->connect_cond);
	pthread_mutex_unlock(&r->connect_lock);
	return NULL;
}

int remote_connect(const struct remote_spec *spec, struct remote **out)
{
	struct remote *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->spec = *spec;
	snprintf(r->pool, sizeof(r->pool), "%s", spec->pool);
	snprintf(r->cookie, sizeof(r->cookie), "%ld-%d", gethostid(), (int)getpid());
	pthread_mutex_init(&r->connect_lock, NULL);
	pthread_cond_init(&r->connect_cond, NULL);
	/* without the thread, remote_ready connects on its caller's thread */
	r->connector_started = pthread_create(&r->connector, NULL, remote_connector, r) == 0;
	*out = r;
	return 0;
}

/*
 * Connecting costs ~25 ms of CPU and round trips (loading librados, the
 * monitor handshake, the maps); a restore whose snapshot and pages are all
 * in the local cache needs no connection, so it is made on first use only.
 */
int remote_ready(struct remote *r)
{
	pthread_mutex_lock(&r->connect_lock);
	r->connect_asked = true;
	pthread_cond_broadcast(&r->connect_cond);
	while (!r->connected && r->connector_started)
		pthread_cond_wait(&r->connect_cond, &r->connect_lock);
	if (!r->connected) {
		remote_connect_now(r);
		r->connected = true;
	}
	pthread_mutex_unlock(&r->connect_lock);
	return r->connect_ret;
}

void remote_disconnect(struct remote *r)
{
	if (!r)
		return;
	if (r->connector_started) {
		/* it connects only if asked: tell it to go, then wait for it */
		pthread_mutex_lock(&r->connect_lock);
		r->connector_exit = true;
		pthread_cond_broadcast(&r->connect_cond);
		pthread_mutex_unlock(&r->connect_lock);
		pthread_join(r->connector, NULL);
	}
	if (r->connected && r->connect_ret == 0) {
		remote_unlock(r);
		rados_lib.rados_ioctx_destroy_fn(r->io);
		rados_lib.rados_shutdown_fn(r->cluster);
	}
	pthread_cond_destroy(&r->connect_cond);
	pthread_mutex_destroy(&r->connect_lock);
	free(r);
}

int remote_lock(struct remote *r, bool exclusive, bool wait)
{
	struct timeval duration = { .tv_sec = LOCK_DURATION_S };
	bool warned = false;
	int ret = remote_ready(r);

	if (ret)
		return ret;
	for (;;) {
		ret = exclusive ? rados_lib.rados_lock_exclusive_fn(r->io, LOCK_OBJECT, LOCK_NAME,
								    r->cookie, "gc", &duration, 0)
				: rados_lib.rados_lock_shared_fn(r->io, LOCK_OBJECT, LOCK_NAME,
								 r->cookie, "writers", "write",
								 &duration, 0);
		if (ret != -EBUSY || !wait)
			break;
		if (!warned)
			log_warn("store rados:%s: waiting for the pool's %s lock", r->pool,
				 exclusive ? "exclusive" : "shared");
		warned = true;
		usleep(100 * 1000);
	}
	if (ret == -EBUSY)
		log_error("store rados:%s: another host holds the pool's lock; try again later",
			  r->pool);
	else if (ret)
		log_error("store rados:%s: cannot take the pool's lock: %s", r->pool,
			  strerror(-ret));
	r->locked = !ret;
	r->exclusive = exclusive;
	r->locked_ns = time_now_ns();
	return ret;
}

/* Renews the lock before it expires, for holders that write for long. */
static void remote_lock_renew(struct remote *r)
{
	struct timeval duration = { .tv_sec = LOCK_DURATION_S };
	uint64_t now = time_now_ns();
	int ret;

	if (!r->locked || now - r->locked_ns < LOCK_RENEW_NS)
		return;
	ret = r->exclusive
		      ? rados_lib.rados_lock_exclusive_fn(r->io, LOCK_OBJECT, LOCK_NAME, r->cookie,
							  "gc", &duration,
							  LIBRADOS_LOCK_FLAG_MAY_RENEW)
		      : rados_lib.rados_lock_shared_fn(r->io, LOCK_OBJECT, LOCK_NAME, r->cookie,
						       "writers", "write", &duration,
						       LIBRADOS_LOCK_FLAG_MAY_RENEW);
	if (ret)
		log_warn("store rados:%s: cannot renew the pool's lock: %s", r->pool,
			 strerror(-ret));
	else
		r->locked_ns = now;
}

void remote_unlock(struct remote *r)
{
	if (r->locked)
		rados_lib.rados_unlock_fn(r->io, LOCK_OBJECT, LOCK_NAME, r->cookie);
	r->locked = false;
}

int remote_object_get(struct remote *r, const char *name, uint8_t **data, size_t *len)
{
	uint64_t size;
	time_t mtime;
	uint8_t *buf;
	int ret = remote_ready(r);

	if (!ret)
		ret = rados_lib.rados_stat_fn(r->io, name, &size, &mtime);
	if (ret)
		return ret;
	buf = malloc(size ? size : 1);
	if (!buf)
		return -ENOMEM;
	ret = size ? rados_lib.rados_read_fn(r->io, name, (char *)buf, size, 0) : 0;
	if (ret >= 0 && (uint64_t)ret != size)
		ret = -EBADMSG;
	if (ret < 0) {
		free(buf);
		return ret;
	}
	*data = buf;
	*len = size;
	return 0;
}

int remote_object_put(struct remote *r, const char *name, const void *data, size_t len)
{
	int ret = remote_ready(r);

	if (!ret)
		ret = rados_lib.rados_write_full_fn(r->io, name, data, len);
	if (ret)
		log_error("store rados:%s: cannot write object %s: %s", r->pool, name,
			  strerror(-ret));
	return ret;
}

int remote_object_remove(struct remote *r, const char *name)
{
	int ret = remote_ready(r);

	return ret ? ret : rados_lib.rados_remove_fn(r->io, name);
}

int remote_catalog_read(struct remote *r,
			int (*fn)(void *opaque, const char *key, const void *value, size_t len),
			void *opaque)
{
	char after[256] = "";
	unsigned char more = 1;
	int ret = remote_ready(r);

	if (ret)
		return ret;
	while (more && !ret) {
		rados_read_op_t op = rados_lib.rados_create_read_op_fn();
		rados_omap_iter_t it;
		int prval = 0;
		char *key, *val;
		size_t klen, vlen;

		rados_lib.rados_read_op_omap_get_vals2_fn(op, after, "", OMAP_PAGE, &it, &more,
							  &prval);
		ret = rados_lib.rados_read_op_operate_fn(op, r->io, REMOTE_CATALOG, 0);
		if (!ret)
			ret = prval;
		if (ret == -ENOENT) { /* an empty pool */
			rados_lib.rados_omap_get_end_fn(it);
			rados_lib.rados_release_read_op_fn(op);
			return 0;
		}
		while (!ret &&
		       rados_lib.rados_omap_get_next2_fn(it, &key, &val, &klen, &vlen) == 0 &&
		       key) {
			char k[256];

			if (klen >= sizeof(k))
				continue;
			memcpy(k, key, klen);
			k[klen] = '\0';
			snprintf(after, sizeof(after), "%s", k);
			ret = fn(opaque, k, val, vlen);
		}
		rados_lib.rados_omap_get_end_fn(it); /* made with the op, whatever came of it */
		rados_lib.rados_release_read_op_fn(op);
	}
	if (ret < 0)
		log_error("store rados:%s: cannot read the catalog: %s", r->pool, strerror(-ret));
	return ret;
}

int remote_catalog_update(struct remote *r, const struct remote_update *u)
{
	int ret = remote_ready(r);
	rados_write_op_t op = ret ? NULL : rados_lib.rados_create_write_op_fn();
	size_t *key_lens = calloc(u->set_count + u->rm_count + 1, sizeof(size_t));
	int cmp_ret[8] = { 0 };

	if (ret || !op || !key_lens || u->absent_count > ARRAY_SIZE(cmp_ret)) {
		free(key_lens);
		if (op)
			rados_lib.rados_release_write_op_fn(op);
		return ret ? ret : u->absent_count > ARRAY_SIZE(cmp_ret) ? -EINVAL : -ENOMEM;
	}
	for (size_t i = 0; i < u->set_count; i++)
		key_lens[i] = strlen(u->set_keys[i]);
	for (size_t i = 0; i < u->rm_count; i++)
		key_lens[u->set_count + i] = strlen(u->rm_keys[i]);
	rados_lib.rados_write_op_create_fn(op, 0, NULL);
	/* an absent key compares equal to an empty value; records are never empty */
	for (size_t i = 0; i < u->absent_count; i++)
		rados_lib.rados_write_op_omap_cmp_fn(op, u->absent_keys[i], LIBRADOS_CMPXATTR_OP_EQ,
						     "", 0, &cmp_ret[i]);
	if (u->set_count)
		rados_lib.rados_write_op_omap_set2_fn(op, u->set_keys,
						      (const char *const *)u->values, key_lens,
						      u->value_lens, u->set_count);
	if (u->rm_count)
		rados_lib.rados_write_op_omap_rm_keys2_fn(op, u->rm_keys, key_lens + u->set_count,
							  u->rm_count);
	ret = rados_lib.rados_write_op_operate_fn(op, r->io, REMOTE_CATALOG, NULL, 0);
	rados_lib.rados_release_write_op_fn(op);
	free(key_lens);
	if (ret == -ECANCELED) {
		for (size_t i = 0; i < u->absent_count; i++) {
			if (cmp_ret[i])
				log_error(
					"store rados:%s: another host has committed '%s' meanwhile",
					r->pool, u->absent_keys[i]);
		}
		return -EEXIST;
	}
	if (ret)
		log_error("store rados:%s: cannot update the catalog: %s", r->pool, strerror(-ret));
	return ret;
}

/* ---- the backend ---- */

/* The object's size, recorded on its cache file; -ENODATA if not recorded. */
static int cache_size_get(int fd, uint64_t *size)
{
	uint8_t v[8];

	if (fgetxattr(fd, CACHE_SIZE_XATTR, v, sizeof(v)) != sizeof(v))
		return -ENODATA;
	*size = 0;
	for (int i = 7; i >= 0; i--)
		*size = *size << 8 | v[i];
	return 0;
}

static void cache_size_set(int fd, uint64_t size)
{
	uint8_t v[8];

	for (int i = 0; i < 8; i++)
		v[i] = (uint8_t)(size >> (8 * i));
	fsetxattr(fd, CACHE_SIZE_XATTR, v, sizeof(v), 0);
}

static struct rados_backend *to_rados(struct backend *backend)
{
	return (struct rados_backend *)backend;
}

static int rados_name_check(const char *name)
{
	if (!*name || strchr(name, '/') || strlen(name) > NAME_MAX - 8 || name[0] == '.')
		return -EINVAL;
	return 0;
}

/* Waits for the aio write in slot i, if any; keeps the first error. */
static void upload_wait(struct backend_upload *up, unsigned i)
{
	struct upload_io *io = &up->io[i];
	int ret;

	if (!io->c)
		return;
	rados_lib.rados_aio_wait_for_complete_fn(io->c);
	ret = rados_lib.rados_aio_get_return_value_fn(io->c);
	rados_lib.rados_aio_release_fn(io->c);
	io->c = NULL;
	if (ret < 0 && !up->error) {
		log_error("store rados:%s: cannot write object %s: %s", up->backend->remote->pool,
			  up->name, strerror(-ret));
		up->error = ret;
	}
}

static void upload_free(struct backend_upload *up)
{
	for (unsigned i = 0; i < UPLOAD_INFLIGHT; i++) {
		upload_wait(up, i);
		free(up->io[i].buf);
	}
	if (up->cache_fd >= 0)
		close(up->cache_fd);
	free(up->buf);
	free(up);
}

static int rados_upload_begin(struct backend *backend, const char *name,
			      struct backend_upload **out)
{
	struct rados_backend *rb = to_rados(backend);
	rados_write_op_t op;
	struct backend_upload *up;
	int ret;

	if (rados_name_check(name))
		return -EINVAL;
	ret = remote_ready(rb->remote);
	if (ret)
		return ret;
	op = rados_lib.rados_create_write_op_fn();
	if (!op)
		return -ENOMEM;
	rados_lib.rados_write_op_create_fn(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
	ret = rados_lib.rados_write_op_operate_fn(op, rb->remote->io, name, NULL, 0);
	rados_lib.rados_release_write_op_fn(op);
	if (ret == -EEXIST)
		return ret; /* another host has this id: the pack writer takes the next */
	if (ret) {
		log_error("store rados:%s: cannot create object %s: %s", rb->remote->pool, name,
			  strerror(-ret));
		return ret;
	}
	up = calloc(1, sizeof(*up));
	if (!up || !(up->buf = malloc(UPLOAD_BLOCK))) {
		free(up);
		rados_lib.rados_remove_fn(rb->remote->io, name);
		return -ENOMEM;
	}
	up->backend = rb;
	snprintf(up->name, sizeof(up->name), "%s", name);
	/* a stale cache file of a pack id gc freed must not survive */
	up->cache_fd = openat(rb->dir_fd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (up->cache_fd >= 0)
		fremovexattr(up->cache_fd, CACHE_SIZE_XATTR);
	*out = up;
	return 0;
}

/* Sends the filled block as one aio write, waiting for the slot's previous one. */
static int upload_flush(struct backend_upload *up)
{
	struct upload_io *io = &up->io[up->next];
	int ret;

	if (!up->buf_len)
		return 0;
	remote_lock_renew(up->backend->remote);
	upload_wait(up, up->next);
	if (up->error)
		return up->error;
	if (!io->buf && !(io->buf = malloc(UPLOAD_BLOCK)))
		return -ENOMEM;
	memcpy(io->buf, up->buf, up->buf_len);
	ret = rados_lib.rados_aio_create_completion2_fn(NULL, NULL, &io->c);
	if (!ret)
		ret = rados_lib.rados_aio_write_fn(up->backend->remote->io, up->name, io->c,
						   (char *)io->buf, up->buf_len, up->written);
	if (ret) {
		if (io->c)
			rados_lib.rados_aio_release_fn(io->c);
		io->c = NULL;
		log_error("store rados:%s: cannot write object %s: %s", up->backend->remote->pool,
			  up->name, strerror(-ret));
		return up->error = ret;
	}
	if (up->cache_fd >= 0 && pwrite_all(up->cache_fd, io->buf, up->buf_len, up->written)) {
		close(up->cache_fd); /* the cache is an optimisation: go without it */
		up->cache_fd = -1;
		unlinkat(up->backend->dir_fd, up->name, 0);
	}
	up->written += up->buf_len;
	up->buf_len = 0;
	up->next = (up->next + 1) % UPLOAD_INFLIGHT;
	return 0;
}

static int rados_upload_append(struct backend_upload *up, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len) {
		size_t n = MIN(len, UPLOAD_BLOCK - up->buf_len);
		int ret;

		memcpy(up->buf + up->buf_len, p, n);
		up->buf_len += n;
		p += n;
		len -= n;
		if (up->buf_len == UPLOAD_BLOCK && (ret = upload_flush(up)))
			return ret;
	}
	return 0;
}

static void rados_upload_abort(struct backend_upload *up)
{
	struct rados_backend *rb = up->backend;

	for (unsigned i = 0; i < UPLOAD_INFLIGHT; i++)
		upload_wait(up, i);
	rados_lib.rados_remove_fn(rb->remote->io, up->name);
	unlinkat(rb->dir_fd, up->name, 0);
	upload_free(up);
}

static int rados_upload_commit(struct backend_upload *up)
{
	int ret = upload_flush(up);

	for (unsigned i = 0; i < UPLOAD_INFLIGHT; i++)
		upload_wait(up, i);
	ret = ret ? ret : up->error;
	if (ret) {
		rados_upload_abort(up);
		return ret;
	}
	if (up->cache_fd >= 0)
		cache_size_set(up->cache_fd, up->written);
	upload_free(up);
	return 0;
}

/* Marks the blocks the cache file holds, from its extents. */
static void object_scan_cache(struct backend_object *obj)
{
	off_t data = 0, hole;

	while ((data = lseek(obj->fd, data, SEEK_DATA)) >= 0) {
		hole = lseek(obj->fd, data, SEEK_HOLE);
		if (hole < 0)
			break;
		/* only whole blocks, and the object's last partial one, count */
		for (uint64_t b = ((uint64_t)data + FETCH_BLOCK - 1) / FETCH_BLOCK;
		     b < obj->blocks && (b + 1) * FETCH_BLOCK <= (uint64_t)hole; b++)
			obj->present[b] = 1;
		if ((uint64_t)hole >= obj->size && obj->blocks &&
		    (uint64_t)data <= (obj->blocks - 1) * FETCH_BLOCK)
			obj->present[obj->blocks - 1] = 1;
		data = hole;
	}
}

static int rados_object_open(struct backend *backend, const char *name, struct backend_object **out)
{
	struct rados_backend *rb = to_rados(backend);
	struct backend_object *obj;
	time_t mtime;
	uint64_t size;
	int fd, ret;

	if (rados_name_check(name))
		return -EINVAL;
	/* packs never change: a size the cache recorded spares a round trip to the pool */
	fd = openat(rb->dir_fd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || cache_size_get(fd, &size)) {
		ret = remote_ready(rb->remote);
		if (!ret)
			ret = rados_lib.rados_stat_fn(rb->remote->io, name, &size, &mtime);
		if (ret) {
			if (ret != -ENOENT)
				log_error("store rados:%s: cannot open object %s: %s",
					  rb->remote->pool, name, strerror(-ret));
			if (fd >= 0)
				close(fd);
			return ret;
		}
		if (fd >= 0)
			cache_size_set(fd, size);
	}
	obj = calloc(1, sizeof(*obj));
	if (!obj) {
		if (fd >= 0)
			close(fd);
		return -ENOMEM;
	}
	obj->backend = rb;
	obj->size = size;
	snprintf(obj->name, sizeof(obj->name), "%s", name);
	obj->blocks = (size + FETCH_BLOCK - 1) / FETCH_BLOCK;
	obj->present = calloc(obj->blocks ? obj->blocks : 1, 1);
	obj->fd = fd;
	if (!obj->present || obj->fd < 0) {
		ret = obj->fd < 0 ? -errno : -ENOMEM;
		log_error("store rados:%s: cannot open the cache file %s/%s: %s", rb->remote->pool,
			  rb->dir, name, strerror(-ret));
		if (obj->fd >= 0)
			close(obj->fd);
		free(obj->present);
		free(obj);
		return ret;
	}
	pthread_mutex_init(&obj->lock, NULL);
	object_scan_cache(obj);
	*out = obj;
	return 0;
}

struct fetch_run {
	uint64_t first, count; /* blocks */
	rados_completion_t c;
	uint8_t *buf;
	size_t len;
};

/* Starts an aio read of run; waits for it in fetch_finish. */
static int fetch_start(struct backend_object *obj, struct fetch_run *run)
{
	uint64_t off = run->first * FETCH_BLOCK;
	int ret;

	run->len = MIN(run->count * FETCH_BLOCK, obj->size - off);
	run->buf = malloc(run->len);
	if (!run->buf)
		return -ENOMEM;
	ret = rados_lib.rados_aio_create_completion2_fn(NULL, NULL, &run->c);
	if (!ret)
		ret = rados_lib.rados_aio_read_fn(obj->backend->remote->io, obj->name, run->c,
						  (char *)run->buf, run->len, off);
	if (ret && run->c) {
		rados_lib.rados_aio_release_fn(run->c);
		run->c = NULL;
	}
	return ret;
}

static int fetch_finish(struct backend_object *obj, struct fetch_run *run)
{
	int ret = 0;

	if (run->c) {
		rados_lib.rados_aio_wait_for_complete_fn(run->c);
		ret = rados_lib.rados_aio_get_return_value_fn(run->c);
		rados_lib.rados_aio_release_fn(run->c);
		run->c = NULL;
		if (ret >= 0 && (size_t)ret != run->len)
			ret = -EBADMSG; /* the object is shorter than it was */
		else if (ret >= 0)
			ret = pwrite_all(obj->fd, run->buf, run->len, run->first * FETCH_BLOCK);
		if (!ret) {
			pthread_mutex_lock(&obj->lock);
			memset(obj->present + run->first, 1, run->count);
			pthread_mutex_unlock(&obj->lock);
		}
	}
	free(run->buf);
	run->buf = NULL;
	return ret;
}

/* Collects the runs of missing blocks covering the ranges, at most max. */
static size_t fetch_plan(struct backend_object *obj, const uint64_t *offsets, const uint32_t *lens,
			 size_t n, struct fetch_run *runs, size_t max, uint8_t *want)
{
	size_t count = 0;

	memset(want, 0, obj->blocks);
	pthread_mutex_lock(&obj->lock);
	for (size_t i = 0; i < n; i++) {
		uint64_t end = MIN(offsets[i] + lens[i], obj->size);

		for (uint64_t b = offsets[i] / FETCH_BLOCK; b * FETCH_BLOCK < end; b++)
			want[b] = !obj->present[b];
	}
	pthread_mutex_unlock(&obj->lock);
	for (uint64_t b = 0; b < obj->blocks && count < max; b++) {
		if (!want[b])
			continue;
		if (count && runs[count - 1].first + runs[count - 1].count == b &&
		    runs[count - 1].count < FETCH_RUN_MAX / FETCH_BLOCK) {
			runs[count - 1].count++;
			continue;
		}
		runs[count++] = (struct fetch_run){ .first = b, .count = 1 };
	}
	return count;
}

static int rados_object_fetch(struct backend_object *obj, const uint64_t *offsets,
			      const uint32_t *lens, size_t n)
{
	struct fetch_run runs[FETCH_INFLIGHT];
	uint8_t *want = malloc(obj->blocks ? obj->blocks : 1);
	int ret = 0;
	size_t count;

	if (!want)
		return -ENOMEM;
	/* each pass fetches up to FETCH_INFLIGHT runs at once; a pass that finds none ends */
	while (!ret && (count = fetch_plan(obj, offsets, lens, n, runs, FETCH_INFLIGHT, want))) {
		size_t started = 0;

		ret = remote_ready(obj->backend->remote); /* only what the cache lacks needs it */
		if (ret)
			break;
		for (; started < count && !ret; started++)
			ret = fetch_start(obj, &runs[started]);
		for (size_t i = 0; i < started; i++) {
			int err = fetch_finish(obj, &runs[i]);

			ret = ret ? ret : err;
		}
	}
	free(want);
	return ret; /* the caller names the chunk that could not be read */
}

static bool rados_object_cached(struct backend_object *obj, uint64_t offset, uint32_t len)
{
	uint64_t end = MIN(offset + len, obj->size);
	bool cached = true;

	pthread_mutex_lock(&obj->lock);
	for (uint64_t b = offset / FETCH_BLOCK; cached && b * FETCH_BLOCK < end; b++)
		cached = obj->present[b];
	pthread_mutex_unlock(&obj->lock);
	return cached;
}

static int rados_object_read(struct backend_object *obj, uint64_t offset, void *buf, size_t len)
{
	uint32_t l = (uint32_t)len;
	int ret;

	if (offset + len > obj->size)
		return -EBADMSG;
	for (size_t done = 0; done < len; done += l) {
		uint64_t off = offset + done;

		l = (uint32_t)MIN(len - done, FETCH_RUN_MAX);
		ret = rados_object_fetch(obj, &off, &l, 1);
		if (ret)
			return ret;
	}
	ret = pread_all(obj->fd, buf, len, offset);
	return ret == -EIO ? -EBADMSG : ret;
}

static int rados_object_fd(struct backend_object *obj)
{
	return obj->fd;
}

static int rados_object_size(struct backend_object *obj, uint64_t *size)
{
	*size = obj->size;
	return 0;
}

static void rados_object_close(struct backend_object *obj)
{
	close(obj->fd);
	pthread_mutex_destroy(&obj->lock);
	free(obj->present);
	free(obj);
}

/* Lists pack objects only: the catalog, the lock and .idx objects are not packs. */
static int rados_list(struct backend *backend, int (*fn)(void *opaque, const char *name),
		      void *opaque)
{
	struct rados_backend *rb = to_rados(backend);
	rados_list_ctx_t ctx;
	const char *entry;
	int ret = remote_ready(rb->remote);

	if (ret)
		return ret;
	ret = rados_lib.rados_nobjects_list_open_fn(rb->remote->io, &ctx);

	while (!ret &&
	       (ret = rados_lib.rados_nobjects_list_next_fn(ctx, &entry, NULL, NULL)) == 0) {
		size_t len = strlen(entry);

		if (len > 5 && !strcmp(entry + len - 5, ".pack"))
			ret = fn(opaque, entry);
	}
	if (ret != -ENOENT || !ctx)
		rados_lib.rados_nobjects_list_close_fn(ctx);
	else
		rados_lib.rados_nobjects_list_close_fn(ctx);
	if (ret == -ENOENT)
		ret = 0;
	if (ret < 0)
		log_error("store rados:%s: cannot list the pool: %s", rb->remote->pool,
			  strerror(-ret));
	return ret;
}

static int rados_remove_object(struct backend *backend, const char *name)
{
	struct rados_backend *rb = to_rados(backend);
	int ret;

	char idx[NAME_MAX + 8];

	if (rados_name_check(name))
		return -EINVAL;
	unlinkat(rb->dir_fd, name, 0);
	ret = remote_ready(rb->remote);
	if (ret)
		return ret;
	ret = rados_lib.rados_remove_fn(rb->remote->io, name);
	/* the pack's chunk list goes with it (remote_sync.c writes it) */
	snprintf(idx, sizeof(idx), "%s.idx", name);
	rados_lib.rados_remove_fn(rb->remote->io, idx);
	if (ret && ret != -ENOENT)
		log_error("store rados:%s: cannot delete %s: %s", rb->remote->pool, name,
			  strerror(-ret));
	return ret;
}

static void rados_destroy(struct backend *backend)
{
	struct rados_backend *rb = to_rados(backend);

	close(rb->dir_fd);
	free(rb);
}

static const struct backend_ops rados_ops = {
	.upload_begin = rados_upload_begin,
	.upload_append = rados_upload_append,
	.upload_commit = rados_upload_commit,
	.upload_abort = rados_upload_abort,
	.object_open = rados_object_open,
	.object_read = rados_object_read,
	.object_fetch = rados_object_fetch,
	.object_cached = rados_object_cached,
	.object_fd = rados_object_fd,
	.object_size = rados_object_size,
	.object_close = rados_object_close,
	.list = rados_list,
	.remove = rados_remove_object,
	.destroy = rados_destroy,
};

void backend_rados_cache_clear(struct backend *backend)
{
	struct rados_backend *rb = to_rados(backend);
	char path[PATH_MAX];

	/* a new empty directory replaces the old one: open objects keep their files */
	if (path_format(path, sizeof(path), "%s.old-%d", rb->dir, (int)getpid()) == 0 &&
	    rename(rb->dir, path) == 0) {
		int fd;

		mkdir(rb->dir, 0755);
		fd = open(rb->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			close(rb->dir_fd);
			rb->dir_fd = fd;
		}
		remove_tree(path);
	}
}

int backend_rados_create(struct remote *remote, const char *cache_dir, struct backend **out)
{
	struct rados_backend *rb = calloc(1, sizeof(*rb));

	if (!rb)
		return -ENOMEM;
	rb->remote = remote;
	if (path_format(rb->dir, sizeof(rb->dir), "%s", cache_dir)) {
		free(rb);
		return -ENAMETOOLONG;
	}
	if ((mkdir(cache_dir, 0755) < 0 && errno != EEXIST) ||
	    (rb->dir_fd = open(cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		int err = -errno;

		log_error("store: cannot open the cache directory %s: %s", cache_dir,
			  strerror(errno));
		free(rb);
		return err;
	}
	rb->base.ops = &rados_ops;
	*out = &rb->base;
	return 0;
}
