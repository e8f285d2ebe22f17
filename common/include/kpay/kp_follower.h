/**
 * @file kp_follower.h
 * @brief Follows one topic read_committed, without a consumer group,
 *        optionally keeping the latest value per key (a compacted view).
 *
 * The follower assigns every partition of the topic (no group join, no
 * commits), from the beginning or from the end offsets it first sees. A
 * topic that does not exist yet is looked up again until it does, a
 * partition added later is read from its beginning, and a topic deleted
 * and re-created is read again from its start.
 *
 * Threaded, it reads on a background thread of its own and calls
 * on_record there. Not threaded, it reads only inside kp_follower_poll()
 * and kp_follower_sync(), on the caller's thread.
 *
 * Users: kp_discovery (kpay.metadata, threaded, with a table) and kpay-gen
 * (kpay.payments.complete, not threaded, from the end, every record).
 */
#ifndef KPAY_KP_FOLLOWER_H
#define KPAY_KP_FOLLOWER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_app.h"
#include "kpay/kp_err.h"

/** One record as the follower hands it to its hooks. */
typedef struct kp_follower_record_s {
        const void *key; /**< NULL when the record has none */
        size_t key_len;
        const void *value; /**< NULL for a tombstone */
        size_t value_len;
        int32_t partition;
        int64_t offset;
        int64_t timestamp;                 /**< wall-clock ms, or -1 */
        const rd_kafka_headers_t *headers; /**< NULL when none */
        const void *decoded; /**< what decode made of it (table only) */
} kp_follower_record_t;

/**
 * @brief Called for every record read; with a table, after the table is
 *        updated, and not for records the table skips (no key, or decode
 *        failed). The record and what it points to live only during the
 *        call. The follower's lock is not held: the callback may call
 *        kp_follower_get() and kp_follower_foreach().
 * @locality the follower thread (threaded), else the thread calling
 *           kp_follower_poll() or kp_follower_sync()
 */
typedef void(kp_follower_record_cb_t)(const kp_follower_record_t *rec,
                                      void *opaque);

/**
 * @brief Decodes a (non-tombstone) value for the table.
 * @param tsp holds the record's timestamp; a decoder may replace it with the
 *        value's own wall-clock stamp (0 or less: none), which dates the
 *        entry (see kp_follower_conf_t.stale_after_ms).
 * @returns the decoded object, owned by the table from then on, or NULL
 *          with a reason in errstr: the record is skipped (logged) and the
 *          key's entry is left as it was.
 * @locality as kp_follower_record_cb_t
 */
typedef void *(kp_follower_decode_cb_t)(const kp_follower_record_t *rec,
                                        int64_t *tsp, void *opaque,
                                        char *errstr, size_t errstr_size);

/** @brief Frees an object returned by the decode hook. */
typedef void(kp_follower_free_cb_t)(void *decoded, void *opaque);

/** What to follow and how. Zero-initialise, then fill in. */
typedef struct kp_follower_conf_s {
        const char *topic;     /**< full topic name (prefix included) */
        const char *client_id; /**< client.id and group.id (never joined);
                                *   default "kpay-follower" */
        const char *log_name;  /**< prefix of log lines; default "follower" */
        int from_end;          /**< start at the end offsets first seen, not at
                                *   the beginning */
        int keep_table;        /**< keep the latest value per key */
        int threaded;          /**< read on a background thread */
        int quiet; /**< log following / waiting for the topic at debug
                    *   level, not info (for command-line tools) */
        kp_follower_record_cb_t *on_record;  /**< may be NULL */
        kp_follower_decode_cb_t *decode;     /**< table only; may be NULL */
        kp_follower_free_cb_t *free_decoded; /**< frees decode's objects */
        void *opaque;                        /**< passed to the hooks */
        /** A table entry whose timestamp is already older than this when it
         *  is read (history read at start-up) counts as received that long
         *  ago; younger ones count as received now, so that clock skew
         *  between hosts does not matter. 0: always now. */
        int64_t stale_after_ms;
} kp_follower_conf_t;

/** A follower of one topic. */
typedef struct kp_follower_s kp_follower_t;

/**
 * @brief Creates a follower of @p fc->topic; a threaded one starts reading
 *        at once. Nothing is asked of the cluster here: a broker that is
 *        not reachable yet only delays the reading.
 * @param c bootstrap servers, -X properties (which win over the follower's
 *        own defaults only for fetch.wait.max.ms); may be NULL.
 * @param fc copied (the strings too); the hooks must outlive the follower.
 * @returns the follower, or NULL with a reason in errstr.
 * @locality any thread
 */
kp_follower_t *kp_follower_new(const kp_app_conf_t *c,
                               const kp_follower_conf_t *fc, char *errstr,
                               size_t errstr_size);

/**
 * @brief Reads what is there, waiting up to @p timeout_ms for the first
 *        record (or event), then handles what is already fetched without
 *        waiting. Only for a follower that is not threaded.
 * @returns the number of records handed to on_record, or -1 when @p f is
 *          NULL or threaded.
 * @locality the one thread that drives the follower
 */
int kp_follower_poll(kp_follower_t *f, int timeout_ms);

/**
 * @brief Waits until the follower has read the topic up to the end offsets
 *        (high watermarks) it sees when called: after KP_OK, every record
 *        committed before the call has been handled. A topic that does not
 *        exist or is empty counts as read. Not threaded, the follower reads
 *        inside this call (on_record runs here).
 * @param timeout_ms negative: no limit.
 * @returns KP_OK, KP_ERR_TIMED_OUT (also when the cluster cannot be asked)
 *          or KP_ERR_INVALID_ARG.
 * @locality any thread (threaded), else the thread that drives it
 */
kp_err_t kp_follower_sync(kp_follower_t *f, int timeout_ms);

/**
 * @brief A copy of the table's value for @p key.
 * @param valuep receives a kp_malloc()ed copy, NUL-terminated (not counted
 *        in *lenp), for the caller to kp_free().
 * @returns KP_OK, KP_ERR_NOT_FOUND, or KP_ERR_INVALID_ARG (no table).
 * @locality any thread
 */
kp_err_t kp_follower_get(kp_follower_t *f, const void *key, size_t key_len,
                         char **valuep, size_t *lenp);

/**
 * @brief Called for each table entry, in key order, under the follower's
 *        lock: it must not call the follower. @p recv_ms is the
 *        CLOCK_MONOTONIC ms the entry counts as received. Returning
 *        non-zero stops the walk.
 */
typedef int(kp_follower_foreach_cb_t)(const void *key, size_t key_len,
                                      const void *value, size_t value_len,
                                      const void *decoded, int64_t recv_ms,
                                      void *opaque);

/**
 * @brief Walks the table.
 * @returns the number of entries visited.
 * @locality any thread
 */
size_t kp_follower_foreach(kp_follower_t *f, kp_follower_foreach_cb_t *cb,
                           void *opaque);

/**
 * @brief Stops the follower (joins its thread; within about a second) and
 *        frees it with its table. NULL is a no-op.
 * @locality any thread but the follower's own (not from on_record)
 */
void kp_follower_destroy(kp_follower_t *f);

#endif /* KPAY_KP_FOLLOWER_H */
