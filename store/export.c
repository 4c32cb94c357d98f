/*
 * Export: the snapshot's record and every chunk it references, each read
 * back and checked, written to a temporary file that is synced and renamed
 * to its name only when whole.
 */
#include "store/export.h"
#include "store/bytes.h"
#include "store/chunk.h"
#include "store/digest.h"
#include "store/internal.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPORT_MAGIC	"SVMEXPT1"
#define EXPORT_END	"SVMEXEND"
#define EXPORT_VERSION	1
#define EXPORT_BUF_SIZE (1U << 20)

void export_header_encode(const struct export_header *h, uint8_t out[EXPORT_HEADER_SIZE])
{
	memcpy(out, EXPORT_MAGIC, 8);
	put_u32(out + 8, EXPORT_VERSION);
	put_u32(out + 12, h->name_len);
	put_u32(out + 16, h->record_len);
	put_u32(out + 20, 0);
	put_u64(out + 24, h->chunk_count);
}

int export_header_decode(const uint8_t in[EXPORT_HEADER_SIZE], struct export_header *h)
{
	if (memcmp(in, EXPORT_MAGIC, 8) || get_u32(in + 8) != EXPORT_VERSION || get_u32(in + 20))
		return -EBADMSG;
	h->name_len = get_u32(in + 12);
	h->record_len = get_u32(in + 16);
	h->chunk_count = get_u64(in + 24);
	if (h->name_len == 0 || h->name_len > STORE_NAME_MAX || h->record_len == 0 ||
	    h->record_len > EXPORT_RECORD_MAX)
		return -EBADMSG;
	return 0;
}

void export_trailer_encode(uint64_t length, const uint8_t digest[STORE_DIGEST_SIZE],
			   uint8_t out[EXPORT_TRAILER_SIZE])
{
	memcpy(out, EXPORT_END, 8);
	put_u64(out + 8, length);
	memcpy(out + 16, digest, STORE_DIGEST_SIZE);
}

int export_trailer_check(const uint8_t in[EXPORT_TRAILER_SIZE], uint64_t length,
			 const uint8_t digest[STORE_DIGEST_SIZE])
{
	if (memcmp(in, EXPORT_END, 8) || get_u64(in + 8) != length ||
	    memcmp(in + 16, digest, STORE_DIGEST_SIZE))
		return -EBADMSG;
	return 0;
}

/* A buffered output file with a running SHA-256 of everything written. */
struct export_out {
	int fd;
	uint8_t *buf;
	size_t len;
	uint64_t total;
	struct digest_stream sha;
};

static int out_flush(struct export_out *o)
{
	int ret = o->len ? write_all(o->fd, o->buf, o->len) : 0;

	o->len = 0;
	return ret;
}

static int out_write(struct export_out *o, const void *data, size_t len)
{
	int ret = digest_stream_update(&o->sha, data, len);

	if (ret)
		return ret;
	if (o->len + len > EXPORT_BUF_SIZE) {
		ret = out_flush(o);
		if (ret)
			return ret;
	}
	memcpy(o->buf + o->len, data, len);
	o->len += len;
	o->total += len;
	return 0;
}

struct export
{
	struct store *store;
	const char *name;
	MDB_txn *txn;
	struct pack_cache cache;
	struct snap_record record;
	struct manifest manifest;
	struct dset refs; /* the manifest's chunks first: store_snapshot_refs adds them first */
};

static int export_header_write(struct export *x, struct export_out *o)
{
	struct export_header h = { .name_len = (uint32_t)strlen(x->name),
				   .chunk_count = x->refs.count };
	uint8_t head[EXPORT_HEADER_SIZE], *record;
	size_t len;
	int ret = snap_record_encode(&x->record, &record, &len);

	if (ret)
		return ret;
	h.record_len = (uint32_t)len;
	export_header_encode(&h, head);
	ret = out_write(o, head, sizeof(head));
	if (!ret)
		ret = out_write(o, x->name, h.name_len);
	if (!ret)
		ret = out_write(o, record, len);
	free(record);
	return ret;
}

