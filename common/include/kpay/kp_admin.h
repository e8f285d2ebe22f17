/**
 * @file kp_admin.h
 * @brief Creating and checking topics through librdkafka's Admin API.
 */
#ifndef KPAY_KP_ADMIN_H
#define KPAY_KP_ADMIN_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdio.h>

#include "kpay/kp_app.h"
#include "kpay/kp_err.h"
#include "kpay/kp_topics.h"

/** One topic as it must exist on the broker. */
typedef struct kp_topic_req_s {
        char *name;
        int partitions;
        int replication_factor;
        const char
            *cleanup_policy;      /**< "delete", "compact", "compact,delete" */
        const char *retention_ms; /**< NULL for the broker default */
        /** 1 for the changelog of a store whose keys expire
         *  (kp_proc_layout_t.store_retention_ms): an existing topic must
         *  keep at least retention_ms (-1, forever, does), and a
         *  compact-only one (made before such keys expired without
         *  tombstones) is accepted with a warning: it keeps expired keys
         *  until they are overwritten, which costs disk, not correctness. */
        int expiring;
} kp_topic_req_t;

/** A list of kp_topic_req_t that owns its names. */
typedef struct kp_topic_plan_s {
        size_t cnt;
        kp_topic_req_t *reqs;
} kp_topic_plan_t;

/**
 * @brief Adds one topic to @p plan (the name is copied).
 */
void kp_topic_plan_add(kp_topic_plan_t *plan, const char *name, int partitions,
                       int replication_factor, const char *cleanup_policy,
                       const char *retention_ms);

/**
 * @brief Adds the changelog of a store to @p plan: compacted, or, with
 *        @p retention_ms (a store whose keys expire), compact,delete with
 *        that retention as a minimum (kp_topic_req_t.expiring).
 */
void kp_topic_plan_add_changelog(kp_topic_plan_t *plan, const char *name,
                                 int partitions, int replication_factor,
                                 const char *retention_ms);

/**
 * @brief Adds every topic of DESIGN.md §2 with @p prefix: the data, control,
 *        metadata, DLQ and ops topics, then the changelog of every store of
 *        every processor in @p layouts, in their order.
 * @param partitions the deployment's partition count (topics with a fixed
 *        count, such as kpay.metadata, keep theirs; changelogs take it).
 * @param layouts the processors' layouts, NULL-terminated (kpay-admin's
 *        admin_layouts); NULL adds no changelog.
 * @locality any thread
 */
void kp_topic_plan_all(kp_topic_plan_t *plan, const char *prefix,
                       int partitions, int replication_factor,
                       const kp_proc_layout_t *const *layouts);

/** @brief Frees the plan's contents (not @p plan itself). */
void kp_topic_plan_clear(kp_topic_plan_t *plan);

/**
 * @brief Creates the topics of @p plan that do not exist and checks those that
 *        do.
 *
 * Idempotent. An existing topic with another partition count or cleanup
 * policy is an error that names the topic; every mismatch is reported on
 * @p report (one line each) and in errstr (the first one). Progress lines
 * ("created", "ok") go to @p report when it is not NULL.
 *
 * @returns KP_OK, KP_ERR_TOPIC_MISMATCH, KP_ERR_KAFKA or KP_ERR_TIMED_OUT.
 * @locality any thread; blocks up to about @p timeout_ms per request
 */
kp_err_t kp_admin_ensure_topics(rd_kafka_t *rk, const kp_topic_plan_t *plan,
                                int timeout_ms, FILE *report, char *errstr,
                                size_t errstr_size);

/**
 * @brief Reads the partition count and cleanup.policy of @p topic.
 * @param cleanup receives the policy ("delete", "compact", "compact,delete").
 * @returns KP_OK, KP_ERR_NOT_FOUND if the topic does not exist, or
 *          KP_ERR_KAFKA / KP_ERR_TIMED_OUT with a reason in errstr.
 */
kp_err_t kp_admin_describe_topic(rd_kafka_t *rk, const char *topic,
                                 int timeout_ms, int *partitionsp,
                                 char *cleanup, size_t cleanup_size,
                                 char *errstr, size_t errstr_size);

/**
 * @brief Called by kp_admin_scan() for each record read (committed ones
 *        only: read_committed). @returns 0 to go on, non-zero to stop.
 */
typedef int(kp_admin_scan_cb)(const rd_kafka_message_t *m, void *opaque);

/** What kp_admin_scan() reads. */
typedef struct kp_admin_scan_s {
        const char *topic;
        /** Partitions to read, or NULL for every partition of the topic. */
        const int32_t *partitions;
        size_t partition_cnt;
        /** Start at the first record at or after this time (ms since the
         *  epoch, offsetsForTimes); 0: at the start of the log. */
        int64_t since_ms;
        /** Stop a partition after this many records (0: no bound); the
         *  scan is then reported as truncated. */
        int64_t max_per_partition;
        int timeout_ms; /**< bound of the whole scan */
} kp_admin_scan_t;

/**
 * @brief Reads the partitions of @p s from their start (or since_ms) to
 *        the end offsets queried when it begins, with a consumer of its own
 *        (@p c's bootstrap and -X; no group offsets are committed), calling
 *        @p cb for each record. The end of a partition is reached when the
 *        consumer's position is there (transaction markers are never
 *        delivered), so an empty or fully aborted partition ends at once.
 * @param scannedp receives the records read (may be NULL).
 * @param truncatedp receives 1 when a partition hit max_per_partition.
 * @returns KP_OK, KP_ERR_NOT_FOUND (no such topic), KP_ERR_KAFKA or
 *          KP_ERR_TIMED_OUT, with a reason in errstr.
 * @locality any thread
 */
kp_err_t kp_admin_scan(const kp_app_conf_t *c, const kp_admin_scan_t *s,
                       kp_admin_scan_cb *cb, void *opaque, int64_t *scannedp,
                       int *truncatedp, char *errstr, size_t errstr_size);

/**
 * @brief The partition count of @p topic through any client @p rk.
 * @returns the count, or -1 (no such topic, or no answer).
 */
int32_t kp_admin_partition_count(rd_kafka_t *rk, const char *topic,
                                 int timeout_ms);

#endif /* KPAY_KP_ADMIN_H */
