/* The snapshot's record of the VM's devices and the host resources behind them. */
#include "snapshot/state.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define CONFIG_ERROR(...) (snprintf(error, error_size, __VA_ARGS__), -EINVAL)

static struct config_rate rate_to_section(const struct vmm_rate_limit *limit)
{
	return (struct config_rate){ .bandwidth = limit->bandwidth, .ops = limit->ops };
}

/* The snapshot's limits, except those the restore options set (bw=0 lifts one). */
static struct vmm_rate_limit rate_from_section(const struct config_rate *saved,
					       const struct vmm_rate_limit *wanted)
{
	struct vmm_rate_limit limit = { .bandwidth = saved->bandwidth, .ops = saved->ops };

	if (wanted && (wanted->given & VMM_RATE_GIVEN_BANDWIDTH))
		limit.bandwidth = wanted->bandwidth;
	if (wanted && (wanted->given & VMM_RATE_GIVEN_OPS))
		limit.ops = wanted->ops;
	return limit;
}

static bool rate_valid(const struct config_rate *rate)
{
	return rate->bandwidth <= VMM_RATE_MAX && rate->ops <= VMM_RATE_MAX;
}

void config_section_from_vm(const struct vmm_config *config, struct config_section *section)
{
	memset(section, 0, sizeof(*section));
	section->disk_count = config->disk_count;
	for (unsigned i = 0; i < config->disk_count; i++) {
		struct config_disk *d = &section->disks[i];

		d->read_only = config->disks[i].read_only;
		snprintf(d->id, sizeof(d->id), "%s", config->disks[i].id);
		snprintf(d->path, sizeof(d->path), "%s", config->disks[i].path);
		section->disk_rates[i] = rate_to_section(&config->disks[i].rate);
	}
	section->vsock_cid = config->vsock_cid;
	snprintf(section->vsock_path, sizeof(section->vsock_path), "%s", config->vsock_path);
	section->flags = (config->rng ? CONFIG_RNG : 0) |
			 (config->console == VMM_CONSOLE_VIRTIO ? CONFIG_VIRTIO_CONSOLE : 0) |
			 (config->no_legacy ? CONFIG_NO_LEGACY : 0) |
			 (config->acpi ? CONFIG_ACPI : 0);
}

static bool terminated(const char *text, size_t size)
{
	return memchr(text, '\0', size) != NULL;
}

/* The section comes from a file: every count and string is checked before use. */
static int config_check(const struct config_section *s, char *error, size_t error_size)
{
	if (s->disk_count > VMM_MAX_DISKS ||
	    (s->flags & ~(CONFIG_RNG | CONFIG_VIRTIO_CONSOLE | CONFIG_NO_LEGACY | CONFIG_ACPI)) ||
	    !terminated(s->vsock_path, sizeof(s->vsock_path)) ||
	    strlen(s->vsock_path) >= VMM_VSOCK_PATH_MAX)
		return CONFIG_ERROR("snapshot's device configuration is damaged");
	for (unsigned i = 0; i < s->disk_count; i++) {
		const struct config_disk *d = &s->disks[i];

		if (d->read_only > 1 || !terminated(d->id, VMM_DISK_ID_MAX + 1) ||
		    !terminated(d->path, sizeof(d->path)) || !rate_valid(&s->disk_rates[i]))
			return CONFIG_ERROR("snapshot's disk %u configuration is damaged", i);
	}
	return 0;
}

