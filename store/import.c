/*
 * Import: the file is read once, front to back. Every chunk is decoded and
 * checked against its digest; the manifest's chunks come first, so that
 * every later chunk can be checked to be one the snapshot uses. New chunks
 * go to new packs; only when the trailer's SHA-256 of the whole file matches
 * and nothing follows it are the packs synced and the snapshot committed in
 * one index transaction. Any failure before that deletes the packs: a
 * damaged or truncated file adds nothing.
 */
#include "store/export.h"
#include "store/chunk.h"
#include "store/digest.h"
#include "store/internal.h"
#include "store/refs.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct import {
	struct store *store;
	const char *path;
	FILE *in;
	struct digest_stream sha;
	uint64_t offset; /* bytes read and hashed */
	struct export_header header;
	char name[STORE_NAME_MAX + 1];
	struct snap_record record;
	uint8_t *manifest_buf; /* until the manifest is decoded, which takes it */
	struct manifest manifest;
	bool manifest_ready;
	struct dset manifest_set; /* the manifest's distinct chunks */
	struct dset wanted;	  /* every chunk the snapshot uses, once the manifest is known */
	struct dset received;
	struct refs refs;
	MDB_txn *txn;
	struct pack_writer *packs;
};

/* Logs why the file is refused; returns -EBADMSG. */
static int import_refuse(struct import *im, const char *why)
{
	log_error("store: %s: %s at byte %llu; nothing was imported", im->path, why,
		  (unsigned long long)im->offset);
	return -EBADMSG;
}

static int import_read(struct import *im, void *buf, size_t len)
{
	if (fread(buf, 1, len, im->in) != len)
		return import_refuse(im, ferror(im->in) ? "read error" : "the file ends early");
	im->offset += len;
	return digest_stream_update(&im->sha, buf, len);
}

/* Reads the header, the name and the snapshot record. */
static int import_head(struct import *im, const char *name)
{
	uint8_t head[EXPORT_HEADER_SIZE], *record;
	char file_name[STORE_NAME_MAX + 1] = { 0 };
	int ret = import_read(im, head, sizeof(head));

	if (ret)
		return ret;
	if (export_header_decode(head, &im->header))
		return import_refuse(im, "this is not a snapvm store export");
	ret = import_read(im, file_name, im->header.name_len);
	if (ret)
		return ret;
	snprintf(im->name, sizeof(im->name), "%s", name ? name : file_name);
	if (store_name_check(im->name))
		return import_refuse(im, "the snapshot name is not valid");
	record = malloc(im->header.record_len);
	if (!record)
		return -ENOMEM;
	ret = import_read(im, record, im->header.record_len);
	if (!ret && snap_record_decode(record, im->header.record_len, &im->record))
		ret = import_refuse(im, "the snapshot record is damaged");
	free(record);
	return ret;
}

/* Copies a manifest chunk to every place the manifest has it. */
static void import_manifest_piece(struct import *im, const uint8_t *digest, const uint8_t *data)
{
	for (uint32_t i = 0; i < im->record.manifest_chunks; i++) {
		if (!memcmp(im->record.manifest_digests[i], digest, STORE_DIGEST_SIZE))
			memcpy(im->manifest_buf + (uint64_t)i * STORE_PAGE_SIZE, data,
			       MIN((uint64_t)STORE_PAGE_SIZE,
				   im->record.manifest_len - (uint64_t)i * STORE_PAGE_SIZE));
	}
}

/* All of the manifest has arrived: decode it and learn which chunks to expect. */
static int import_manifest_ready(struct import *im)
{
	uint64_t pages = im->record.info.ram_size / STORE_PAGE_SIZE;
	uint8_t *buf = im->manifest_buf;

	im->manifest_buf = NULL;
	if (manifest_decode(buf, im->record.manifest_len, pages, &im->manifest))
		return import_refuse(im, "the manifest is malformed");
	im->manifest_ready = true;
	if (store_snapshot_refs(&im->record, &im->manifest, &im->wanted))
		return -ENOMEM;
	if (im->wanted.count != im->header.chunk_count)
		return import_refuse(im, "the chunk count does not match the manifest");
	return 0;
}

/* Keeps a checked chunk: referenced if the store has it, else appended to the new packs. */
static int import_chunk_keep(struct import *im, const uint8_t *record, const struct chunk_header *h)
{
	struct chunk_entry e = { .stored_len = h->stored_len,
				 .raw_len = h->raw_len,
				 .codec = h->codec };
	uint32_t index;
	int ret = index_chunk_get(&im->store->index, im->txn, h->digest, &e);

	if (ret == 0)
		return refs_add(&im->refs, h->digest, &e, false, &index) < 0 ? -ENOMEM : 0;
	if (ret != -ENOENT)
		return ret;
	ret = pack_writer_append(im->packs, record, CHUNK_HEADER_SIZE + h->stored_len, &e.pack,
				 &e.offset);
	if (!ret && refs_add(&im->refs, h->digest, &e, true, &index) < 0)
		ret = -ENOMEM;
	return ret;
}

static int import_chunk(struct import *im)
{
	uint8_t record[CHUNK_RECORD_MAX], data[CHUNK_RAW_MAX];
	struct chunk_header h;
	const char *reason;
	uint32_t index;
	int ret = import_read(im, record, CHUNK_HEADER_SIZE);

	if (!ret && chunk_header_decode(record, &h, &reason))
		return import_refuse(im, reason);
	if (!ret)
		ret = import_read(im, record + CHUNK_HEADER_SIZE, h.stored_len);
	if (!ret &&
	    chunk_record_decode(record, CHUNK_HEADER_SIZE + h.stored_len, &h, data, &reason))
		return import_refuse(im, reason);
	if (ret)
		return ret;
	if (dset_find(im->manifest_ready ? &im->wanted : &im->manifest_set, h.digest) < 0)
		return import_refuse(im, "a chunk is not one the snapshot uses");
	if (dset_add(&im->received, h.digest, &index) != 1)
		return import_refuse(im, "a chunk comes twice");
	if (!im->manifest_ready)
		import_manifest_piece(im, h.digest, data);
	ret = import_chunk_keep(im, record, &h);
	if (!ret && !im->manifest_ready && im->received.count == im->manifest_set.count)
		ret = import_manifest_ready(im);
	return ret;
}

