/* The virtio device options: --disk, --vsock, --net and --netns. */
#include "options/options.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/*
 * A rate limit flag of option (--disk, --net): "bw=SIZE[/s]" (bytes a second,
 * with the size suffixes of --mem) or "OPS_KEY=N" (operations a second) into
 * limit; 0 lifts the limit. *matched says whether flag was one of the two.
 * 0, or EXIT_USAGE after a message.
 */
static int rate_flag_parse(const char *command, const char *option, const char *flag, size_t len,
			   const char *ops_key, struct vmm_rate_limit *limit, bool *matched)
{
	size_t key_len = strlen(ops_key);
	bool bandwidth = len > 3 && !strncmp(flag, "bw=", 3);
	const char *text;
	size_t text_len;
	char value[32];
	uint64_t number;

	*matched = bandwidth ||
		   (len > key_len + 1 && !strncmp(flag, ops_key, key_len) && flag[key_len] == '=');
	if (!*matched)
		return 0;
	text = flag + (bandwidth ? 3 : key_len + 1);
	text_len = len - (size_t)(text - flag);
	if (bandwidth && text_len > 2 && !strncmp(text + text_len - 2, "/s", 2))
		text_len -= 2;
	if (text_len && text_len < sizeof(value)) {
		memcpy(value, text, text_len);
		value[text_len] = '\0';
		if (!(bandwidth ? parse_size(value, &number) : parse_u64(value, &number)) &&
		    number <= VMM_RATE_MAX) {
			if (bandwidth)
				limit->bandwidth = number;
			else
				limit->ops = number;
			limit->given |= bandwidth ? VMM_RATE_GIVEN_BANDWIDTH : VMM_RATE_GIVEN_OPS;
			return 0;
		}
	}
	return opt_usage_error(command,
			       "%s: '%.*s' is not bw=BYTES (a second, e.g. 4M) or %s=N, at "
			       "most %llu",
			       option, (int)len, flag, ops_key, VMM_RATE_MAX);
}

/*
 * Calls parse on each ",FLAG" from comma on (the text after an option's
 * first part); stops at the first error.
 */
static int flags_parse(const char *command, const char *comma,
		       int (*parse)(const char *command, const char *flag, size_t len,
				    void *target),
		       void *target)
{
	while (comma) {
		const char *flag = comma + 1, *next = strchr(flag, ',');
		int ret = parse(command, flag, next ? (size_t)(next - flag) : strlen(flag), target);

		if (ret)
			return ret;
		comma = next;
	}
	return 0;
}

/* One ",ro", ",id=NAME", ",bw=RATE" or ",iops=N" after the disk's path. */
static int disk_flag_parse(const char *command, const char *flag, size_t len, void *target)
{
	struct vmm_disk *disk = target;
	bool rate;
	int ret = rate_flag_parse(command, "--disk", flag, len, "iops", &disk->rate, &rate);

	if (ret || rate)
		return ret;
	if (len == 2 && !strncmp(flag, "ro", 2)) {
		disk->read_only = true;
		return 0;
	}
	if (len > 3 && !strncmp(flag, "id=", 3) && len - 3 <= VMM_DISK_ID_MAX) {
		memcpy(disk->id, flag + 3, len - 3);
		disk->id[len - 3] = '\0';
		return 0;
	}
	return opt_usage_error(command,
			       "--disk: '%.*s' is not ro, id=NAME (at most %d bytes), bw=BYTES "
			       "or iops=N",
			       (int)len, flag, VMM_DISK_ID_MAX);
}

int disk_option_parse(const char *command, const char *text, struct vmm_config *config)
{
	const char *comma = strchr(text, ',');
	size_t path_len = comma ? (size_t)(comma - text) : strlen(text);
	struct vmm_disk *disk;
	int ret;

	if (config->disk_count == VMM_MAX_DISKS)
		return opt_usage_error(command, "--disk: at most %d disks", VMM_MAX_DISKS);
	if (!path_len || path_len >= VMM_DISK_PATH_MAX)
		return opt_usage_error(command, "--disk: '%s' has no usable PATH", text);
	disk = &config->disks[config->disk_count];
	*disk = (struct vmm_disk){ 0 };
	memcpy(disk->path, text, path_len);
	ret = flags_parse(command, comma, disk_flag_parse, disk);
	if (ret)
		return ret;
	/* a usage error here, before any VM exists; the device's open still checks it */
	if (access(disk->path, disk->read_only ? R_OK : R_OK | W_OK) < 0)
		return opt_usage_error(command, "--disk: %s: %s", disk->path, strerror(errno));
	config->disk_count++;
	return 0;
}

/* "52:54:00:12:34:56": six hex pairs, not a multicast address. */
static int mac_parse(const char *text, size_t len, uint8_t mac[6])
{
	unsigned value[6];
	char copy[18], tail;

	if (len != 17)
		return -1;
	memcpy(copy, text, len);
	copy[len] = '\0';
	if (sscanf(copy, "%2x:%2x:%2x:%2x:%2x:%2x%c", &value[0], &value[1], &value[2], &value[3],
		   &value[4], &value[5], &tail) != 6 ||
	    value[0] & 1)
		return -1;
	for (unsigned i = 0; i < 6; i++)
		mac[i] = (uint8_t)value[i];
	return 0;
}

