/*
 * The test guest's work, in ring 3: initialize a heap, say READY, then answer
 * one request per line on COM1. Every reply depends only on the request and
 * the command line, so the same request gets the same reply in any VM, any
 * clone and any number of CPUs. The protocol is described in README.md.
 */
#include "guest.h"
#include "virtio.h"

#define LINE_MAX       128
#define WORDS_PER_PAGE 512
#define HEAP_ALIGN     (2ULL << 20)
#define READY_CODE     1

extern char _end[];

static uint64_t *heap;
static uint64_t heap_pages;

/* Deterministic content: word w of heap page p depends only on p and w. */
static void heap_fill(void)
{
	for (uint64_t p = 0; p < heap_pages; p++) {
		uint64_t *page = heap + p * WORDS_PER_PAGE;

		for (unsigned w = 0; w < WORDS_PER_PAGE; w++)
			page[w] = mix64(p * WORDS_PER_PAGE + w);
	}
}

struct touch_args {
	uint64_t count;
	uint64_t seed;
};

/* Reads this CPU's share of the chosen pages; the sum over CPUs is order-free. */
static uint64_t touch_share(unsigned cpu, unsigned ncpus, const void *arg)
{
	const struct touch_args *t = arg;
	uint64_t sum = 0;

	for (uint64_t i = cpu; i < t->count; i += ncpus) {
		uint64_t page = mix64(t->seed * 0x100000001b3ULL + i) % heap_pages;
		const volatile uint64_t *words = heap + page * WORDS_PER_PAGE;
		uint64_t h = page;

		for (unsigned w = 0; w < WORDS_PER_PAGE; w++)
			h = h * 31 + words[w];
		sum += mix64(h);
	}
	return sum;
}

static void reply_ok_hex(uint64_t value)
{
	console_put_str("OK ");
	console_put_hex64(value);
	console_put_char('\n');
}

/* Parses " N" or " N M" after a request word; false on anything else. */
static bool parse_arguments(const char *s, uint64_t *values, unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		const char *p = skip_spaces(s);

		if (p == s || !parse_number(&p, &values[i], false))
			return false;
		s = p;
	}
	return *skip_spaces(s) == '\0';
}

static void request_ping(const uint64_t *arg)
{
	(void)arg;
	console_put_str("PONG\n");
}

static void request_touch(const uint64_t *arg)
{
	struct touch_args t = { .count = arg[0], .seed = arg[1] };

	if (!heap_pages) {
		console_put_str("ERR no heap (boot with heap=SIZE)\n");
		return;
	}
	reply_ok_hex(smp_run_all(touch_share, &t));
}

/* Counts in ring 3 for a while: a guest that is busy when a snapshot is taken. */
static void request_spin(const uint64_t *arg)
{
	uint64_t x = 0;

	for (uint64_t i = 0; i < arg[0]; i++)
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	reply_ok_hex(x);
}

static void request_cpus(const uint64_t *arg)
{
	(void)arg;
	console_put_str("CPUS ");
	console_put_dec(cpus_online);
	console_put_char('\n');
}

/* The VM's generation id: new in every restored clone. */
static void request_gen(const uint64_t *arg)
{
	char line[4 + 32 + 1] = "GEN ";

	(void)arg;
	for (unsigned i = 0; i < 4; i++) {
		uint32_t word = inl(CTL_PORT_GENERATION + 4 * i);

		for (int d = 0; d < 8; d++)
			line[4 + 8 * i + d] = "0123456789abcdef"[(word >> (28 - 4 * d)) & 0xf];
	}
	line[sizeof(line) - 1] = '\n';
	console_write(line, sizeof(line));
}

static void request_time(const uint64_t *arg)
{
	(void)arg;
	console_put_str("TIME ");
	console_put_dec(time_monotonic_ns());
	console_put_char('\n');
}

static void request_walltime(const uint64_t *arg)
{
	(void)arg;
	console_put_str("WALLTIME ");
	console_put_dec(time_realtime_ns());
	console_put_char('\n');
}

/* For tests of snapvm's error paths: an exception the guest reports, and one it cannot. */
static void request_fault(const uint64_t *arg)
{
	(void)arg;
	__asm__ volatile("xor %%eax, %%eax; ud2" ::: "rax"); /* ud2 without a call number */
}

