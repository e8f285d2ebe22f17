/**
 * @file kp_proc.h
 * @brief The stream-processing runtime: what Kafka Streams is to the Java
 *        KPay, so that a daemon is only its business logic.
 *
 * A daemon declares its layout (input topics, state stores), a process()
 * callback and optional hooks in a kp_proc_def_t, and its main() is
 * kp_proc_main(); the runtime does the rest (docs/runtime.md):
 *
 * - exactly once: consume -> process -> produce inside Kafka transactions
 *   (one transactional producer per instance, read_committed input, consumed
 *   offsets sent to the transaction with the consumer's group metadata),
 *   committed as soon as the input is drained (at most every
 *   --commit-min-interval-ms), at the latest every --commit-interval-ms or
 *   --commit-max-records;
 * - state: one RocksDB store per (store, partition) with an overlay that
 *   reaches RocksDB only after the transaction carrying its changelog
 *   records has committed; restored from the compacted changelog on
 *   assignment;
 * - HTTP (kp_service): /healthz, /readyz, /metrics, /v1/config, and the
 *   interactive queries /v1/stores...;
 * - discovery: InstanceInfo on kpay.metadata, with the lifecycle state;
 * - flow control: an input can be paused or rate limited (the control
 *   plane's hooks);
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
#include "kpay/kp_conf.h"
#include "kpay/kp_err.h"
#include "kpay/kp_service.h"
#include "kpay/kp_topics.h"

typedef struct kp_proc_s kp_proc_t;
typedef struct kp_ctx_s kp_ctx_t;
/** A store being restored (kp_proc_def_t.restored). */
typedef struct restore_s kp_restore_ctx_t;

