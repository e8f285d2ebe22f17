/**
 * @file kp_proc.h
 * @brief The stream-processing runtime: what Kafka Streams is to the Java
 *        KPay, so that a daemon is only its business logic.
 *
 * A daemon declares its input topics, its state stores and a process()
 * callback; kp_proc_run() does the rest (docs/runtime.md):
 *
 * - exactly once: consume -> process -> produce inside Kafka transactions
 *   (one transactional producer per instance, read_committed input, consumed
 *   offsets sent to the transaction with the consumer's group metadata),
 *   committed every --commit-interval-ms or --commit-max-records;
 * - state: one RocksDB store per (store, partition) with an overlay that
 *   reaches RocksDB only after the transaction carrying its changelog
 *   records has committed; restored from the compacted changelog on
 *   assignment;
 * - HTTP: /healthz, /readyz, /metrics and the interactive queries
 *   /v1/stores...;
 * - discovery: InstanceInfo on kpay.metadata;
 * - wall-clock punctuation, graceful shutdown on SIGTERM/SIGINT.
 *
 * Everything in this header is called on the processing thread, from
 * inside process() or punctuate(), unless it says otherwise.
 */
#ifndef KPAY_KP_PROC_H
#define KPAY_KP_PROC_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_app.h"
#include "kpay/kp_err.h"

typedef struct kp_proc_s kp_proc_t;
typedef struct kp_ctx_s kp_ctx_t;

/** One input record. Valid only during the process() call. */
typedef struct kp_record_s {
        const char *topic; /**< full topic name (with the prefix) */
        int input;         /**< index of the topic in kp_proc_def_t.inputs */
        int32_t partition;
        int64_t offset;
        int64_t timestamp; /**< ms since the epoch (the record's timestamp) */
        const void *key;   /**< may be NULL */
        size_t key_len;
        const void *value; /**< may be NULL (a tombstone) */
        size_t value_len;
        rd_kafka_headers_t *headers; /**< may be NULL; do not modify */
} kp_record_t;

/**
 * @brief Processes one record: read and write stores, emit records.
 * @returns KP_OK when the record was handled (processed, rejected by an
 *          emitted outcome, or dead-lettered with kp_ctx_dead_letter());
 *          any other code dead-letters the record with that error, except
 *          KP_ERR_STORE and KP_ERR_FATAL, which stop the instance (exit
 *          status 1) without committing, so that the record is processed
 *          again after a restart. Return a dead-lettering error only before
 *          the first write or emit for the record: what was already
 *          written or emitted commits with the dead letter.
 */
typedef kp_err_t(kp_process_cb)(kp_ctx_t *ctx, const kp_record_t *rec,
                                void *opaque);

/**
 * @brief Called every punctuate_interval_ms of wall-clock time for each
 *        partition this instance owns (kp_ctx_partition()), even when no
 *        record arrives. It may read and write stores and emit, like
 *        process().
 */
typedef void(kp_punctuate_cb)(kp_ctx_t *ctx, int64_t now_ms, void *opaque);

typedef struct kp_proc_def_s {
        /** The service name: consumer group "<prefix>kpay-<service>",
         *  changelogs "<prefix>kpay-<service>-<store>-changelog",
         *  state under "<state-dir>/<service>/<store>/<partition>". */
        const char *service;
        /** Input topic names without the prefix, NULL-terminated; all must
         *  have the same partition count (they are co-partitioned). */
        const char *const *inputs;
        /** Store names, NULL-terminated (may be empty). */
        const char *const *stores;
        kp_process_cb *process;
        kp_punctuate_cb *punctuate;    /**< or NULL */
        int64_t punctuate_interval_ms; /**< > 0 when punctuate is set */
        void *opaque;                  /**< passed to the callbacks */
} kp_proc_def_t;

/**
 * @brief The runtime's own options (commit size, heartbeat, memory...),
 *        added to a daemon's configuration by kp_proc_conf_table().
 */
typedef struct kp_proc_conf_s {
        int64_t commit_max_records;
        int64_t heartbeat_ms;
        int64_t block_cache_mb;
        int64_t write_buffer_mb;
        int64_t transaction_timeout_ms;
        int64_t http_threads;
        int static_membership;
} kp_proc_conf_t;

/** @brief The option table of kp_proc_conf_t (for kp_app_def_t.opts). */
const struct kp_conf_opt_s *kp_proc_conf_table(void);

/**
 * @brief A processor for @p def, configured by @p app's common options and
 *        @p pconf. Nothing connects yet.
 * @returns the processor or NULL with a reason in errstr.
 * @locality main thread
 */
kp_proc_t *kp_proc_new(kp_app_t *app, const kp_proc_conf_t *pconf,
                       const kp_proc_def_t *def, char *errstr,
                       size_t errstr_size);