static void request_triple_fault(const uint64_t *arg)
{
	(void)arg;
	memset((void *)GUEST_IDT_ADDR, 0, 256 * 16); /* every gate not present */
	__asm__ volatile("xor %%eax, %%eax; ud2" ::: "rax");
}

static void request_exit(const uint64_t *arg)
{
	guest_exit(arg[0] > 255 ? 255 : (unsigned)arg[0]);
}

static const struct request {
	const char *word;
	unsigned nargs;
	void (*handle)(const uint64_t *arg);
} requests[] = {
	{ "ping", 0, request_ping },
	{ "touch", 2, request_touch },
	{ "spin", 1, request_spin },
	{ "cpus", 0, request_cpus },
	{ "gen", 0, request_gen },
	{ "time", 0, request_time },
	{ "walltime", 0, request_walltime },
	{ "exit", 1, request_exit },
	{ "fault", 0, request_fault },
	{ "triple-fault", 0, request_triple_fault },
	/* virtio devices (virtio.h) */
	{ "rng", 1, request_rng },
	{ "blk write", 3, request_blk_write },
	{ "blk read", 2, request_blk_read },
	{ "blk random read", 2, request_blk_random_read },
	{ "blk random write", 2, request_blk_random_write },
	{ "vsock listen", 1, request_vsock_listen },
	{ "vsock connect", 1, request_vsock_connect },
	{ "evil", 0, request_evil },
	{ "net evil", 0, request_net_evil }, /* before "net", which would take it */
	{ "net", 0, request_net },
};

void serve_request(const char *line)
{
	uint64_t arg[3];

	for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
		const struct request *r = &requests[i];
		size_t n = strlen(r->word);

		if (memcmp(line, r->word, n) || (line[n] != ' ' && line[n] != '\0'))
			continue;
		if (!parse_arguments(line + n, arg, r->nargs)) {
			console_put_str("ERR bad arguments\n");
			return;
		}
		r->handle(arg);
		return;
	}
	console_put_str("ERR unknown request\n");
}

/* Applies the command line's heap=SIZE; other words are left to others. */
static void cmdline_apply(const struct boot_info *boot)
{
	const char *s = boot->cmdline;
	uint64_t heap_start = ((uint64_t)_end + HEAP_ALIGN - 1) & ~(HEAP_ALIGN - 1);

	while (*(s = skip_spaces(s))) {
		uint64_t size;

		if (str_starts_with(s, "heap=")) {
			s += 5;
			if (!parse_number(&s, &size, true) || (*s && *s != ' ')) {
				console_put_str("ERR bad heap= on the command line\n");
				guest_exit(1);
			}
			if (size > boot->ram_below_4g_end - heap_start ||
			    heap_start + size > 0xc0000000ULL) {
				console_put_str("ERR heap does not fit in guest RAM\n");
				guest_exit(1);
			}
			heap = (uint64_t *)heap_start;
			heap_pages = size / 4096;
		}
		while (*s && *s != ' ')
			s++;
	}
}

void user_main(uint64_t boot_kind, uint64_t boot_info_address, uint64_t cpu);

/* Requests come from the virtio console when there is one, else from the UART. */
static bool hvc_active;

static bool input_poll_line(char *line, size_t size)
{
	static size_t hvc_len;

	return hvc_active ? hvc_poll_line(line, size, &hvc_len) : console_poll_line(line, size);
}

void user_main(uint64_t boot_kind, uint64_t boot_info_address, uint64_t cpu)
{
	struct boot_info boot;
	char line[LINE_MAX];

	if (boot_kind == BOOT_AP)
		smp_ap_main((unsigned)cpu);
	boot_info_read(boot_kind, boot_info_address, &boot);
	console_init();
	cmdline_apply(&boot);
	smp_start_aps();
	heap_fill();
	hvc_active = hvc_start();
	net_start(boot.cmdline);
	console_put_str("READY\n");
	outl(CTL_PORT_READY, READY_CODE);
	for (;;) {
		if (input_poll_line(line, sizeof(line))) {
			if (line[0])
				serve_request(line);
		} else if (!vsock_poll() && !net_poll()) {
			call_wait(); /* until the UART or a virtio device has something */
		}
	}
}
