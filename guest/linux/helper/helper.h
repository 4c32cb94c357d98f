/* snapvm-helper's parts (guest/linux/helper/): a static program in the Linux guest. */
#ifndef SNAPVM_HELPER_H
#define SNAPVM_HELPER_H

#include <stddef.h>
#include <stdint.h>

#define HELPER_VSOCK_PORT 5000 /* where "serve" answers requests over vsock */

/* Tells snapvm the guest is ready (control port 0x600); 0, or -1 with a message. */
int ctl_ready(uint32_t code);
/* Reads snapvm's 128-bit generation id (ports 0x610-0x61f) as 32 hex digits. */
int ctl_generation(char hex[33]);

/* Fills MIB MiB of tmpfs (/tmp/pattern) and of an anonymous mapping with a seeded pattern. */
int memory_fill(unsigned mib, uint64_t seed);
/* Checks both against the pattern; writes "OK ..." or "ERR ..." into REPLY. */
void memory_check(char *reply, size_t size);
/* Changes one byte of the mapping, so that a test can see memory_check fail. */
void memory_corrupt(char *reply, size_t size);

/* The function: READY, the ready code, then requests on the console and vsock. */
int serve_main(int argc, char **argv);

/* vsock-connect CID PORT / vsock-listen PORT: stdin to the stream, the stream to stdout. */
int stream_vsock_connect(int argc, char **argv);
int stream_vsock_listen(int argc, char **argv);
/* vsock-keep PORT: a connection to the host that comes back after every reset. */
int stream_vsock_keep(int argc, char **argv);
/* echo tcp|udp PORT: an echo server; ask tcp|udp ADDR PORT COUNT: COUNT round trips. */
int stream_echo(int argc, char **argv);
int stream_ask(int argc, char **argv);

/* powerbutton: powers the guest off when an input device reports KEY_POWER. */
int power_button_main(int argc, char **argv);

/* Writes all of BUF to FD; 0 or -1. */
int write_all(int fd, const void *buf, size_t len);

#endif