/** One input record. Valid only during the process() call. */
typedef struct kp_record_s {
        const char *topic;      /**< full topic name (with the prefix) */
        kp_topic_id_t topic_id; /**< the topic (layout inputs) */
        int input;              /**< index of the topic in the inputs */
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

/** A stream-processing daemon: everything its main() needs. */
typedef struct kp_proc_def_s {
        const char *name;    /**< the binary, "kpay-account" */
        const char *summary; /**< one line for --help */
        /** Service name, inputs and stores: consumer group
         *  "<prefix>kpay-<service>", changelogs
         *  "<prefix>kpay-<service>-<store>-changelog", state under
         *  "<state-dir>/<service>/<store>/<partition>". Inputs must have the
         *  same partition count (they are co-partitioned). */
        const kp_proc_layout_t *layout;
        /** Names of topics outside kpay's table (kp_topics.h) that the
         *  daemon reads or emits to, NULL-terminated, or NULL; topic id
         *  KP_TOPIC__CNT + i names extra_topics[i]. (Tests use it.) */
        const char *const *extra_topics;
        /** The daemon's own option sections ({NULL}-terminated) or NULL. */
        const kp_conf_section_t *sections;
        kp_process_cb *process;
        kp_punctuate_cb *punctuate;    /**< or NULL */
        int64_t punctuate_interval_ms; /**< > 0 when punctuate is set */
        /** After the options are loaded, before the processor is built:
         *  may adjust @p def (a copy), e.g. set punctuate() from an option.
         *  An error stops the daemon (exit status 2). Optional. */
        kp_err_t (*configure)(struct kp_proc_def_s *def, void *opaque);
        /** After the options are loaded and the processor is built, before
         *  it connects: business metrics, routes, followers. An error stops
         *  the daemon (exit status 1). Optional. */
        kp_err_t (*init)(kp_proc_t *proc, void *opaque);
        /** Called on the processing thread on every turn of the loop (at
         *  least every 100 ms), after the commit check and just before
         *  flow control is applied: a pause or rate limit asked here
         *  takes effect before the next record is read. Optional. */
        void (*tick)(kp_proc_t *proc, int64_t now_ms, void *opaque);
        /** Before the processor is destroyed. Optional. */
        void (*fini)(kp_proc_t *proc, void *opaque);
        /** Called for each changelog record a restore applies to store
         *  @p store (@p val NULL for a tombstone), after applying it: may
         *  write the local state derived from it (kp_restore_write_local(),
         *  what kp_ctx_write_local() wrote while processing). Optional. */
        void (*restored)(kp_restore_ctx_t *rc, int store, const void *key,
                         size_t klen, const void *val, size_t vlen,
                         void *opaque);
        void *opaque; /**< passed to every callback */
} kp_proc_def_t;

/** The runtime's own options (commit size, memory...), kp_proc_conf_table(). */
typedef struct kp_proc_conf_s {
        int64_t commit_max_records;
        int64_t block_cache_mb;
        int64_t write_buffer_mb;
        int64_t transaction_timeout_ms;
        int static_membership;
        int64_t retry_deadline_ms;
        int64_t restore_max_rate; /**< restored records/s at most; 0: any */
} kp_proc_conf_t;

/** @brief The option table of kp_proc_conf_t. */
const struct kp_conf_opt_s *kp_proc_conf_table(void);

/**
 * @brief The whole main() of a stream-processing daemon: options (--help
 *        lists the daemon's, the service's and the runtime's), the
 *        processor, init(), run until SIGTERM/SIGINT or a fatal error,
 *        fini(), destroy; an error is printed as one line.
 * @returns the exit status: 0 after a clean shutdown (or --help), 1 after
 *          a fatal error (fenced, a store failure...), 2 after a
 *          configuration error.
 * @locality main thread (it becomes the processing thread)
 */
int kp_proc_main(const kp_proc_def_t *def, int argc, char **argv);

/**
 * @brief A processor for @p def, configured by @p app's common options,
 *        @p sconf and @p pconf. Nothing connects yet. (kp_proc_main() is
 *        the usual way; benchmarks and tests may build one themselves.)
 * @returns the processor or NULL with a reason in errstr.
 * @locality main thread
 */
kp_proc_t *kp_proc_new(kp_app_t *app, const kp_service_conf_t *sconf,
                       const kp_proc_conf_t *pconf, const kp_proc_def_t *def,
                       char *errstr, size_t errstr_size);

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
 * @brief The processor's service (HTTP routes, metrics, lifecycle), for a
 *        daemon's own routes and business metrics (add them in init()).
 * @locality any thread
 */
kp_service_t *kp_proc_service(kp_proc_t *proc);

/** @brief The metrics registry (kp_service_metrics() of the service). */
struct kp_metrics_s *kp_proc_metrics(kp_proc_t *proc);

/**
 * @brief Pauses (@p paused = 1) or resumes (0) input @p input on every
 *        partition this instance owns, now and after every rebalance,
 *        without leaving the group: records of a paused input wait in
 *        Kafka, the other inputs keep flowing (that is how kpay-inflight
 *        drains: intake paused, completions still processed). Set it in
 *        init() to start paused: no record of the input is processed
 *        before kp_proc_pause_input(.., 0).
 * @returns KP_OK, or KP_ERR_INVALID_ARG when @p input is not an input.
 * @locality any thread (applied by the processing thread within one poll
 *           interval, at most 100 ms)
 */
kp_err_t kp_proc_pause_input(kp_proc_t *proc, kp_topic_id_t input, int paused);

/** @brief 1 if input @p input is paused by kp_proc_pause_input(). */
int kp_proc_input_paused(kp_proc_t *proc, kp_topic_id_t input);

/**
 * @brief Limits input @p input to @p per_second records per second on this
 *        instance: a token bucket with a burst of a quarter of a second
 *        (kp_bucket.h); the input pauses while the bucket is empty and
 *        resumes as soon as it holds a token again, so excess records wait
 *        in Kafka (docs/runtime.md, "Flow control"); 0 removes the limit.
 * @returns KP_OK, or KP_ERR_INVALID_ARG for a bad input or a negative rate.
 * @locality any thread (applied by the processing thread)
 */
kp_err_t kp_proc_rate_limit_input(kp_proc_t *proc, kp_topic_id_t input,
                                  double per_second);

/**
 * @brief The number of partitions this instance owns now (restored and
 *        ready), for a share of a cluster-wide quota.
 * @locality any thread
 */
int kp_proc_owned_partitions(kp_proc_t *proc);

/**
 * @brief A number that changes on every assignment and revocation: the
 *        runtime then withdraws the daemon's InstanceInfo status
 *        (kp_service_set_status()), which the daemon sets again.
 * @locality processing thread
 */
int64_t kp_proc_assignment_epoch(const kp_proc_t *proc);

/** @brief The partition count of the inputs (0 before the first
 *         assignment has looked the topics up). @locality any thread */
int32_t kp_proc_partition_count(kp_proc_t *proc);

/**
 * @brief Called by kp_proc_foreach_committed() for each owned partition
 *        with the committed value of the key, or NULL (@p vlen 0) when the
 *        partition has none. The value lives only during the call.
 */
typedef void(kp_proc_committed_cb)(int32_t partition, const void *val,
                                   size_t vlen, void *opaque);

/**
 * @brief Reads the COMMITTED value of @p key in store @p store (its index
 *        in the layout) of every partition this instance owns, under the
 *        task table's read lock (a rebalance waits): a per-partition total
 *        summed over the instance, say. @p cb must not call the processor.
 * @returns the number of partitions visited, or -1 for a bad store or
 *          key, or a store read error.
 * @locality any thread
 */
int kp_proc_foreach_committed(kp_proc_t *proc, int store, const void *key,
                              size_t klen, kp_proc_committed_cb *cb,
                              void *opaque);

/**
 * @brief Commits the open transaction now (nothing when none is open), so
 *        that committed state includes everything processed so far: the
 *        control gate calls it before it reports a pause as applied.
 * @returns KP_OK; KP_ERR_ABORTED when the commit failed and the
 *          transaction was aborted and its input rewound; KP_ERR_FATAL.
 * @locality processing thread, from tick() (never inside process() or
 *           punctuate())
 */
kp_err_t kp_proc_commit(kp_proc_t *proc);

/** The state of the processor's Kafka transaction. X(NAME) */
#define KP_TXN_STATE_TABLE(X)                                                  \
        X(IDLE)       /* no transaction open */                                \
        X(OPEN)       /* records or store writes since the last commit */      \
        X(MUST_ABORT) /* an emit failed: the transaction can only abort */

typedef enum kp_txn_state_e {
#define KP__TXN_ENUM(name) KP_TXN_##name,
        KP_TXN_STATE_TABLE(KP__TXN_ENUM)
#undef KP__TXN_ENUM
            KP_TXN__CNT
} kp_txn_state_t;

/** @brief "OPEN" for KP_TXN_OPEN; "UNKNOWN" outside the table. */
const char *kp_txn_state2str(kp_txn_state_t state);

/**
 * @brief 1 if the transaction may go from @p from to @p to: IDLE -> OPEN
 *        (begin), OPEN -> IDLE (commit or abort), OPEN -> MUST_ABORT,
 *        MUST_ABORT -> IDLE (abort). @locality any thread (pure)
 */
int kp_txn_transition_valid(kp_txn_state_t from, kp_txn_state_t to);

/** What the commit decision looks at (docs/runtime.md, "Exactly once"). */
typedef struct kp_commit_policy_s {
        int64_t min_interval_ms; /**< --commit-min-interval-ms */
        int64_t max_interval_ms; /**< --commit-interval-ms (the cap) */
        int64_t max_records;     /**< --commit-max-records */
} kp_commit_policy_t;

/** The open transaction, as the commit decision sees it. */
typedef struct kp_commit_state_s {
        int64_t txn_started_ms; /**< monotonic ms the transaction began */
        int64_t last_commit_ms; /**< monotonic ms the last commit ended */
        int64_t records;        /**< input records in the transaction */
} kp_commit_state_t;

/**
 * @brief 1 if the open transaction must commit now: it holds
 *        max_records input records, or it began max_interval_ms ago, or
 *        the input has nothing more ready (@p drained) and the last commit
 *        ended at least min_interval_ms ago. So a transaction commits as
 *        soon as the input is drained (a moderate rate commits every few
 *        ms, not every max_interval_ms) and grows under load up to the cap.
 * @locality any thread (pure)
 */
int kp_commit_due(const kp_commit_policy_t *policy, const kp_commit_state_t *st,
                  int drained, int64_t now_ms);

/**
 * @brief How long the loop may wait for input before kp_commit_due() can
 *        change its answer for a drained input: 0 when it is due already,
 *        else the ms until the minimum interval has passed or the cap
 *        comes, whichever is first. @locality any thread (pure)
 */
int64_t kp_commit_wait_ms(const kp_commit_policy_t *policy,
                          const kp_commit_state_t *st, int64_t now_ms);

/* ------------------------------------------------------------------------
 * Inside process() and punctuate().
 */

/** @brief The partition being processed (the stores' partition). */
int32_t kp_ctx_partition(const kp_ctx_t *ctx);

/** @brief The partition count of the input topics. */
int32_t kp_ctx_partition_count(const kp_ctx_t *ctx);

/**
 * @brief The partition of the inputs that owns @p key: murmur2(key) mod the
 *        partition count, as the Java client's and librdkafka's
 *        murmur2_random partitioners choose (kp_partition_for_key()). A
 *        record whose state is keyed by @p key belongs there, whatever
 *        partitioner its producer used (kp_ctx_reroute()).
 * @returns the partition, or -1 for an empty key (it has no owner: a
 *          partitioner spreads such records at random).
 */
int32_t kp_ctx_key_partition(const kp_ctx_t *ctx, const void *key, size_t klen);

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
 * @brief Defines @p fname, a typed reader of store values:
 *        `kp_err_t fname(kp_ctx_t *, int store, const void *key, size_t
 *        klen, type *out)`, which is kp_ctx_get_decoded() with
 *        @p decode_fn, a `kp_err_t decode_fn(const void *, size_t, type *)`.
 *        The compiler checks @p out's type; no void * crosses the call.
 */
#define KP_CTX_TYPED_GETTER(fname, type, decode_fn)                            \
        static kp_err_t fname##__decode(const void *val, size_t vlen,          \
                                        void *out) {                           \
                return decode_fn(val, vlen, (type *)out);                      \
        }                                                                      \
        static inline kp_err_t fname(kp_ctx_t *ctx, int store,                 \
                                     const void *key, size_t klen,             \
                                     type *out) {                              \
                return kp_ctx_get_decoded(ctx, store, key, klen,               \
                                          fname##__decode, out);               \
        }

/** How kp_ctx_cached() keeps one type of value decoded. */
typedef struct kp_ctx_value_type_s {
        size_t size;              /**< of the decoded struct */
        void (*init)(void *obj);  /**< the value of an absent key */
        void (*clear)(void *obj); /**< frees what @p obj owns */
        /** Decodes @p buf into @p obj (initialized): KP_OK, or an error
         *  (@p obj then untouched). */
        kp_err_t (*decode)(const void *buf, size_t len, void *obj);
        /** Encodes @p obj: a kp_malloc()ed, non-empty value. */
        char *(*encode)(const void *obj, size_t *lenp);
} kp_ctx_value_type_t;

/**
 * @brief The decoded value of @p key in store @p store, kept by the runtime
 *        for the rest of the transaction, for a hot key that every record
 *        reads and writes (a per-partition total): the first call in a
 *        transaction reads and decodes it (init() for an absent key),
 *        later calls return the same object. Change it in place, then
 *        call kp_ctx_cached_put(); at commit each object put is encoded
 *        once and written as kp_ctx_put() would (one changelog record);
 *        an abort drops it. One decode and one encode per transaction
 *        instead of one per record. While a transaction is open, read the
 *        key only through this call (kp_ctx_get() sees the value as of the
 *        last put before the commit).
 * @returns KP_OK with *@p objp; KP_ERR_STORE when the stored value does not
 *          decode (corruption: return it from process()),
 *          KP_ERR_INVALID_ARG, or KP_ERR_FATAL as kp_ctx_put().
 */
kp_err_t kp_ctx_cached(kp_ctx_t *ctx, int store, const void *key, size_t klen,
                       const kp_ctx_value_type_t *type, void **objp);

/**
 * @brief Defines `static const kp_ctx_value_type_t tname` for values of C
 *        type @p type from its typed functions: `void init_fn(type *)`,
 *        `void clear_fn(type *)`, `kp_err_t decode_fn(const void *, size_t,
 *        type *)` and `char *encode_fn(const type *, size_t *)` (the
 *        compiler checks them; no void * crosses the calls).
 */
#define KP_CTX_VALUE_TYPE(tname, type, init_fn, clear_fn, decode_fn,           \
                          encode_fn)                                           \
        static void tname##__init(void *o) {                                   \
                init_fn((type *)o);                                            \
        }                                                                      \
        static void tname##__clear(void *o) {                                  \
                clear_fn((type *)o);                                           \
        }                                                                      \
        static kp_err_t tname##__decode(const void *b, size_t n, void *o) {    \
                return decode_fn(b, n, (type *)o);                             \
        }                                                                      \
        static char *tname##__encode(const void *o, size_t *lenp) {            \
                return encode_fn((const type *)o, lenp);                       \
        }                                                                      \
        static const kp_ctx_value_type_t tname = {                             \
            sizeof(type),    tname##__init,   tname##__clear,                  \
            tname##__decode, tname##__encode,                                  \
        }

