/* bench/: the `snapvm bench ...` measurements, each printing figures beside a baseline. */
#ifndef SNAPVM_BENCH_H
#define SNAPVM_BENCH_H

/* `snapvm bench boot`: process start to READY, snapvm beside QEMU microvm. */
int bench_boot_main(int argc, char **argv);

/* `snapvm bench restore`: process start to a restored guest's first reply, beside QEMU. */
int bench_restore_main(int argc, char **argv);

#endif
