/**
 * @file kp_topics.h
 * @brief The topics of kpay (DESIGN.md §2, docs/topics.md) and their names.
 *
 * Every name takes the deployment's optional prefix (--topic-prefix), which is
 * prepended as is: prefix "blue." gives "blue.kpay.payments.incoming".
 */
#ifndef KPAY_KP_TOPICS_H
#define KPAY_KP_TOPICS_H

#include <stddef.h>

typedef enum kp_topic_id_e {
        KP_TOPIC_INCOMING,
        KP_TOPIC_INFLIGHT,
        KP_TOPIC_COMPLETE,
        KP_TOPIC_CONFIRMED,
        KP_TOPIC_CONTROL_STATUS,
        KP_TOPIC_METADATA,
        KP_TOPIC_DLQ,
        KP_TOPIC_OPS_LOG,
        KP_TOPIC_OPS_AUDIT,
        KP_TOPIC_METRICS_WINDOWS,
        KP_TOPIC__CNT
} kp_topic_id_t;

/** How a topic is laid out on the broker. */
typedef struct kp_topic_spec_s {
        const char *name;         /**< without the prefix */
        int partitions;           /**< fixed count, or 0 for the deployment's */
        const char *cleanup;      /**< "delete" or "compact" */
        const char *retention_ms; /**< retention.ms, or NULL for the default */
} kp_topic_spec_t;

/** Marks the end of a list of topic ids. */
#define KP_TOPIC_NONE ((kp_topic_id_t)-1)

/**
 * What a stream processor reads and keeps, declared once by each daemon
 * beside its business logic: the runtime takes it from the daemon's
 * kp_proc_def_t, and kpay-admin creates the changelogs of every daemon's
 * stores from the same declarations.
 */
typedef struct kp_proc_layout_s {
        const char *service;         /**< "account": group kpay-account... */
        const kp_topic_id_t *inputs; /**< ends with KP_TOPIC_NONE */
        const char *const *stores;   /**< NULL-terminated; may be empty */
        /** NULL, or per store (the index of @p stores): NULL for a store
         *  whose keys live until deleted, or the retention.ms (decimal)
         *  of a store whose keys expire by time. Such a changelog is
         *  cleanup.policy=compact,delete with at least this retention, so
         *  that an expired key leaves the log without a tombstone (as
         *  Kafka Streams' windowed stores do); the processor deletes it
         *  locally only (kp_ctx_delete_local()). */
        const char *const *store_retention_ms;
} kp_proc_layout_t;

/** @brief The layout of topic @p id. @locality any thread */
const kp_topic_spec_t *kp_topic_spec(kp_topic_id_t id);

/**
 * @brief The id of the kpay topic named @p name (without the prefix).
 * @returns the id, or KP_TOPIC_NONE when @p name is not one of kpay's.
 */
kp_topic_id_t kp_topic_id_of(const char *name);

/**
 * @brief Writes prefix + the name of topic @p id into @p buf.
 * @returns @p buf. Names longer than @p size are truncated; 249 characters
 *          (Kafka's limit) always fit a 256-byte buffer.
 */
char *kp_topic_name(char *buf, size_t size, const char *prefix,
                    kp_topic_id_t id);

/**
 * @brief Writes the changelog topic name of a store:
 *        prefix + "kpay-<service>-<store>-changelog".
 * @returns @p buf.
 */
char *kp_changelog_name(char *buf, size_t size, const char *prefix,
                        const char *service, const char *store);

/**
 * @brief Checks that @p name is a legal Kafka topic name (1-249 characters of
 *        [A-Za-z0-9._-], not "." or "..").
 * @returns 1 if legal, else 0.
 */
int kp_topic_name_valid(const char *name);

#endif /* KPAY_KP_TOPICS_H */