static int config_disks(const struct config_section *s, const struct vmm_config *wanted,
			struct vmm_config *config, char *error, size_t error_size)
{
	if (wanted->disk_count && wanted->disk_count != s->disk_count)
		return CONFIG_ERROR(
			"the snapshot's VM has %u disk%s; give --disk for each or for none",
			s->disk_count, s->disk_count == 1 ? "" : "s");
	config->disk_count = s->disk_count;
	for (unsigned i = 0; i < s->disk_count; i++) {
		struct vmm_disk *disk = &config->disks[i];

		/* what the guest sees (read-only flag, serial) stays; the file may move */
		if (wanted->disk_count && wanted->disks[i].read_only != s->disks[i].read_only)
			return CONFIG_ERROR("disk %u was %s in the snapshot; that cannot change", i,
					    s->disks[i].read_only ? "read-only" : "writable");
		*disk = (struct vmm_disk){ .read_only = s->disks[i].read_only };
		snprintf(disk->id, sizeof(disk->id), "%s", s->disks[i].id);
		snprintf(disk->path, sizeof(disk->path), "%s",
			 wanted->disk_count ? wanted->disks[i].path : s->disks[i].path);
		disk->rate = rate_from_section(&s->disk_rates[i],
					       wanted->disk_count ? &wanted->disks[i].rate : NULL);
	}
	return 0;
}

int config_section_to_vm(const struct config_section *s, const struct vmm_config *wanted,
			 struct vmm_config *config, char *error, size_t error_size)
{
	int ret = config_check(s, error, error_size);

	if (ret)
		return ret;
	*config = *wanted;
	ret = config_disks(s, wanted, config, error, error_size);
	if (ret)
		return ret;
	if (wanted->vsock_cid && wanted->vsock_cid != s->vsock_cid)
		return s->vsock_cid
			       ? CONFIG_ERROR("the guest's vsock CID is %llu; it cannot change",
					      (unsigned long long)s->vsock_cid)
			       : CONFIG_ERROR("the snapshot's VM has no vsock device");
	config->vsock_cid = s->vsock_cid;
	if (!wanted->vsock_path[0])
		snprintf(config->vsock_path, sizeof(config->vsock_path), "%s",
			 s->vsock_cid ? s->vsock_path : "");
	if (wanted->rng && !(s->flags & CONFIG_RNG))
		return CONFIG_ERROR("the snapshot's VM has no entropy device");
	config->rng = s->flags & CONFIG_RNG;
	config->no_legacy = s->flags & CONFIG_NO_LEGACY; /* the machine, as the guest knew it */
	config->acpi = s->flags & CONFIG_ACPI; /* older snapshots: none, and no ACPI devices */
	if (s->flags & CONFIG_VIRTIO_CONSOLE) {
		if (wanted->console != VMM_CONSOLE_STDIO && wanted->console != VMM_CONSOLE_VIRTIO)
			return CONFIG_ERROR(
				"the snapshot's VM has a virtio console: restore it with "
				"--console stdio");
		config->console = VMM_CONSOLE_VIRTIO;
	} else if (wanted->console == VMM_CONSOLE_VIRTIO) {
		return CONFIG_ERROR("the snapshot's VM has no virtio console");
	}
	return 0;
}

void net_config_section_from_vm(const struct vmm_config *config, struct net_config_section *section)
{
	memset(section, 0, sizeof(*section));
	section->net_count = config->net_count;
	snprintf(section->netns, sizeof(section->netns), "%s", config->netns);
	for (unsigned i = 0; i < config->net_count; i++) {
		const struct vmm_net *net = &config->nets[i];
		struct config_net *n = &section->nets[i];

		n->backend = (uint8_t)net->backend;
		vmm_net_mac(config, i, n->mac);
		snprintf(n->tap, sizeof(n->tap), "%s", net->tap);
		n->hostfwd_count = (uint8_t)net->hostfwd_count;
		section->net_rates[i] = rate_to_section(&net->rate);
		for (unsigned j = 0; j < net->hostfwd_count; j++) {
			const struct vmm_hostfwd *f = &net->hostfwds[j];

			n->hostfwds[j] = (struct config_hostfwd){
				.udp = f->udp,
				.host_port = f->host_port,
				.guest_port = f->guest_port,
				.host_addr = f->host_addr,
				.guest_addr = f->guest_addr,
			};
		}
	}
}

