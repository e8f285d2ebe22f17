/**
 * @file opscmd.h
 * @brief kpay-admin trace and dlq: the Kafka side (docs/ops.md).
 */
#ifndef KPAY_ADMIN_OPSCMD_H
#define KPAY_ADMIN_OPSCMD_H

#include <stdint.h>

#include "kpay/kp_app.h"

/** The options of the operational commands. */
typedef struct opscmd_opts_s {
        const char *error, *service, *actor;
        int dry_run, again, json;
        int64_t since_ms, max_scan;
        int timeout_ms;
} opscmd_opts_t;

/**
 * @brief Runs `trace ID`, `dlq list` or `dlq replay` (args[0] is "trace"
 *        or "dlq").
 * @returns the exit status: 0, 1 (Kafka error), 2 (bad arguments), 3
 *          (trace found nothing).
 */
int opscmd_main(const kp_app_conf_t *c, const opscmd_opts_t *o, int nargs,
                char **args);

#endif /* KPAY_ADMIN_OPSCMD_H */
