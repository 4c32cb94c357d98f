/* What `snapvm ls` shows about snapshots. */
#include "snapshot/snapshot.h"
#include "snapshot/repo.h"
#include "snapshot/state.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int snapshot_info_get(struct snapshot_repo *repo, const char *name, struct snapshot_info *info,
		      char *error, size_t error_size)
{
	struct snapshot_parsed *parsed = malloc(sizeof(*parsed));
	const struct snapshot_section *s;
	struct vm_section vm;
	uint8_t *data = NULL;
	size_t len;
	int ret;

	if (!parsed)
		return -ENOMEM;
	memset(info, 0, sizeof(*info));
	ret = repo_read_state(repo, name, &data, &len, error, error_size);
	if (!ret)
		ret = snapshot_parse(data, len, parsed, error, error_size);
	if (!ret) {
		s = snapshot_find(parsed, SECTION_VM);
		if (!s || s->length != sizeof(vm)) {
			snprintf(error, error_size, "snapshot %s has no VM section", name);
			ret = -EINVAL;
		}
	}
	if (!ret) {
		memcpy(&vm, s->payload, sizeof(vm));
		snprintf(info->name, sizeof(info->name), "%s", name);
		info->created_ns = parsed->header.created_ns;
		info->mem_size = vm.mem_size;
		info->cpus = vm.cpus;
		ret = repo_stat(repo, name, &info->state_bytes, &info->memory_bytes);
		if (ret)
			snprintf(error, error_size, "snapshot %s is incomplete: %s", name,
				 strerror(-ret));
	}
	free(data);
	free(parsed);
	return ret;
}

struct list_context {
	struct snapshot_repo *repo;
	void (*fn)(const struct snapshot_info *info, void *opaque);
	void *opaque;
};

static void list_one(const char *name, void *opaque)
{
	struct list_context *ctx = opaque;
	struct snapshot_info info;
	char error[256];

	if (snapshot_info_get(ctx->repo, name, &info, error, sizeof(error)) == 0)
		ctx->fn(&info, ctx->opaque);
	else
		log_warn("%s", error);
}

int snapshot_list(struct snapshot_repo *repo,
		  void (*fn)(const struct snapshot_info *info, void *opaque), void *opaque)
{
	struct list_context ctx = { repo, fn, opaque };

	return repo_list_names(repo, list_one, &ctx);
}