/* Checks the trailer against the digest of all that came before, and that nothing follows. */
static int import_tail(struct import *im)
{
	uint8_t trailer[EXPORT_TRAILER_SIZE], digest[STORE_DIGEST_SIZE];
	int ret = digest_stream_end(&im->sha, digest);

	if (ret)
		return ret;
	if (fread(trailer, 1, sizeof(trailer), im->in) != sizeof(trailer))
		return import_refuse(im, "the file ends before its trailer");
	if (export_trailer_check(trailer, im->offset, digest))
		return import_refuse(im, "the trailer does not match the contents");
	if (fgetc(im->in) != EOF)
		return import_refuse(im, "there are bytes after the trailer");
	return 0;
}

/* The record as stored: sizes worked out again rather than taken from the file. */
static int import_record_encode(struct import *im, uint8_t **out, size_t *len)
{
	struct store_snapshot_info *in = &im->record.info;

	in->chunks = im->refs.set.count;
	in->stored_bytes = refs_stored_bytes(&im->refs);
	in->nonzero_pages = 0;
	for (uint64_t i = 0; i < im->manifest.page_count; i++)
		in->nonzero_pages += im->manifest.page_map[i] != 0;
	in->blob_bytes = 0;
	for (uint32_t i = 0; i < im->manifest.blob_count; i++)
		in->blob_bytes += im->manifest.blobs[i].len;
	return snap_record_encode(&im->record, out, len);
}

static int import_commit(struct import *im)
{
	uint8_t *record;
	size_t len;
	int ret = import_record_encode(im, &record, &len);

	if (ret)
		return ret;
	ret = pack_writer_commit(im->packs);
	if (!ret)
		ret = store_snapshot_publish(im->store, im->name, &im->refs, im->packs, record,
					     len);
	free(record);
	return ret;
}

/* Everything between reading the record and committing: the chunks and the trailer. */
static int import_body(struct import *im)
{
	uint64_t next_pack;
	MDB_val value;
	uint32_t index;
	int ret = index_txn_begin(&im->store->index, false, &im->txn);

	if (ret)
		return ret;
	ret = index_record_get(&im->store->index, im->txn, im->store->index.snapshots, im->name,
			       &value);
	if (ret == 0) {
		log_error("store %s: a snapshot named '%s' exists already", im->store->dir,
			  im->name);
		return -EEXIST;
	}
	if (ret != -ENOENT)
		return ret;
	ret = index_next_pack_get(&im->store->index, im->txn, &next_pack);
	if (!ret)
		ret = pack_writer_create(im->store->backend, next_pack, &im->packs);
	for (uint32_t i = 0; i < im->record.manifest_chunks && ret >= 0; i++)
		ret = dset_add(&im->manifest_set, im->record.manifest_digests[i], &index);
	if (ret < 0)
		return ret;
	ret = 0;
	im->manifest_buf = calloc(1, im->record.manifest_len);
	if (!im->manifest_buf)
		return -ENOMEM;
	for (uint64_t i = 0; i < im->header.chunk_count && !ret; i++) {
		ret = import_chunk(im);
		store_progress(im->store, "import", i + 1, im->header.chunk_count);
	}
	if (!ret && !im->manifest_ready)
		ret = import_refuse(im, "the manifest is incomplete");
	if (!ret)
		ret = import_tail(im);
	mdb_txn_abort(im->txn);
	im->txn = NULL;
	return ret;
}

static void import_free(struct import *im)
{
	if (im->txn)
		mdb_txn_abort(im->txn);
	if (im->sha.open)
		digest_stream_end(&im->sha, NULL);
	if (im->in)
		fclose(im->in);
	free(im->manifest_buf);
	manifest_free(&im->manifest);
	snap_record_free(&im->record);
	dset_free(&im->manifest_set);
	dset_free(&im->wanted);
	dset_free(&im->received);
	refs_free(&im->refs);
}

int store_import(struct store *s, const char *path, const char *name,
		 char imported_name[STORE_NAME_MAX + 1])
{
	struct import im = { .store = s, .path = path };
	int lock_fd = -1, ret;

	dset_init(&im.manifest_set);
	dset_init(&im.wanted);
	dset_init(&im.received);
	refs_init(&im.refs);
	im.in = fopen(path, "rb");
	if (!im.in) {
		ret = -errno;
		log_error("store: cannot open %s: %s", path, strerror(errno));
		import_free(&im);
		return ret;
	}
	setvbuf(im.in, NULL, _IOFBF, 1 << 20);
	ret = digest_stream_begin(&im.sha);
	if (!ret)
		ret = import_head(&im, name);
	if (!ret)
		ret = store_lock_take(s, &lock_fd);
	if (!ret)
		ret = import_body(&im);
	if (!ret)
		ret = import_commit(&im);
	if (ret)
		pack_writer_discard(im.packs);
	else
		pack_writer_free(im.packs);
	if (!ret && imported_name)
		snprintf(imported_name, STORE_NAME_MAX + 1, "%s", im.name);
	store_lock_release(s, lock_fd);
	import_free(&im);
	return ret;
}
