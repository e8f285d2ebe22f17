/**
 * @file opscmd.h
 * @brief kpay-admin trace and dlq: the Kafka side (docs/ops.md).
 */
#ifndef KPAY_ADMIN_OPSCMD_H
#define KPAY_ADMIN_OPSCMD_H

#include <stdint.h>

#include "kpay/kp_app.h"
#include "kpay/kp_kafka.h"

/** The options of the operational commands. */
typedef struct opscmd_opts_s {
        const char *error, *service, *actor;
        int dry_run, again, json;
        int64_t since_ms, max_scan;
        int timeout_ms;
} opscmd_opts_t;

/**
 * @brief A producer handle of kpay-admin (for metadata, admin requests
 *        and writes) with @p c's bootstrap and -X and the property table
 *        @p props (or NULL).
 * @returns the client, or NULL after printing the reason on stderr.
 */
rd_kafka_t *opscmd_client(const kp_app_conf_t *c, const char *client_id,
                          const kp_kafka_prop_t *props);

/**
 * @brief Runs `trace ID`, `dlq list` or `dlq replay` (args[0] is "trace"
 *        or "dlq").
 * @returns the exit status: 0, 1 (Kafka error), 2 (bad arguments), 3
 *          (trace found nothing).
 */
int opscmd_main(const kp_app_conf_t *c, const opscmd_opts_t *o, int nargs,
                char **args);

#endif /* KPAY_ADMIN_OPSCMD_H */
