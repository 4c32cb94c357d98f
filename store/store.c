/*
 * Opening a store, the writer lock, and the helpers every operation uses.
 *
 * Layout of a store directory:
 *   index/       the LMDB environment (data.mdb, lock.mdb)
 *   packs/       pack files, NNNNNNNNNNNNNNNN.pack
 *   writer.lock  flock()ed by the one process writing, holding its pid
 */
#include "store/internal.h"
#include "store/remote.h"
#include "common/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROGRESS_INTERVAL_NS 100000000ULL

/* Stores open in this process: LMDB must not open one environment twice. */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct store *open_stores[64];

void store_dir_default(char *dir, size_t size)
{
	const char *env = getenv("SNAPVM_STORE");
	const char *home = getenv("HOME");

	if (env && *env)
		snprintf(dir, size, "%s", env);
	else
		snprintf(dir, size, "%s/.local/share/snapvm", home && *home ? home : "/root");
}

int store_name_check(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > STORE_NAME_MAX || name[0] == '.' ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
		    len)
		return -EINVAL;
	return 0;
}

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];

	if (path_format(buf, sizeof(buf), "%s", path))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* True if dir/packs holds pack files: then a missing index must not be replaced by an empty one. */
static bool store_has_orphaned_packs(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	bool found = false;
	DIR *d;

	if (path_format(path, sizeof(path), "%s/index/data.mdb", dir) || !access(path, F_OK))
		return false;
	if (path_format(path, sizeof(path), "%s/packs", dir) || !(d = opendir(path)))
		return false;
	while (!found && (de = readdir(d)))
		found = strlen(de->d_name) > 5 &&
			!strcmp(de->d_name + strlen(de->d_name) - 5, ".pack");
	closedir(d);
	return found;
}

/* Registers the store as open in this process; -EBUSY if it already is. */
static int store_register(struct store *s)
{
	struct stat st;
	int ret = -EBUSY;

	if (stat(s->dir, &st) < 0)
		return -errno;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	pthread_mutex_lock(&open_lock);
	s->pid = getpid();
	for (size_t i = 0; i < ARRAY_SIZE(open_stores); i++) {
		struct store *o = open_stores[i];

		/* after fork() the parent's stores are in the array but not open here */
		if (o && o->dev == s->dev && o->ino == s->ino && o->pid == s->pid)
			goto out;
	}
	ret = -EMFILE;
	for (size_t i = 0; i < ARRAY_SIZE(open_stores); i++) {
		if (!open_stores[i]) {
			open_stores[i] = s;
			ret = 0;
			break;
		}
	}
out:
	pthread_mutex_unlock(&open_lock);
	if (ret)
		log_error("store %s: %s", s->dir,
			  ret == -EBUSY ? "already open in this process (share the handle)"
					: "too many stores open in this process");
	return ret;
}

static void store_unregister(struct store *s)
{
	pthread_mutex_lock(&open_lock);
	for (size_t i = 0; i < ARRAY_SIZE(open_stores); i++) {
		if (open_stores[i] == s)
			open_stores[i] = NULL;
	}
	pthread_mutex_unlock(&open_lock);
}

/* Checks, or for a writer creates, the store directory. */
static int store_dir_prepare(const char *dir, bool write)
{
	struct stat st;
	int ret;

	if (write) {
		ret = mkdir_p(dir);
		if (ret)
			log_error("store: cannot create %s: %s", dir, strerror(-ret));
		return ret;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_error("store: there is no store in %s", dir);
		return -ENOENT;
	}
	return 0;
}

/* Connects a RADOS store and opens its backend; *dir is set to the local cache directory. */
static int store_remote_open(struct store *s, const char *spec, char *packs, size_t size)
{
	struct remote_spec rs;
	int ret = remote_spec_parse(spec, &rs);

	if (ret)
		return ret;
	ret = mkdir_p(rs.cache);
	if (ret) {
		log_error("store: cannot create the cache directory %s: %s", rs.cache,
			  strerror(-ret));
		return ret;
	}
	if (path_format(s->dir, sizeof(s->dir), "%s", rs.cache) ||
	    path_format(packs, size, "%s/packs", rs.cache))
		return -ENAMETOOLONG;
	return remote_connect(&rs, &s->remote);
}

