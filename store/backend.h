/*
 * Where pack objects live. Packs are written once, whole, then only read
 * (by byte range), listed and deleted, so that a later backend can keep them
 * in an object store (Ceph RADOS) with a local directory as a cache, while
 * the index stays in LMDB. backend_dir.c is the local-directory backend
 * (private to store/).
 */
#ifndef SNAPVM_STORE_BACKEND_H
#define SNAPVM_STORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct backend;
struct backend_upload; /* an object being written */
struct backend_object; /* an object open for reading */

struct backend_ops {
	/* Starts writing object `name`; it is invisible until upload_commit. */
	int (*upload_begin)(struct backend *backend, const char *name,
			    struct backend_upload **upload);
	/* Appends bytes to the object. */
	int (*upload_append)(struct backend_upload *upload, const void *data, size_t len);
	/* Makes the object durable, then visible under its name (replacing any older one); frees
	 * upload. */
	int (*upload_commit)(struct backend_upload *upload);
	/* Forgets the object; frees upload. */
	void (*upload_abort)(struct backend_upload *upload);

	/* Opens an object for reading; -ENOENT if there is none. */
	int (*object_open)(struct backend *backend, const char *name,
			   struct backend_object **object);
	/* Reads len bytes at offset; -EBADMSG if the object ends first. */
	int (*object_read)(struct backend_object *object, uint64_t offset, void *buf, size_t len);
	/*
	 * Makes n byte ranges of the object readable through object_fd, fetching
	 * the missing ones at once (a remote backend with a local cache); NULL
	 * when the fd always holds the whole object.
	 */
	int (*object_fetch)(struct backend_object *object, const uint64_t *offsets,
			    const uint32_t *lens, size_t n);
	/* True if object_fetch has nothing to fetch for the range (with object_fetch only). */
	bool (*object_cached)(struct backend_object *object, uint64_t offset, uint32_t len);
	/* A file descriptor to pread the object from, or -1 if the backend has none. */
	int (*object_fd)(struct backend_object *object);
	/* The object's size in bytes. */
	int (*object_size)(struct backend_object *object, uint64_t *size);
	void (*object_close)(struct backend_object *object);

	/* Calls fn for every object, finished or not (temporary names start with '.'); stops when
	 * fn returns non-zero. */
	int (*list)(struct backend *backend, int (*fn)(void *opaque, const char *name),
		    void *opaque);
	/* Deletes an object; -ENOENT if there is none. */
	int (*remove)(struct backend *backend, const char *name);
	/* Lets go of the objects' location: objects open stay readable, no other can be opened. */
	void (*seal)(struct backend *backend);
	void (*destroy)(struct backend *backend);
};

struct backend {
	const struct backend_ops *ops;
};

/* A backend keeping objects as files in dir, created when create is true. */
int backend_dir_create(const char *dir, bool create, struct backend **backend);

#endif
