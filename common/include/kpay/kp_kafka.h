/**
 * @file kp_kafka.h
 * @brief librdkafka configuration built the same way for every kpay client.
 */
#ifndef KPAY_KP_KAFKA_H
#define KPAY_KP_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "kpay/kp_app.h"
#include "kpay/kp_err.h"

/**
 * @brief A librdkafka configuration with bootstrap.servers, client.id, the
 *        log callback routed into kp_log, and then every -X property of
 *        @p c applied (so -X can override anything set here).
 * @param c the common options; may be NULL for defaults.
 * @param bootstrap overrides c->bootstrap_servers when not NULL.
 * @returns a new conf (the caller owns it), or NULL with a one-line reason
 *          naming the offending property in errstr.
 */
rd_kafka_conf_t *kp_kafka_conf_new(const kp_app_conf_t *c,
                                   const char *bootstrap, const char *client_id,
                                   char *errstr, size_t errstr_size);

/**
 * @brief rd_kafka_conf_set() with a kp_err_t result and an error message that
 *        names the property.
 */
kp_err_t kp_kafka_conf_set(rd_kafka_conf_t *conf, const char *name,
                           const char *value, char *errstr, size_t errstr_size);

/**
 * @brief Waits until the cluster answers a metadata request with at least
 *        one broker, or @p timeout_ms passes.
 * @returns KP_OK or KP_ERR_TIMED_OUT.
 */
kp_err_t kp_kafka_wait_ready(rd_kafka_t *rk, int timeout_ms);

#endif /* KPAY_KP_KAFKA_H */