/* Opens the index and the backend once dir (or the cache directory) is checked. */
static int store_open_parts(struct store *s, const char *packs, bool write)
{
	bool created;
	int ret = index_open(&s->index, s->dir, write || s->remote, &created);

	if (ret)
		return ret;
	ret = s->remote ? backend_rados_create(s->remote, packs, &s->backend)
			: backend_dir_create(packs, write, &s->backend);
	/*
	 * A RADOS store's cached index may be behind the pool: the operations
	 * that must see every host's snapshots pull the catalog first
	 * (store_remote_refresh), and a snapshot not cached is looked for there.
	 */
	if (ret)
		index_close(&s->index);
	return ret;
}

int store_open(const char *dir, unsigned flags, struct store **out)
{
	bool write = flags & STORE_OPEN_WRITE;
	char packs[PATH_MAX];
	struct store *s;
	int ret;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->flags = flags;
	pthread_mutex_init(&s->remote_sync, NULL);
	if (remote_spec_is(dir)) {
		ret = store_remote_open(s, dir, packs, sizeof(packs));
		if (ret) {
			free(s);
			return ret;
		}
	} else if (path_format(s->dir, sizeof(s->dir), "%s", dir) ||
		   path_format(packs, sizeof(packs), "%s/packs", dir)) {
		free(s);
		log_error("store: path too long: %s", dir);
		return -ENAMETOOLONG;
	} else {
		ret = store_dir_prepare(dir, write);
		if (!ret && store_has_orphaned_packs(dir)) {
			log_error("store %s: packs/ holds packs but index/data.mdb is missing; "
				  "refusing to start an empty index over them",
				  dir);
			ret = -EUCLEAN;
		}
		if (ret) {
			free(s);
			return ret;
		}
	}
	/* Before LMDB opens anything: a second open of one environment would drop its locks. */
	ret = store_register(s);
	if (!ret) {
		ret = store_open_parts(s, packs, write);
		if (ret)
			store_unregister(s);
	}
	if (ret) {
		remote_disconnect(s->remote);
		free(s);
		return ret;
	}
	*out = s;
	return 0;
}

const char *store_local_dir(const struct store *s)
{
	return s->dir;
}

bool store_is_remote(const struct store *s)
{
	return s->remote != NULL;
}

int store_remote_refresh(struct store *s)
{
	return s->remote ? remote_pull(s) : 0;
}

int store_txn_end(struct store *s, MDB_txn *txn, int ret)
{
	/* a RADOS store: the pool's catalog is the commit that counts, so it comes first */
	if (!ret && s->remote)
		ret = remote_push(s, txn);
	if (!ret)
		return index_txn_commit(&s->index, txn);
	if (txn)
		mdb_txn_abort(txn);
	return ret;
}

void store_cache_clear(struct store *s)
{
	if (s->remote)
		backend_rados_cache_clear(s->backend);
}

void store_close(struct store *s)
{
	if (!s)
		return;
	store_unregister(s);
	s->backend->ops->destroy(s->backend);
	index_close(&s->index);
	remote_state_free(s);
	remote_disconnect(s->remote);
	free(s);
}

int store_seal(struct store *s)
{
	if (!s->backend->ops->seal)
		return -EOPNOTSUPP; /* a RADOS store: its clones need the cluster and their cache */
	s->backend->ops->seal(s->backend);
	index_close(&s->index);
	return 0;
}

void store_progress_set(struct store *s, store_progress_fn *fn, void *opaque)
{
	s->progress = fn;
	s->progress_opaque = opaque;
	s->progress_last_ns = 0;
}

void store_progress(struct store *s, const char *what, uint64_t done, uint64_t total)
{
	uint64_t now;

	if (!s->progress)
		return;
	now = time_now_ns();
	if (done < total && now - s->progress_last_ns < PROGRESS_INTERVAL_NS)
		return;
	s->progress_last_ns = now;
	s->progress(s->progress_opaque, what, done, total);
}