static int export_chunks_write(struct export *x, struct export_out *o)
{
	uint8_t record[CHUNK_RECORD_MAX], data[CHUNK_RAW_MAX];
	char context[STORE_NAME_MAX + 16];
	const char *reason;

	snprintf(context, sizeof(context), "export of '%s'", x->name);
	for (size_t i = 0; i < x->refs.count; i++) {
		struct chunk_entry e;
		int ret = index_chunk_get(&x->store->index, x->txn, x->refs.keys[i], &e);

		if (ret == -ENOENT) {
			char hex[2 * STORE_DIGEST_SIZE + 1];

			store_digest_hex(x->refs.keys[i], hex);
			log_error("store: chunk %s (%s) is not in the index", hex, context);
			return -EBADMSG;
		}
		if (ret)
			return ret;
		ret = pack_chunk_read(&x->cache, x->refs.keys[i], &e, record, data, &reason);
		if (ret) {
			store_chunk_error(x->refs.keys[i], &e, context, reason);
			return -EBADMSG;
		}
		ret = out_write(o, record, CHUNK_HEADER_SIZE + e.stored_len);
		if (ret)
			return ret;
		store_progress(x->store, "export", i + 1, x->refs.count);
	}
	return 0;
}

/* Writes the whole file to fd. */
static int export_write(struct export *x, int fd)
{
	struct export_out o = { .fd = fd };
	uint8_t digest[STORE_DIGEST_SIZE], trailer[EXPORT_TRAILER_SIZE];
	int ret;

	o.buf = malloc(EXPORT_BUF_SIZE);
	if (!o.buf)
		return -ENOMEM;
	ret = digest_stream_begin(&o.sha);
	if (ret) {
		free(o.buf);
		return ret;
	}
	ret = export_header_write(x, &o);
	if (!ret)
		ret = export_chunks_write(x, &o);
	if (!ret)
		ret = digest_stream_end(&o.sha, digest);
	else
		digest_stream_end(&o.sha, NULL);
	if (!ret)
		ret = out_flush(&o);
	if (!ret) {
		export_trailer_encode(o.total, digest, trailer);
		ret = write_all(fd, trailer, sizeof(trailer)); /* not part of the digest */
	}
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	free(o.buf);
	return ret;
}

static int export_to_file(struct export *x, const char *path)
{
	char tmp[PATH_MAX];
	int fd, ret;

	if (path_format(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid()))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		log_error("store: cannot create %s: %s", tmp, strerror(errno));
		return ret;
	}
	ret = export_write(x, fd);
	close(fd);
	if (!ret && rename(tmp, path) < 0) {
		ret = -errno;
		log_error("store: cannot rename %s to %s: %s", tmp, path, strerror(errno));
	} else if (ret && ret != -EBADMSG) {
		log_error("store: cannot write %s: %s", tmp, strerror(-ret));
	}
	if (ret)
		unlink(tmp);
	return ret;
}

int store_export(struct store *s, const char *name, const char *path)
{
	struct export x = { .store = s, .name = name };
	int ret = store_remote_refresh(s);

	if (!ret)
		ret = index_txn_begin(&s->index, false, &x.txn);
	if (ret)
		return ret;
	pack_cache_init(&x.cache, s->backend);
	dset_init(&x.refs);
	ret = store_snapshot_load(s, x.txn, &x.cache, name, &x.record, &x.manifest);
	if (!ret) {
		ret = store_snapshot_refs(&x.record, &x.manifest, &x.refs);
		if (!ret)
			ret = export_to_file(&x, path);
		manifest_free(&x.manifest);
		snap_record_free(&x.record);
	}
	dset_free(&x.refs);
	pack_cache_free(&x.cache);
	mdb_txn_abort(x.txn);
	return ret;
}