/** @brief Marks the object of kp_ctx_cached() @p obj as written. */
void kp_ctx_cached_put(kp_ctx_t *ctx, void *obj);

/**
 * @brief Writes @p key in store @p store (the transaction's overlay); its
 *        last value in the transaction goes to the changelog at commit.
 * @returns KP_OK; KP_ERR_INVALID_ARG for a bad store or an empty value (it
 *          would be a tombstone on the compacted changelog); KP_ERR_FATAL
 *          when no transaction can begin (the instance has failed: return
 *          it from process()).
 */
kp_err_t kp_ctx_put(kp_ctx_t *ctx, int store, const void *key, size_t klen,
                    const void *val, size_t vlen);

/**
 * @brief Deletes @p key from store @p store (a changelog tombstone).
 * @returns KP_OK, KP_ERR_INVALID_ARG or KP_ERR_FATAL, as kp_ctx_put().
 */
kp_err_t kp_ctx_delete(kp_ctx_t *ctx, int store, const void *key, size_t klen);

/**
 * @brief Writes (@p val with @p vlen > 0) or deletes (@p val NULL) @p key
 *        of store @p store as local state: committed to the store with the
 *        transaction like kp_ctx_put(), but never written to the changelog.
 *        For state the processor derives again from the changelogged keys
 *        on restore (kp_proc_def_t.restored: an expiry index), and for
 *        deleting the expired keys of a store whose changelog drops them
 *        by retention (kp_proc_layout_t.store_retention_ms). A key written
 *        with kp_ctx_put()/kp_ctx_delete() in the same transaction goes to
 *        the changelog with its last value.
 * @returns KP_OK, KP_ERR_INVALID_ARG or KP_ERR_FATAL, as kp_ctx_put().
 */