/* Names the lock's holder from the pid it recorded: "pid N", or "another process". */
static void lock_holder(int fd, char *out, size_t size)
{
	char buf[32] = { 0 };
	int pid = pread(fd, buf, sizeof(buf) - 1, 0) > 0 ? atoi(buf) : 0;

	/* a holder that is not a store process leaves the last writer's pid there */
	if (pid > 0 && (kill(pid, 0) == 0 || errno == EPERM))
		snprintf(out, size, "pid %d", pid);
	else
		snprintf(out, size, "another process");
}

int store_lock_take(struct store *s, int *out)
{
	char path[PATH_MAX + 16], pid[32], holder[32];
	int fd, ret;

	if (!(s->flags & STORE_OPEN_WRITE)) {
		log_error("store %s: opened for reading only", s->dir);
		return -EROFS;
	}
	snprintf(path, sizeof(path), "%s/writer.lock", s->dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		goto err;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK)
			goto err;
		lock_holder(fd, holder, sizeof(holder));
		if (s->flags & STORE_OPEN_NOWAIT) {
			log_error("store %s: %s is writing to it; try again when it is done",
				  s->dir, holder);
			close(fd);
			return -EBUSY;
		}
		log_warn("store %s: waiting for %s, which is writing to it", s->dir, holder);
		while (flock(fd, LOCK_EX) < 0) {
			if (errno != EINTR)
				goto err;
		}
	}
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, strlen(pid), 0) < 0)
		log_warn("store %s: cannot record the writer's pid", s->dir);
	/* a RADOS store: writers of every host share the pool's lock, gc takes it alone */
	if (s->remote) {
		ret = remote_lock(s->remote, s->lock_exclusive, !(s->flags & STORE_OPEN_NOWAIT));
		if (!ret && (ret = remote_pull(s)))
			remote_unlock(s->remote);
		if (ret) {
			close(fd);
			return ret;
		}
	}
	*out = fd;
	return 0;
err:
	ret = -errno;
	log_error("store %s: cannot take the writer lock %s: %s", s->dir, path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return ret;
}

void store_lock_release(struct store *s, int fd)
{
	if (s->remote)
		remote_unlock(s->remote);
	if (fd >= 0)
		close(fd);
}

__thread bool store_errors_quiet;

void store_chunk_error(const uint8_t digest[STORE_DIGEST_SIZE], const struct chunk_entry *e,
		       const char *context, const char *reason)
{
	char hex[2 * STORE_DIGEST_SIZE + 1], pack[PACK_NAME_SIZE];

	if (store_errors_quiet)
		return;
	store_digest_hex(digest, hex);
	pack_name(e->pack, pack);
	log_error("store: chunk %s (%s) in pack %s at offset %llu: %s", hex, context, pack,
		  (unsigned long long)e->offset, reason);
}

