/**
 * @file kp_opslog.h
 * @brief The kpay.ops.log sink: a daemon's WARN-and-above log lines as
 *        structured JSON records on Kafka (docs/ops.md, "kpay.ops.log").
 *
 * kp_service starts it with --ops-log. Every line kp_log writes at WARN or
 * above (also librdkafka's, and the repeat limit's summaries) is copied
 * into a bounded queue and produced, keyed by the service, by a thread of
 * its own:
 *
 *     {"v":1,"ts":1700000000000,"level":"warn","service":"account",
 *      "instance":"account-1","msg":"...","dropped":0}
 *
 * `dropped` counts the lines lost so far (queue full, or not delivered);
 * it is also the metric kpay_ops_log_dropped_total. The sink never blocks
 * the thread that logs (it copies the line under a short lock, or drops
 * it), never feeds itself (the lines of its own thread and of its
 * producer's librdkafka threads stay on stderr only), and never makes the
 * daemon fail: a sink that cannot start is a warning.
 */
#ifndef KPAY_KP_OPSLOG_H
#define KPAY_KP_OPSLOG_H

#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_app.h"
#include "kpay/kp_metrics.h"

/** Lines the queue holds before it drops. */
#define KP_OPSLOG_QUEUE_MAX 1024

typedef struct kp_opslog_s kp_opslog_t;

/**
 * @brief Starts the sink for @p service / @p instance (copied) of the
 *        deployment of @p c (bootstrap, prefix, -X), with its counters in
 *        @p m (may be NULL), and installs it as kp_log's sink.
 * @returns the sink, or NULL with a reason in errstr.
 * @locality main thread
 */
kp_opslog_t *kp_opslog_start(const kp_app_conf_t *c, const char *service,
                             const char *instance, kp_metrics_t *m,
                             char *errstr, size_t errstr_size);

/**
 * @brief Uninstalls the sink, produces what it holds and waits at most
 *        @p timeout_ms for the delivery (what is left then is dropped),
 *        then frees it. NULL is a no-op.
 * @returns the lines dropped over the sink's life.
 * @locality main thread
 */
int64_t kp_opslog_stop(kp_opslog_t *ol, int timeout_ms);

/** @brief Lines dropped so far. @locality any thread */
int64_t kp_opslog_dropped(const kp_opslog_t *ol);

/** @brief Lines delivered so far. @locality any thread */
int64_t kp_opslog_delivered(const kp_opslog_t *ol);

#endif /* KPAY_KP_OPSLOG_H */
