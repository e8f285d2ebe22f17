/* What every fuzz target shares: a check that aborts (libFuzzer then
 * saves the input as a crash) with the broken property. */
#ifndef KPAY_FUZZ_H
#define KPAY_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#include "kpay/kp_log.h"

#define FUZZ_CHECK(cond, ...)                                                  \
        do {                                                                   \
                if (!(cond)) {                                                 \
                        fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__,     \
                                #cond);                                        \
                        fprintf(stderr, __VA_ARGS__);                          \
                        fputc('\n', stderr);                                   \
                        abort();                                               \
                }                                                              \
        } while (0)

/* LLVMFuzzerInitialize() of a target that needs nothing but quiet: the
 * runtime's log lines would drown libFuzzer's. */
#define FUZZ_QUIET_INIT                                                        \
        int LLVMFuzzerInitialize(int *argc, char ***argv) {                    \
                (void)argc;                                                    \
                (void)argv;                                                    \
                kp_log_set_level(KP_LOG_FATAL);                                \
                return 0;                                                      \
        }

#endif