int store_chunks_load(struct store *s, MDB_txn *txn, struct pack_cache *cache,
		      const uint8_t (*digests)[STORE_DIGEST_SIZE], uint32_t count, uint64_t len,
		      uint8_t **out, const char *context)
{
	char hex[2 * STORE_DIGEST_SIZE + 1];
	uint8_t *buf = malloc(len ? len : 1);
	const char *reason;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	for (uint32_t i = 0; i < count && !ret; i++) {
		uint64_t want = MIN(len - (uint64_t)i * STORE_PAGE_SIZE, STORE_PAGE_SIZE);
		struct chunk_entry e;

		/*
		 * A chunk like the one before, already read and checked, is copied:
		 * a manifest's page map repeats one chunk for every run of pages the
		 * guest never used (60 of the 64 chunks of an idle 256 MiB guest's).
		 */
		if (i > 0 && want == STORE_PAGE_SIZE &&
		    !memcmp(digests[i], digests[i - 1], STORE_DIGEST_SIZE)) {
			memcpy(buf + (uint64_t)i * STORE_PAGE_SIZE,
			       buf + (uint64_t)(i - 1) * STORE_PAGE_SIZE, STORE_PAGE_SIZE);
			continue;
		}
		ret = index_chunk_get(&s->index, txn, digests[i], &e);
		if (ret == -ENOENT) {
			store_digest_hex(digests[i], hex);
			if (!store_errors_quiet)
				log_error("store: chunk %s (%s) is not in the index", hex, context);
			ret = -EBADMSG;
		} else if (!ret && e.raw_len != want) {
			store_chunk_error(digests[i], &e, context, "its length is not the blob's");
			ret = -EBADMSG;
		} else if (!ret) {
			ret = pack_chunk_read(cache, digests[i], &e, NULL,
					      buf + (uint64_t)i * STORE_PAGE_SIZE, &reason);
			if (ret)
				store_chunk_error(digests[i], &e, context, reason);
			if (ret == -ENOENT) /* a missing pack is damage, not a missing snapshot */
				ret = -EBADMSG;
		}
	}
	if (ret) {
		free(buf);
		return ret;
	}
	*out = buf;
	return 0;
}

int store_record_load(struct store *s, MDB_txn *txn, const char *name, struct snap_record *r)
{
	MDB_val value;
	int ret;

	if (store_name_check(name)) {
		log_error("store: '%s' is not a snapshot name", name);
		return -EINVAL;
	}
	ret = index_record_get(&s->index, txn, s->index.snapshots, name, &value);
	if (ret == -ENOENT && !store_errors_quiet)
		log_error("store %s: no snapshot named '%s'", s->dir, name);
	if (ret)
		return ret;
	ret = snap_record_decode(value.mv_data, value.mv_size, r);
	if (ret == -EUCLEAN)
		log_error("store index %s: the record of snapshot '%s' is damaged", s->index.path,
			  name);
	return ret;
}

int store_snapshot_load(struct store *s, MDB_txn *txn, struct pack_cache *cache, const char *name,
			struct snap_record *r, struct manifest *m)
{
	char context[STORE_NAME_MAX + 32];
	uint8_t *buf;
	int ret = store_record_load(s, txn, name, r);

	if (ret)
		return ret;
	snprintf(context, sizeof(context), "manifest of '%s'", name);
	ret = store_chunks_load(s, txn, cache, (const void *)r->manifest_digests,
				r->manifest_chunks, r->manifest_len, &buf, context);
	if (!ret) {
		ret = manifest_decode(buf, r->manifest_len, r->info.ram_size / STORE_PAGE_SIZE, m);
		if (ret) {
			log_error("store: the manifest of snapshot '%s' is malformed", name);
			manifest_free(m);
		}
	}
	if (ret)
		snap_record_free(r);
	return ret;
}

int store_snapshot_refs(const struct snap_record *r, const struct manifest *m, struct dset *set)
{
	uint32_t index;
	int ret = 0;

	for (uint32_t i = 0; i < r->manifest_chunks && ret >= 0; i++)
		ret = dset_add(set, r->manifest_digests[i], &index);
	for (uint64_t i = 0; i < m->unique_count && ret >= 0; i++)
		ret = dset_add(set, m->unique[i], &index);
	for (uint32_t b = 0; b < m->blob_count; b++) {
		for (uint32_t i = 0; i < m->blobs[b].chunk_count && ret >= 0; i++)
			ret = dset_add(set, m->blobs[b].digests[i], &index);
	}
	return ret < 0 ? ret : 0;
}

int store_packs_record(struct store *s, MDB_txn *txn, const struct pack_writer *writer)
{
	size_t count;
	const struct pack_written *packs = pack_writer_packs(writer, &count);
	int ret = 0;

	for (size_t i = 0; i < count && !ret; i++)
		ret = index_pack_put(&s->index, txn, packs[i].id, &packs[i].entry);
	if (!ret)
		ret = index_next_pack_put(&s->index, txn, pack_writer_next_id(writer));
	return ret;
}
