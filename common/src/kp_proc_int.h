/* kp_proc_int.h: the processor's private state, shared by the files of the
 * runtime (docs/runtime.md, "Source layout"):
 *
 *   kp_proc.c            construction, the lifecycle, the loop, kp_proc_main
 *   kp_proc_clients.c    the Kafka clients, built from property tables
 *   kp_proc_txn.c        transactions: begin, produce, commit, abort, rewind
 *   kp_proc_restore.c    replaying changelogs into the stores
 *   kp_proc_rebalance.c  assignment, revocation
 *   kp_proc_flow.c       flow control: pausing an input, rate limiting it
 *   kp_proc_ctx.c        the kp_ctx_* API used inside process()/punctuate()
 *   kp_proc_query.c      the interactive queries (/v1/stores) and the
 *                        processor's part of InstanceInfo
 *
 * Threads: one processing thread runs the loop and every callback of the
 * consumer and the producers. The tasks table (one task per owned
 * partition, each with its stores) is written only by that thread; HTTP
 * threads read it under tasks_lock, which the processing thread takes for
 * writing only to add or remove a task. Flow-control requests arrive from
 * any thread through atomics. */
#ifndef KPAY_KP_PROC_INT_H
#define KPAY_KP_PROC_INT_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "kpay/kp_bucket.h"
#include "kpay/kp_metrics.h"
#include "kpay/kp_proc.h"
#include "kpay/kp_service.h"
#include "kpay/kp_store.h"
#include "kpay/kp_time.h"

/* Records processed in one burst of the loop (the clocks read once, the
 * timers run after it). */
#define KP_PROC_BURST 64

/* Changelog records applied between two commits of a restoring store (its
 * checkpoint: an interrupted restore resumes from the last one). */
#define KP_PROC_RESTORE_BATCH 10000

/* Changelog records taken from the restorer's queue at once. */
#define KP_PROC_RESTORE_POLL 512

/* A restore slice of the loop ends after this long or this many records at
 * the latest, so that the ready partitions keep flowing (docs/runtime.md,
 * "Restore"). */
#define KP_PROC_RESTORE_SLICE_MS      10
#define KP_PROC_RESTORE_SLICE_RECORDS 100000

/* A value kept decoded for the transaction (kp_ctx_cached()). */
typedef struct cached_s {
        struct cached_s *next;
        int store;
        const kp_ctx_value_type_t *type;
        int written;
        void *obj;
        size_t klen;
        char key[]; /* klen bytes */
} cached_t;

typedef struct task_s {
        int32_t partition;
        cached_t *cached;      /* kp_ctx_cached(), this transaction's */
        int ready;             /* restored; read by HTTP threads under lock */
        int restoring;         /* stores of the task still restoring */
        kp_store_t **stores;   /* [store_cnt] */
        int64_t *cl_next;      /* [store_cnt] changelog offset after the last
                                * record delivered in this transaction, or -1 */
        int64_t *in_next;      /* [input_cnt] offset to commit, or -1 */
        int64_t *in_committed; /* [input_cnt] where to rewind to */
} task_t;

struct kp_ctx_s {
        kp_proc_t *proc;
        task_t *task;
        const kp_record_t *rec; /* NULL in punctuate() */
        int64_t now_ms;
};

/* Flow control of one input: what was asked (any thread) and what is
 * applied (processing thread). */
typedef struct flow_s {
        atomic_int want_paused;     /* kp_proc_pause_input() */
        _Atomic int64_t rate_milli; /* records/s x 1000; 0: no limit */
        int paused;                 /* the input's partitions are paused */
        kp_bucket_t bucket;         /* the rate limit's */
        kp_counter_t *m_throttled;  /* pauses for the rate limit */
        kp_gauge_t *m_paused;       /* 1 while paused */
} flow_t;

struct kp_proc_s {
        kp_app_t *app;
        const kp_app_conf_t *conf;
        kp_proc_conf_t pconf;
        kp_proc_def_t def;
        kp_service_t *svc;
        const char *service; /* def.layout->service */
        const char *const *store_names;

        int input_cnt, store_cnt, topic_cnt;
        kp_topic_id_t *input_ids; /* [input_cnt] */
        char **topic_names;       /* [topic_cnt] prefixed names, by topic id */
        char **changelogs;        /* prefixed changelog names, per store */
        char *prefix;
        char *group_id, *txn_id;
        int32_t partition_cnt;

        rd_kafka_t *consumer, *producer, *restorer;
        kp_store_env_t *env;

        pthread_rwlock_t tasks_lock;
        task_t **tasks;      /* [partition_cnt] */
        int32_t *info_parts; /* [partition_cnt], for InstanceInfo */

        kp_txn_state_t txn;
        int stopping; /* on the way out: calls get the shutdown bound */
        int64_t lag;  /* input records waiting, from the last statistics */
        int64_t txn_started_ms;
        int64_t last_commit_ms; /* when the loop's last commit ended */
        int64_t txn_records;
        int assignment_changed;
        int64_t assign_epoch; /* +1 on every assignment and revocation */
        int64_t next_punctuate_ms;
        flow_t *flow; /* [input_cnt] */

