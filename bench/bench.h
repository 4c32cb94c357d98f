/* bench/: the `snapvm bench ...` measurements, each printing figures beside a baseline. */
#ifndef SNAPVM_BENCH_H
#define SNAPVM_BENCH_H

/* `snapvm bench boot`: process start to READY, snapvm beside QEMU microvm. */
int bench_boot_main(int argc, char **argv);

#endif