kp_err_t kp_ctx_write_local(kp_ctx_t *ctx, int store, const void *key,
                            size_t klen, const void *val, size_t vlen);

/**
 * @brief During kp_proc_def_t.restored: writes (@p val with @p vlen > 0) or
 *        deletes (@p val NULL) @p key of the store being restored as local
 *        state (kp_ctx_write_local()), committed with the restored records.
 */
void kp_restore_write_local(kp_restore_ctx_t *rc, const void *key, size_t klen,
                            const void *val, size_t vlen);

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
 * @param topic the topic: a kp_topic_id_t of kp_topics.h, or
 *        KP_TOPIC__CNT + i for the def's extra_topics[i].
 * @param partition an explicit partition, or -1 for murmur2(key) like the
 *        Java client.
 * @param headers extra headers or NULL; the runtime adds kpay-hop (this
 *        service) and carries kpay-trace over from the input record unless
 *        @p headers has one. Not taken: the caller still owns them.
 * @returns KP_OK; KP_ERR_INVALID_ARG for an unknown topic id; KP_ERR_KAFKA
 *          (the transaction then aborts and the input is processed again);
 *          KP_ERR_FATAL when no transaction can begin.
 */
kp_err_t kp_ctx_emit(kp_ctx_t *ctx, kp_topic_id_t topic, int32_t partition,
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

/**
 * @brief Re-produces the current input record to partition @p partition of
 *        @p topic, in the current transaction: its value byte for byte,
 *        key @p key, and its headers with kpay-hop (this service) and
 *        kpay-rerouted-from ("<partition>:<offset>" it was read from)
 *        replaced; counts it in kpay_records_rerouted_total. For a record
 *        that arrived on a partition that does not own its state (the
 *        producer used another partitioner, docs/runtime.md
 *        "Partitioning"): since the consumed offset commits in the same
 *        transaction, the copy is produced exactly once, and the owner
 *        processes it like any other record. Return its result from
 *        process() without writing or emitting anything else for the
 *        record.
 * @param partition an existing partition of @p topic (>= 0).
 * @returns KP_OK; KP_ERR_INVALID_ARG (unknown topic, negative partition,
 *          no input record: punctuate()); KP_ERR_KAFKA (the transaction
 *          aborts and the input is processed again); KP_ERR_FATAL.
 */
kp_err_t kp_ctx_reroute(kp_ctx_t *ctx, kp_topic_id_t topic, int32_t partition,
                        const void *key, size_t klen);

#endif /* KPAY_KP_PROC_H */
