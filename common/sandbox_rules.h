/* The seccomp rules, for the build-time filter compiler (private to common/). */
#ifndef SNAPVM_COMMON_SANDBOX_RULES_H
#define SNAPVM_COMMON_SANDBOX_RULES_H

#include <seccomp.h>

#include "common/common.h"

/* Adds the allow rules of one kind of thread to ctx; 0 or -errno. */
int sandbox_rules_add(scmp_filter_ctx ctx, enum sandbox_thread kind);

#endif
