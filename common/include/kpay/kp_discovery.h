/**
 * @file kp_discovery.h
 * @brief Who serves what: key partitioning (Kafka's murmur2), InstanceInfo
 *        records on kpay.metadata, and a client that follows them.
 *
 * Every processor instance publishes an InstanceInfo, keyed
 * "<service>/<instance>", on every assignment change and as a heartbeat,
 * and a tombstone on clean exit. Readers (kpay-web, kpay-control, tests)
 * follow the topic and route key K of a store to
 * partition = kp_partition_for_key(K, N), then to the live instance that
 * owns that partition.
 */
#ifndef KPAY_KP_DISCOVERY_H
#define KPAY_KP_DISCOVERY_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_app.h"
#include "kpay/kp_err.h"

/**
 * @brief Kafka's murmur2 hash (the Java client's Utils.murmur2, seed
 *        0x9747b28c), as librdkafka's murmur2 partitioners use it.
 */
uint32_t kp_murmur2(const void *key, size_t len);

/**
 * @brief The partition the Java client and librdkafka's murmur2_random
 *        partitioner choose for a non-empty key:
 *        (murmur2(key) & 0x7fffffff) % partition_cnt.
 */
int32_t kp_partition_for_key(const void *key, size_t len,
                             int32_t partition_cnt);

/** One instance of a processor, as published on kpay.metadata. */
typedef struct kp_instance_info_s {
        char *service;  /**< "account" */
        char *instance; /**< the instance id */
        char *endpoint; /**< HTTP "host:port" */
        char *state;    /**< "STARTING", "RESTORING", "RUNNING", "STOPPING" */
        char **stores;  /**< store names */
        size_t store_cnt;
        int32_t *partitions; /**< partitions it owns, ascending */
        size_t partition_cnt;
        int32_t partition_count; /**< partitions of its input topics */
        /** Of those it owns, the partitions still restoring their stores
         *  (not processed yet; their keys answer 503), ascending. */
        int32_t *restoring;
        size_t restoring_cnt;
        int64_t ts; /**< wall-clock ms when published */
        /** What the daemon itself reports (kp_service_set_status()), as
         *  compact JSON object text, or NULL: kpay-inflight's control-plane
         *  status, say (docs/control.md). */
        char *status;
} kp_instance_info_t;

/**
 * @brief Serializes @p info as JSON:
 *        {"service","instance","endpoint","state","stores":[...],
 *         "partitions":[...],"restoring":[...],"partition_count","ts"}, plus
 * "status" (an object) when @p info->status is set and is a JSON object.
 * @returns a kp_malloc()ed string.
 */
char *kp_instance_info_to_json(const kp_instance_info_t *info);

/**
 * @brief Parses JSON written by kp_instance_info_to_json() into @p out
 *        (which the caller clears with kp_instance_info_clear()).
 * @returns KP_OK or KP_ERR_PARSE with a reason.
 */
kp_err_t kp_instance_info_from_json(const char *json, size_t len,
                                    kp_instance_info_t *out, char *errstr,
                                    size_t errstr_size);

/** @brief Deep-copies @p src into @p dst. */
void kp_instance_info_copy(kp_instance_info_t *dst,
                           const kp_instance_info_t *src);

/** @brief Frees the contents of @p info (not @p info itself). */
void kp_instance_info_clear(kp_instance_info_t *info);

/** @brief Frees an array returned by kp_discovery_instances(). */
void kp_instance_info_list_free(kp_instance_info_t *list, size_t cnt);

/** @brief 1 if @p info lists @p partition, else 0. */
int kp_instance_info_owns(const kp_instance_info_t *info, int32_t partition);

/** A follower of kpay.metadata. */
typedef struct kp_discovery_s kp_discovery_t;

/**
 * @brief Starts following <prefix>kpay.metadata from its beginning on a
 *        background thread (read_committed, no consumer group).
 * @param c bootstrap servers, -X properties and topic prefix.
 * @param dead_after_ms an instance whose last record is older than this is
 *        treated as dead (3 heartbeats is a good value).
 * @returns the follower, or NULL with a reason in errstr.
 * @locality any thread
 */
kp_discovery_t *kp_discovery_new(const kp_app_conf_t *c, int64_t dead_after_ms,
                                 char *errstr, size_t errstr_size);

/**
 * @brief Waits until the follower has read the topic up to the end offsets
 *        it saw when called (so it knows every instance published before).
 * @returns KP_OK or KP_ERR_TIMED_OUT.
 */
kp_err_t kp_discovery_sync(kp_discovery_t *d, int timeout_ms);

/**
 * @brief The live instances of @p service (all services when NULL), as deep
 *        copies sorted by instance id.
 * @returns the count; *listp is freed with kp_instance_info_list_free().
 * @locality any thread
 */
size_t kp_discovery_instances(kp_discovery_t *d, const char *service,
                              kp_instance_info_t **listp);

/**
 * @brief The live instance of @p service that owns the partition of @p key
 *        in store @p store.
 * @param partitionp receives the key's partition (may be NULL).
 * @returns KP_OK with a deep copy in @p out (cleared by the caller with
 *          kp_instance_info_clear()), or KP_ERR_NOT_FOUND when no live
 *          instance owns it (a rebalance in progress, say).
 */
kp_err_t kp_discovery_owner(kp_discovery_t *d, const char *service,
                            const char *store, const void *key, size_t klen,
                            kp_instance_info_t *out, int32_t *partitionp);

/** @brief Stops the follower thread and frees it. NULL is a no-op. */
void kp_discovery_destroy(kp_discovery_t *d);

#endif /* KPAY_KP_DISCOVERY_H */
