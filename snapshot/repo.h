/*
 * Where snapshot/ keeps a snapshot's two parts, the state file and guest
 * memory (private to snapshot/). repo_dir.c keeps them as files in a
 * directory; the content-addressed store plugs in behind the same calls.
 */
#ifndef SNAPVM_SNAPSHOT_REPO_H
#define SNAPVM_SNAPSHOT_REPO_H

#include <stddef.h>
#include <stdint.h>

#include "snapshot/snapshot.h"

struct repo_writer;

/* Starts writing snapshot `name`; -EEXIST if it exists. Nothing is visible until commit. */
int repo_write_begin(struct snapshot_repo *repo, const char *name, struct repo_writer **writer,
		     char *error, size_t error_size);
/* Writes guest memory (zero pages are not stored); *stored = bytes kept. */
int repo_write_memory(struct repo_writer *writer, const uint8_t *ram, uint64_t size,
		      uint64_t *stored);
/* Writes the state file. */
int repo_write_state(struct repo_writer *writer, const uint8_t *state, size_t len);
/* Makes the snapshot durable and visible in one step, and frees the writer. */
int repo_write_commit(struct repo_writer *writer, char *error, size_t error_size);
/* Drops everything written and frees the writer. */
void repo_write_abort(struct repo_writer *writer);

/* Reads a snapshot's state file (malloc'ed); -ENOENT if there is no such snapshot. */
int repo_read_state(struct snapshot_repo *repo, const char *name, uint8_t **state, size_t *len,
		    char *error, size_t error_size);
/* Puts the snapshot's memory behind ram (size bytes), copy-on-write. */
int repo_map_memory(struct snapshot_repo *repo, const char *name, uint8_t *ram, uint64_t size,
		    char *error, size_t error_size);

/* Calls fn for each snapshot name, sorted. */
int repo_list_names(struct snapshot_repo *repo, void (*fn)(const char *name, void *opaque),
		    void *opaque);
/* Bytes a snapshot takes: its state file and its stored memory. */
int repo_stat(struct snapshot_repo *repo, const char *name, uint64_t *state_bytes,
	      uint64_t *memory_bytes);

#endif
