/* Network namespaces: a VM's host side may live in one (Firecracker's recipe for clones). */
#include "vmm/net/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

int net_namespace_enter(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (setns(fd, CLONE_NEWNET) < 0)
		ret = -errno;
	close(fd);
	return ret;
}