static int net_config_check(const struct net_config_section *s, char *error, size_t error_size)
{
	if (s->net_count > VMM_MAX_NETS || !terminated(s->netns, sizeof(s->netns)))
		return CONFIG_ERROR("snapshot's network configuration is damaged");
	for (unsigned i = 0; i < s->net_count; i++) {
		const struct config_net *n = &s->nets[i];

		if ((n->backend != VMM_NET_TAP && n->backend != VMM_NET_USER) ||
		    n->hostfwd_count > VMM_MAX_HOSTFWDS || !terminated(n->tap, sizeof(n->tap)) ||
		    (n->backend == VMM_NET_TAP && !n->tap[0]) || !rate_valid(&s->net_rates[i]))
			return CONFIG_ERROR("snapshot's network device %u configuration is damaged",
					    i);
		for (unsigned j = 0; j < n->hostfwd_count; j++) {
			if (n->hostfwds[j].udp > 1)
				return CONFIG_ERROR("snapshot's network device %u configuration is "
						    "damaged",
						    i);
		}
	}
	return 0;
}

static void net_from_section(const struct config_net *n, struct vmm_net *net)
{
	*net = (struct vmm_net){ .backend = (enum vmm_net_backend)n->backend,
				 .hostfwd_count = n->hostfwd_count };
	memcpy(net->mac, n->mac, sizeof(net->mac));
	snprintf(net->tap, sizeof(net->tap), "%s", n->tap);
	for (unsigned j = 0; j < n->hostfwd_count; j++) {
		const struct config_hostfwd *f = &n->hostfwds[j];

		net->hostfwds[j] = (struct vmm_hostfwd){ .udp = f->udp,
							 .host_port = f->host_port,
							 .guest_port = f->guest_port,
							 .host_addr = f->host_addr,
							 .guest_addr = f->guest_addr };
	}
}

int net_config_section_to_vm(const struct net_config_section *s, const struct vmm_config *wanted,
			     struct vmm_config *config, char *error, size_t error_size)
{
	static const uint8_t no_mac[6];
	int ret = net_config_check(s, error, error_size);

	if (ret)
		return ret;
	if (wanted->net_count && wanted->net_count != s->net_count)
		return s->net_count
			       ? CONFIG_ERROR("the snapshot's VM has %u network device%s; give "
					      "--net for each or for none",
					      s->net_count, s->net_count == 1 ? "" : "s")
			       : CONFIG_ERROR("the snapshot's VM has no network device");
	if (wanted->netns[0] && !s->net_count)
		return CONFIG_ERROR("the snapshot's VM has no network device for --netns");
	config->net_count = s->net_count;
	for (unsigned i = 0; i < s->net_count; i++) {
		struct vmm_net *net = &config->nets[i];

		/* the guest knows its MAC: a clone keeps it, whatever network it is on */
		if (wanted->net_count && memcmp(wanted->nets[i].mac, no_mac, 6) &&
		    memcmp(wanted->nets[i].mac, s->nets[i].mac, 6))
			return CONFIG_ERROR("network device %u: the guest's MAC is "
					    "%02x:%02x:%02x:%02x:%02x:%02x; it cannot change",
					    i, s->nets[i].mac[0], s->nets[i].mac[1],
					    s->nets[i].mac[2], s->nets[i].mac[3], s->nets[i].mac[4],
					    s->nets[i].mac[5]);
		if (wanted->net_count)
			*net = wanted->nets[i];
		else
			net_from_section(&s->nets[i], net);
		memcpy(net->mac, s->nets[i].mac, sizeof(net->mac));
		net->rate = rate_from_section(&s->net_rates[i],
					      wanted->net_count ? &wanted->nets[i].rate : NULL);
	}
	/* new networks come with their own namespace (or none); --netns alone moves the old */
	if (!wanted->netns[0] && !wanted->net_count)
		snprintf(config->netns, sizeof(config->netns), "%s", s->netns);
	return 0;
}
