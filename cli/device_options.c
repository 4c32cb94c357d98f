/* The virtio device options of `snapvm run`: --disk, --vsock and --rng. */
#include "cli/run_options.h"
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>
#include <sys/un.h>

/* One ",ro" or ",id=NAME" after the disk's path. */
static int disk_flag_parse(const char *command, const char *flag, size_t len, struct vmm_disk *disk)
{
	if (len == 2 && !strncmp(flag, "ro", 2)) {
		disk->read_only = true;
		return 0;
	}
	if (len > 3 && !strncmp(flag, "id=", 3) && len - 3 <= VMM_DISK_ID_MAX) {
		memcpy(disk->id, flag + 3, len - 3);
		disk->id[len - 3] = '\0';
		return 0;
	}
	return cli_usage_error(command, "--disk: '%.*s' is not ro or id=NAME (at most %d bytes)",
			       (int)len, flag, VMM_DISK_ID_MAX);
}

int disk_option_parse(const char *command, const char *text, struct vmm_config *config)
{
	const char *comma = strchr(text, ',');
	size_t path_len = comma ? (size_t)(comma - text) : strlen(text);
	struct vmm_disk *disk;

	if (config->disk_count == VMM_MAX_DISKS)
		return cli_usage_error(command, "--disk: at most %d disks", VMM_MAX_DISKS);
	if (!path_len || path_len >= VMM_DISK_PATH_MAX)
		return cli_usage_error(command, "--disk: '%s' has no usable PATH", text);
	disk = &config->disks[config->disk_count];
	*disk = (struct vmm_disk){ 0 };
	memcpy(disk->path, text, path_len);
	while (comma) {
		const char *flag = comma + 1, *next = strchr(flag, ',');
		int ret = disk_flag_parse(command, flag,
					  next ? (size_t)(next - flag) : strlen(flag), disk);

		if (ret)
			return ret;
		comma = next;
	}
	config->disk_count++;
	return 0;
}

int vsock_option_parse(const char *command, const char *text, struct vmm_config *config)
{
	const char *comma = strchr(text, ',');
	char cid[24];
	uint64_t value;

	if (!comma || (size_t)(comma - text) >= sizeof(cid))
		return cli_usage_error(command, "--vsock: '%s' is not CID,PATH", text);
	snprintf(cid, sizeof(cid), "%.*s", (int)(comma - text), text);
	if (parse_u64(cid, &value) || value < VMM_VSOCK_CID_MIN || value > UINT32_MAX)
		return cli_usage_error(command, "--vsock: CID '%s' is not a number from %d to %u",
				       cid, VMM_VSOCK_CID_MIN, UINT32_MAX);
	/* room for "_<port>" after PATH for the guest-to-host listeners */
	if (!comma[1] ||
	    strlen(comma + 1) + sizeof("_4294967295") > sizeof(((struct sockaddr_un *)0)->sun_path))
		return cli_usage_error(command, "--vsock: PATH must be 1 to %zu bytes",
				       sizeof(((struct sockaddr_un *)0)->sun_path) -
					       sizeof("_4294967295"));
	config->vsock_cid = value;
	config->vsock_path = comma + 1;
	return 0;
}
