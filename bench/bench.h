/* bench/: the `snapvm bench ...` measurements, each printing figures beside a baseline. */
#ifndef SNAPVM_BENCH_H
#define SNAPVM_BENCH_H

/* `snapvm bench boot`: process start to READY, snapvm beside QEMU microvm. */
int bench_boot_main(int argc, char **argv);

/* `snapvm bench restore`: process start to a restored guest's first reply, beside QEMU. */
int bench_restore_main(int argc, char **argv);

/* `snapvm bench density`: N clones up at once: start rate, time to reply, host memory each. */
int bench_density_main(int argc, char **argv);

/* `snapvm bench vsock`: host <-> guest round trips over vsock, beside the serial console. */
int bench_vsock_main(int argc, char **argv);

/* `snapvm bench net`: UDP request/reply over TAP and user networking, beside QEMU microvm. */
int bench_net_main(int argc, char **argv);

/* `snapvm bench blk`: virtio-blk throughput beside the raw file's on the host. */
int bench_blk_main(int argc, char **argv);

/* `snapvm bench store`: the store's writes and reads beside plain files (argv[0] "store"). */
int bench_store_main(int argc, char **argv);

/* `snapvm bench serve`: invocations through the HTTP API beside `snapvm invoke` processes. */
int bench_serve_main(int argc, char **argv);

#endif
