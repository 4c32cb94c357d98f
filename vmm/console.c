/*
 * The host side of the guest's console: the descriptors its output goes to
 * and its input comes from, as the configuration says. The console devices
 * (the UART, the virtio console) get them through their device context.
 */
#include "vmm/vm_internal.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int console_host_open(const struct vmm_config *config, struct console_host *host)
{
	*host = (struct console_host){ .in_fd = -1, .out_fd = -1 };
	switch (config->console) {
	case VMM_CONSOLE_STDIO:
	case VMM_CONSOLE_VIRTIO: /* the UART prints there too (early boot messages) */
		host->in_fd = STDIN_FILENO;
		host->out_fd = STDOUT_FILENO;
		break;
	case VMM_CONSOLE_FILE:
		host->in_fd = STDIN_FILENO;
		host->out_fd =
			open(config->console_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (host->out_fd < 0) {
			int ret = -errno;

			log_error("cannot open console file %s: %s", config->console_path,
				  strerror(errno));
			return ret;
		}
		host->out_owned = true;
		break;
	case VMM_CONSOLE_FDS:
		host->in_fd = config->console_in_fd;
		host->out_fd = config->console_out_fd;
		break;
	case VMM_CONSOLE_NONE:
		break;
	}
	return 0;
}

void console_host_close(struct console_host *host)
{
	if (host->out_owned && host->out_fd >= 0)
		close(host->out_fd);
	host->out_fd = -1;
	host->out_owned = false;
}