/* An IPv4 address, or nothing (0); into host byte order. */
static int ipv4_parse(const char *text, size_t len, uint32_t *addr)
{
	char copy[INET_ADDRSTRLEN];
	struct in_addr in;

	*addr = 0;
	if (!len)
		return 0;
	if (len >= sizeof(copy))
		return -1;
	memcpy(copy, text, len);
	copy[len] = '\0';
	if (inet_pton(AF_INET, copy, &in) != 1)
		return -1;
	*addr = ntohl(in.s_addr);
	return 0;
}

static int port_parse(const char *text, size_t len, uint16_t *port)
{
	char copy[8];
	uint64_t value;

	if (!len || len >= sizeof(copy))
		return -1;
	memcpy(copy, text, len);
	copy[len] = '\0';
	if (parse_u64(copy, &value) || value < 1 || value > 65535)
		return -1;
	*port = (uint16_t)value;
	return 0;
}

/* QEMU's hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT. */
static int hostfwd_parse(const char *text, size_t len, struct vmm_hostfwd *f)
{
	const char *end = text + len, *colon = memchr(text, ':', len), *dash, *colon2, *colon3;

	if (!colon)
		return -1;
	if (colon - text == 3 && !strncmp(text, "udp", 3))
		f->udp = true;
	else if (colon != text && (colon - text != 3 || strncmp(text, "tcp", 3)))
		return -1;
	colon2 = memchr(colon + 1, ':', (size_t)(end - colon - 1));
	dash = colon2 ? memchr(colon2, '-', (size_t)(end - colon2)) : NULL;
	colon3 = dash ? memchr(dash, ':', (size_t)(end - dash)) : NULL;
	if (!colon3 || ipv4_parse(colon + 1, (size_t)(colon2 - colon - 1), &f->host_addr) ||
	    port_parse(colon2 + 1, (size_t)(dash - colon2 - 1), &f->host_port) ||
	    ipv4_parse(dash + 1, (size_t)(colon3 - dash - 1), &f->guest_addr) ||
	    port_parse(colon3 + 1, (size_t)(end - colon3 - 1), &f->guest_port))
		return -1;
	return 0;
}

/* One ",mac=MAC", ",bw=RATE", ",pps=N" or (user networks) ",hostfwd=RULE" after the backend. */
static int net_flag_parse(const char *command, const char *flag, size_t len, void *target)
{
	struct vmm_net *net = target;
	bool rate;
	int ret = rate_flag_parse(command, "--net", flag, len, "pps", &net->rate, &rate);

	if (ret || rate)
		return ret;
	if (len > 4 && !strncmp(flag, "mac=", 4)) {
		if (!mac_parse(flag + 4, len - 4, net->mac))
			return 0;
		return opt_usage_error(command, "--net: '%.*s' is not a unicast MAC like %s",
				       (int)len - 4, flag + 4, "52:54:00:12:34:56");
	}
	if (len > 8 && !strncmp(flag, "hostfwd=", 8) && net->backend == VMM_NET_USER) {
		if (net->hostfwd_count == VMM_MAX_HOSTFWDS)
			return opt_usage_error(command, "--net: at most %d hostfwd rules",
					       VMM_MAX_HOSTFWDS);
		if (!hostfwd_parse(flag + 8, len - 8, &net->hostfwds[net->hostfwd_count++]))
			return 0;
		return opt_usage_error(command,
				       "--net: '%.*s' is not [tcp|udp]:[HOSTADDR]:HOSTPORT-"
				       "[GUESTADDR]:GUESTPORT",
				       (int)len - 8, flag + 8);
	}
	return opt_usage_error(command, "--net: '%.*s' is not mac=MAC, bw=BYTES, pps=N%s", (int)len,
			       flag, net->backend == VMM_NET_USER ? " or hostfwd=RULE" : "");
}

int net_option_parse(const char *command, const char *text, struct vmm_config *config)
{
	const char *comma = strchr(text, ',');
	size_t head_len = comma ? (size_t)(comma - text) : strlen(text);
	struct vmm_net *net;
	int ret;

	if (config->net_count == VMM_MAX_NETS)
		return opt_usage_error(command, "--net: at most %d network devices", VMM_MAX_NETS);
	net = &config->nets[config->net_count];
	*net = (struct vmm_net){ 0 };
	if (head_len == 4 && !strncmp(text, "user", 4)) {
		net->backend = VMM_NET_USER;
	} else if (head_len > 4 && head_len - 4 < VMM_TAP_NAME_MAX && !strncmp(text, "tap=", 4)) {
		net->backend = VMM_NET_TAP;
		memcpy(net->tap, text + 4, head_len - 4);
	} else {
		return opt_usage_error(command,
				       "--net: '%.*s' is not tap=NAME (up to %d bytes) or user",
				       (int)head_len, text, VMM_TAP_NAME_MAX - 1);
	}
	ret = flags_parse(command, comma, net_flag_parse, net);
	if (ret)
		return ret;
	config->net_count++;
	return 0;
}

int netns_option_parse(const char *command, const char *text, struct vmm_config *config)
{
	if (!text[0] || strlen(text) >= sizeof(config->netns))
		return opt_usage_error(command, "--netns: PATH must be 1 to %zu bytes",
				       sizeof(config->netns) - 1);
	snprintf(config->netns, sizeof(config->netns), "%s", text);
	return 0;
}
