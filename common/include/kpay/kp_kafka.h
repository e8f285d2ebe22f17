/**
 * @file kp_kafka.h
 * @brief librdkafka configuration built the same way for every kpay client.
 */
#ifndef KPAY_KP_KAFKA_H
#define KPAY_KP_KAFKA_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "kpay/kp_app.h"
#include "kpay/kp_err.h"

/**
 * @brief A librdkafka configuration with bootstrap.servers, client.id, the
 *        log callback routed into kp_log, the defaults of every kpay client
 *        (socket.nagle.disable=true), and then every -X property of @p c
 *        applied (so -X can override anything set here).
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

/** How a kpay client treats one librdkafka property it sets. */
typedef enum kp_kafka_prop_kind_e {
        /** A tunable: set unless the user passed the property with -X. */
        KP_PROP_DEFAULT,
        /** A safety invariant (exactly once, offsets...): always set; a -X
         *  that tried to change it is logged as a warning and ignored. */
        KP_PROP_REQUIRE,
        /** A tunable as KP_PROP_DEFAULT, of a property only some
         *  librdkafka builds have (kpay's own build: docs/development.md,
         *  "librdkafka"): a library that does not know it runs without it. */
        KP_PROP_DEFAULT_IF_KNOWN,
} kp_kafka_prop_kind_t;

/** One row of a client's property table. */
typedef struct kp_kafka_prop_s {
        const char *name;  /**< librdkafka property; NULL ends the table */
        const char *value; /**< its value; NULL skips the row */
        kp_kafka_prop_kind_t kind;
} kp_kafka_prop_t;

/**
 * Memory defaults of a consumer's rows (docs/runtime.md, "Memory"). The
 * records librdkafka prefetches are bounded by queued.min.messages (a
 * count; 100,000 by default) and queued.max.messages.kbytes (their
 * payload, in units of 1,000 bytes; 64 MB by default), both for the
 * consumer's one queue, plus the fetch response in flight. librdkafka
 * sizes that from the queue (fetch.max.bytes: the kbytes times 1,024, but
 * at least message.max.bytes), so it is not set here: an explicit value
 * would make a larger -X message.max.bytes fail the configuration. A
 * queued record costs its payload plus a 1 KiB op (librdkafka 2.14's
 * sizeof(rd_kafka_op_t)), so the count binds first for records of a
 * payment's size. While the queue is full its partitions are fetched
 * again after fetch.queue.backoff.ms (1 s by default: a small queue
 * drained in less than that, and the consumer idled until then).
 * @p msgs is the count and @p kbytes the payload bound.
 */
#define KP_KAFKA_CONSUMER_MEMORY(msgs, kbytes)                                 \
        {"queued.min.messages", msgs, KP_PROP_DEFAULT},                        \
            {"queued.max.messages.kbytes", kbytes, KP_PROP_DEFAULT}, {         \
                "fetch.queue.backoff.ms", "10", KP_PROP_DEFAULT                \
        }

/**
 * @brief A client configuration from a property table: what
 *        kp_kafka_conf_new() sets (bootstrap, client.id, logging, every -X
 *        property), then each KP_PROP_DEFAULT row the user did not pass
 *        with -X (and each KP_PROP_DEFAULT_IF_KNOWN row this librdkafka
 *        knows), then every KP_PROP_REQUIRE row (warning once about a -X
 *        value it overrides). docs/runtime.md lists the tables.
 * @param props rows ending with a {NULL} row.
 * @returns a new conf (the caller owns it) or NULL with a reason.
 * @locality any thread
 */
rd_kafka_conf_t *kp_kafka_conf_build(const kp_app_conf_t *c,
                                     const char *client_id,
                                     const kp_kafka_prop_t *props, char *errstr,
                                     size_t errstr_size);

/**
 * @brief 1 if the value of property @p name is a secret (a password, a
 *        private key, a SASL/OAuth configuration) that must never be
 *        logged or served.
 */
int kp_kafka_prop_is_secret(const char *name);

/**
 * @brief The effective configuration of client @p rk as a JSON object of
 *        property -> value, with secrets masked ("********").
 * @returns a new reference. @locality any thread (the configuration of a
 *          client is immutable once it is created)
 */
json_t *kp_kafka_conf_json(rd_kafka_t *rk);