/**
 * @brief Runs until SIGTERM/SIGINT (kp_app_running() turns 0) or a fatal
 *        error.
 * @returns the process exit status: 0 after a clean shutdown, 1 after a
 *          fatal error (fenced, a store failure...), which is logged.
 * @locality main thread (it becomes the processing thread)
 */
int kp_proc_run(kp_proc_t *proc);

/** @brief Frees the processor. NULL is a no-op. */
void kp_proc_destroy(kp_proc_t *proc);

/**
 * @brief The processor's metrics registry, for a daemon's own business
 *        metrics (register them before kp_proc_run()).
 * @locality any thread
 */
struct kp_metrics_s *kp_proc_metrics(kp_proc_t *proc);

/* ------------------------------------------------------------------------
 * Inside process() and punctuate().
 */

/** @brief The partition being processed (the stores' partition). */
int32_t kp_ctx_partition(const kp_ctx_t *ctx);

/** @brief The partition count of the input topics. */
int32_t kp_ctx_partition_count(const kp_ctx_t *ctx);

/** @brief Wall-clock ms when the current record or punctuation began. */
int64_t kp_ctx_now_ms(const kp_ctx_t *ctx);

/** @brief The index of store @p name in kp_proc_def_t.stores, or -1. */
int kp_ctx_store_index(const kp_ctx_t *ctx, const char *name);

/**
 * @brief Reads @p key from store @p store of the current partition (sees
 *        this transaction's own writes).
 * @param valp receives a kp_malloc()ed copy, or NULL to test presence.
 * @returns KP_OK, KP_ERR_NOT_FOUND or KP_ERR_STORE.
 */
kp_err_t kp_ctx_get(kp_ctx_t *ctx, int store, const void *key, size_t klen,
                    void **valp, size_t *vlenp);

/** Turns a stored value into a daemon's struct; KP_OK or an error. */
typedef kp_err_t(kp_ctx_decode_cb)(const void *val, size_t vlen, void *out);

/**
 * @brief Reads @p key from store @p store and decodes it into @p out.
 * @returns KP_OK; KP_ERR_NOT_FOUND when absent (@p out untouched); the
 *          read error; or KP_ERR_STORE when @p decode rejects the value
 *          (the store is corrupt: logged; process() should return it, so
 *          that the runtime stops and a restart restores).
 */
kp_err_t kp_ctx_get_decoded(kp_ctx_t *ctx, int store, const void *key,
                            size_t klen, kp_ctx_decode_cb *decode, void *out);

/**
 * @brief Writes @p key in store @p store, and to its changelog.
 * @returns KP_OK, KP_ERR_INVALID_ARG for an empty value (it would be a
 *          tombstone on the compacted changelog), or KP_ERR_KAFKA.
 */
kp_err_t kp_ctx_put(kp_ctx_t *ctx, int store, const void *key, size_t klen,
                    const void *val, size_t vlen);

/** @brief Deletes @p key from store @p store (a changelog tombstone). */
kp_err_t kp_ctx_delete(kp_ctx_t *ctx, int store, const void *key, size_t klen);

/**
 * @brief Called for each key of kp_ctx_scan() in byte order; return
 *        non-zero to stop.
 */
typedef int(kp_ctx_scan_cb)(const void *key, size_t klen, const void *val,
                            size_t vlen, void *opaque);

/**
 * @brief Scans the COMMITTED keys of store @p store in the current partition
 *        that are greater than @p after (all when NULL). Writes of the open
 *        transaction are not seen; use it for housekeeping in punctuate()
 *        (expiring old entries, say), where that does not matter.
 * @returns KP_OK or KP_ERR_STORE.
 */
kp_err_t kp_ctx_scan(kp_ctx_t *ctx, int store, const void *after,
                     size_t after_len, kp_ctx_scan_cb *cb, void *opaque);

/**
 * @brief Emits a record in the current transaction.
 * @param topic the topic name without the prefix ("kpay.payments.inflight").
 * @param partition an explicit partition, or -1 for murmur2(key) like the
 *        Java client.
 * @param headers extra headers or NULL; the runtime adds kpay-hop (this
 *        service) and carries kpay-trace over from the input record unless
 *        @p headers has one. Not taken: the caller still owns them.
 * @returns KP_OK or KP_ERR_KAFKA (the transaction then aborts and the
 *          input is processed again).
 */
kp_err_t kp_ctx_emit(kp_ctx_t *ctx, const char *topic, int32_t partition,
                     const void *key, size_t klen, const void *val, size_t vlen,
                     const rd_kafka_headers_t *headers);

/**
 * @brief Sends the current input record, byte for byte, to
 *        <prefix>kpay.dlq with the headers kpay-error (@p error),
 *        kpay-error-detail (@p detail), kpay-source-topic,
 *        kpay-source-partition, kpay-source-offset and kpay-service, in the
 *        current transaction, and counts it.
 */
kp_err_t kp_ctx_dead_letter(kp_ctx_t *ctx, const char *error,
                            const char *detail);

#endif /* KPAY_KP_PROC_H */