        /* The restores in the background (kp_proc_restore.c). */
        struct restore_s *restores; /* [partition_cnt * store_cnt], by
                                     * partition then store */
        int restoring_tasks;        /* tasks not ready yet */
        int restore_reassign;       /* the restorer's assignment is stale */
        rd_kafka_queue_t *restore_q;
        int64_t restore_progress_ms; /* the last record restored */
        int64_t restore_remaining;   /* records to go, as last counted */
        int64_t restore_started_ms, restore_base, restore_next_log_ms;
        int64_t restores_done; /* tasks restored since restore_started_ms */
        kp_bucket_t restore_bucket; /* --restore-max-rate */

        kp_metrics_t *metrics; /* the service's */
        kp_counter_t *m_in, *m_out, *m_dlq, *m_committed, *m_aborted;
        kp_counter_t *m_restored, *m_process_errors, *m_changelog;
        kp_counter_t *m_rerouted; /* kp_ctx_reroute() */
        kp_gauge_t *m_restore_remaining, *m_restoring, *m_partitions;
        kp_gauge_t *m_restoring_partitions;
        kp_histogram_t *m_commit_latency;
};

/* The lifecycle, through the service's state machine. */
void proc_fail(kp_proc_t *proc);
int proc_failed(const kp_proc_t *proc);

/* After a failed attempt at @p what (failing because of @p why): waits
 * for the next one (kp_backoff_wait()), logging the retry when due, or
 * that it gives up at the deadline. @returns KP_OK to retry,
 * KP_ERR_TIMED_OUT (give up: the instance fails), KP_ERR_STATE when
 * keep_going() said stop. */
kp_err_t proc_retry_wait(kp_backoff_t *b, int (*keep_going)(void),
                         const char *what, const char *why);

/* The watchdog of /healthz: the loop made progress. */
void proc_progress(kp_proc_t *proc);

/* kp_proc_clients.c */
kp_err_t proc_clients_start(kp_proc_t *proc);

/* kp_proc_ctx.c: writes the cached values put (kp_ctx_cached_put()) into
 * the overlay (before the commit), and drops every cached value (after a
 * commit or an abort). */
void cached_flush(kp_proc_t *proc, task_t *t);
void cached_drop(task_t *t);

/* kp_proc_txn.c */
void txn_set_state(kp_proc_t *proc, kp_txn_state_t to);
int txn_open(const kp_proc_t *proc);
kp_err_t txn_begin(kp_proc_t *proc);
kp_err_t txn_commit(kp_proc_t *proc);
void txn_abort(kp_proc_t *proc);
void drop_uncommitted(kp_proc_t *proc);
kp_err_t proc_produce(kp_proc_t *proc, const char *topic, int32_t partition,
                      const void *key, size_t klen, const void *val,
                      size_t vlen, rd_kafka_headers_t *hdrs, void *opaque);
void proc_dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

/* kp_proc_restore.c: one store of one task replaying its changelog. */
typedef struct restore_s {
        task_t *task; /* NULL: no restore in progress */
        int store;
        int64_t end;     /* the changelog's end offset when restore began */
        int64_t last;    /* offset after the last applied record */
        int64_t pending; /* records applied since the last store commit */
} restore_t;
/* Opens the stores of new task @p t and plans the restore of each that is
 * behind its changelog (t->restoring counts them). Replays nothing. */
kp_err_t restore_plan(kp_proc_t *proc, task_t *t);
/* Starts the restores planned since the last call (the restorer's
 * assignment follows the restores in progress). */
kp_err_t restore_assign(kp_proc_t *proc);
/* Forgets the restores of @p t (revoked or closed before it was ready). */
void restore_cancel(kp_proc_t *proc, task_t *t);
/* One slice of the restores, bounded by KP_PROC_RESTORE_SLICE_* and
 * --restore-max-rate; waits up to @p wait_ms for a first record.
 * Tasks whose stores are all restored become ready. @returns KP_OK, or an
 * error that fails the instance. */
kp_err_t restore_slice(kp_proc_t *proc, int wait_ms);
/* How long the loop's poll may wait (at most @p wait_ms) with restores in
 * progress: 0 (the slice waits), or until --restore-max-rate allows more. */
int64_t restore_wait_ms(kp_proc_t *proc, int64_t wait_ms);

/* kp_proc_rebalance.c */
task_t *task_new(kp_proc_t *proc, int32_t partition);
void task_free(kp_proc_t *proc, task_t *t);
void close_tasks(kp_proc_t *proc, const rd_kafka_topic_partition_list_t *parts);
void proc_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                       rd_kafka_topic_partition_list_t *parts, void *opaque);
int input_index(const kp_proc_t *proc, const char *topic);
int input_index_of_id(const kp_proc_t *proc, kp_topic_id_t id);

/* kp_proc_flow.c */
void flow_pause_assigned(kp_proc_t *proc,
                         const rd_kafka_topic_partition_list_t *parts);
void flow_resume_task(kp_proc_t *proc, const task_t *t);
void flow_apply(kp_proc_t *proc, int64_t now_ms);
int64_t flow_wait_ms(kp_proc_t *proc, int64_t now_ms);
void flow_admit(kp_proc_t *proc, int input, int64_t now_ms);

/* kp_proc_query.c */
void proc_query_routes(kp_proc_t *proc);
void proc_info_cb(kp_instance_info_t *info, void *opaque);
/* Tells the service which partitions are still restoring (/readyz,
 * InstanceInfo) and sets the lifecycle state and the gauges from it. */
void proc_publish_restoring(kp_proc_t *proc);
int proc_stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque);

#endif /* KPAY_KP_PROC_INT_H */