/**
 * @brief Waits until the cluster answers a metadata request with at least
 *        one broker, or @p timeout_ms passes. A success tells
 *        kp_kafka_mark_ready() that the cluster accepted this process.
 * @returns KP_OK, KP_ERR_TIMED_OUT, or KP_ERR_AUTH as soon as the cluster
 *          refused this process's credentials or TLS handshake before it
 *          ever accepted them (kp_kafka_auth_failure() says why).
 */
kp_err_t kp_kafka_wait_ready(rd_kafka_t *rk, int timeout_ms);

/**
 * @brief The delivery-report callback (rd_kafka_conf_set_dr_msg_cb) of a
 *        producer used with kp_kafka_produce_sync(). Messages produced
 *        without its opaque are ignored. @locality the polling thread
 */
void kp_kafka_sync_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                         void *opaque);

/**
 * @brief Produces one record and waits for its delivery report, polling
 *        @p rk (whose dr_msg_cb must be kp_kafka_sync_dr_cb) for at most
 *        @p timeout_ms + 5 s; keep message.timeout.ms below @p timeout_ms.
 *        When no report comes in time the producer's queue is purged.
 * @param partition a partition or RD_KAFKA_PARTITION_UA (the partitioner).
 * @param hdrs headers or NULL; always taken (freed on error too).
 * @returns KP_OK, KP_ERR_KAFKA (logged with the cause) or
 *          KP_ERR_TIMED_OUT.
 * @locality one thread at a time per producer (it polls it)
 */
kp_err_t kp_kafka_produce_sync(rd_kafka_t *rk, const char *topic,
                               int32_t partition, const void *key, size_t klen,
                               const void *val, size_t vlen,
                               rd_kafka_headers_t *hdrs, int timeout_ms);

/**
 * @brief kp_kafka_wait_ready() that writes the one line to report when it
 *        fails: the authentication failure (kp_kafka_auth_failure()) or
 *        "no Kafka broker answered at BOOTSTRAP within N ms".
 */
kp_err_t kp_kafka_wait_ready_reason(rd_kafka_t *rk, const char *bootstrap,
                                    int timeout_ms, char *errstr,
                                    size_t errstr_size);

/**
 * @brief Completes the Kafka settings of @p c once its options are loaded
 *        (kp_app_new() calls it for every binary with KP_APP_CLIENT).
 *
 * The properties of c->kafka_config (`--kafka-config FILE`, env
 * KPAY_KAFKA_CONFIG: a Java-style properties file of librdkafka property
 * names, kp_conf_props_parse(); each checked against librdkafka, errors
 * name FILE:LINE), then sasl.password from env KPAY_KAFKA_SASL_PASSWORD or
 * from the first line of c->kafka_password_file (at most one of the two),
 * go into c->kafka *below* the -X properties already there: -X wins over
 * both, the password over the file. bootstrap.servers and client.id are
 * refused in the file (--bootstrap-servers and kpay set them).
 * docs/security.md.
 *
 * @returns KP_OK or KP_ERR_CONFIG with a one-line reason that never quotes
 *          a secret.
 */
kp_err_t kp_kafka_config_apply(kp_app_conf_t *c, char *errstr,
                               size_t errstr_size);

/**
 * @brief Process-wide: the cluster has accepted this process (a metadata
 *        answer, a delivered record). From then on an authentication or
 *        TLS failure is logged like any broker error and retried, never
 *        fatal. @locality any thread
 */
void kp_kafka_mark_ready(void);

/**
 * @brief 1 when, before kp_kafka_mark_ready(), a broker refused this
 *        process's SASL credentials or a TLS handshake failed, with the
 *        one line to report in @p buf (librdkafka's reason and what to
 *        check); else 0. Noticed from librdkafka's log callback of every
 *        client made by kp_kafka_conf_new(), so no client needs polling.
 * @locality any thread
 */
int kp_kafka_auth_failure(char *buf, size_t size);

/**
 * @brief The log callback of every kpay client (kp_kafka_conf_new() sets
 *        it): notes authentication and TLS failures for
 *        kp_kafka_auth_failure() and hands every line to
 *        kp_log_rdkafka_cb(). Before the cluster has accepted the process,
 *        an authentication failure's own line (and librdkafka's "brokers
 *        are down" that follows it) is logged at debug level: the caller's
 *        one error line carries its text.
 */
void kp_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac,
                     const char *buf);

#endif /* KPAY_KP_KAFKA_H */
