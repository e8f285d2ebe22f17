/* kp_proc.c: the stream-processing runtime (docs/runtime.md).
 *
 * One processing thread runs the consume -> process -> produce loop inside
 * Kafka transactions. The tasks table (one task per owned partition, each
 * with its stores) is written only by that thread; HTTP threads read it
 * under tasks_lock, which the processing thread takes for writing only to
 * add or remove a task. */
#include "kpay/kp_proc.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kpay/kp_admin.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_discovery.h"
#include "kpay/kp_http.h"
#include "kpay/kp_kafka.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_metrics.h"
#include "kpay/kp_store.h"
#include "kpay/kp_time.h"
#include "kpay/kp_topics.h"

#define PCONF(f) offsetof(kp_proc_conf_t, f)
static const kp_conf_opt_t proc_opts[] = {
    {"commit-max-records", 0, KP_CONF_INT, PCONF(commit_max_records), "10000",
     1, 10000000, NULL,
     "Commit the transaction after this many input records at the latest."},
    {"heartbeat-ms", 0, KP_CONF_INT, PCONF(heartbeat_ms), "5000", 100, 3600000,
     NULL, "Interval of the InstanceInfo heartbeat on kpay.metadata."},
    {"block-cache-mb", 0, KP_CONF_INT, PCONF(block_cache_mb), "64", 1, 1048576,
     NULL, "RocksDB block cache shared by every store of the process (MiB)."},
    {"write-buffer-mb", 0, KP_CONF_INT, PCONF(write_buffer_mb), "64", 1,
     1048576, NULL,
     "Memtable memory shared by every store of the process (MiB)."},
    {"transaction-timeout-ms", 0, KP_CONF_INT, PCONF(transaction_timeout_ms),
     "10000", 1000, 900000, NULL,
     "transaction.timeout.ms: how long a dead instance's open transaction "
     "can hold up the partitions it owned."},
    {"http-threads", 0, KP_CONF_INT, PCONF(http_threads), "2", 1, 64, NULL,
     "HTTP worker threads."},
    {"static-membership", 0, KP_CONF_BOOL, PCONF(static_membership), "false", 0,
     0, NULL,
     "Use --instance-id as group.instance.id, so a restart within the "
     "session timeout moves no partition."},
    {NULL},
};

const struct kp_conf_opt_s *kp_proc_conf_table(void) {
        return proc_opts;
}

/* Records read from the changelogs are applied in batches of this size. */
#define RESTORE_BATCH 10000

typedef struct task_s {
        int32_t partition;
        int ready;             /* restored; read by HTTP threads under lock */
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

struct kp_proc_s {
        kp_app_t *app;
        const kp_app_conf_t *conf;
        kp_proc_conf_t pconf;
        kp_proc_def_t def;
        int input_cnt, store_cnt;
        char **inputs;     /* prefixed input topic names */
        char **changelogs; /* prefixed changelog names, per store */
        char *prefix;
        char dlq_topic[256];
        char metadata_topic[256];
        char *group_id, *txn_id;
        int32_t partition_cnt;

        rd_kafka_t *consumer, *producer, *restorer, *announcer;
        kp_store_env_t *env;

        pthread_rwlock_t tasks_lock;
        task_t **tasks; /* [partition_cnt] */

        int txn_open;
        int txn_must_abort; /* an emit failed: abort instead of commit */
        int64_t txn_started_ms;
        int64_t txn_records;
        int fatal;
        atomic_int restoring;
        atomic_int joined;

        kp_http_t *http;
        char *endpoint;
        int64_t next_heartbeat_ms;
        int64_t next_punctuate_ms;
        int assignment_changed;

        kp_metrics_t *metrics;
        kp_counter_t *m_in, *m_out, *m_dlq, *m_committed, *m_aborted;
        kp_counter_t *m_restored, *m_process_errors, *m_changelog;
        kp_gauge_t *m_restore_remaining, *m_restoring, *m_partitions;
        kp_histogram_t *m_commit_latency;
};


/* ------------------------------------------------------------------------
 * Tasks and their stores. */

static void task_path(const kp_proc_t *proc, int store, int32_t partition,
                      char *buf, size_t size) {
        snprintf(buf, size, "%s/%s/%s/%d", proc->conf->state_dir,
                 proc->def.service, proc->def.stores[store], (int)partition);
}

static void task_free(kp_proc_t *proc, task_t *t) {
        if (!t)
                return;
        for (int s = 0; s < proc->store_cnt; s++)
                kp_store_close(t->stores[s]);
        kp_free(t->stores);
        kp_free(t->cl_next);
        kp_free(t->in_next);
        kp_free(t->in_committed);
        kp_free(t);
}

static task_t *task_new(kp_proc_t *proc, int32_t partition) {
        task_t *t    = kp_calloc(1, sizeof(*t));
        t->partition = partition;
        t->stores = kp_calloc((size_t)proc->store_cnt + 1, sizeof(*t->stores));
        t->cl_next =
            kp_calloc((size_t)proc->store_cnt + 1, sizeof(*t->cl_next));
        t->in_next = kp_calloc((size_t)proc->input_cnt, sizeof(*t->in_next));
        t->in_committed =
            kp_calloc((size_t)proc->input_cnt, sizeof(*t->in_committed));
        for (int s = 0; s < proc->store_cnt; s++)
                t->cl_next[s] = -1;
        for (int i = 0; i < proc->input_cnt; i++) {
                t->in_next[i]      = -1;
                t->in_committed[i] = RD_KAFKA_OFFSET_BEGINNING;
        }
        return t;
}

static int input_index(const kp_proc_t *proc, const char *topic) {
        for (int i = 0; i < proc->input_cnt; i++)
                if (!strcmp(proc->inputs[i], topic))
                        return i;
        return -1;
}

/* ------------------------------------------------------------------------
 * Transactions. */

/* Handles an error from a transactional API call: returns 1 to retry the
 * call, 0 when the transaction must be aborted, and sets proc->fatal for a
 * fatal error. Consumes @p error. */
static int txn_error(kp_proc_t *proc, rd_kafka_error_t *error,
                     const char *what) {
        int retry = 0;
        if (rd_kafka_error_is_fatal(error)) {
                KP_ERROR(
                    "%s: fatal: %s; exiting so that a supervisor "
                    "restarts this instance",
                    what, rd_kafka_error_string(error));
                proc->fatal = 1;
        } else if (rd_kafka_error_txn_requires_abort(error)) {
                KP_WARN("%s: %s; aborting the transaction", what,
                        rd_kafka_error_string(error));
        } else if (rd_kafka_error_is_retriable(error)) {
                KP_WARN("%s: %s; retrying", what, rd_kafka_error_string(error));
                retry = 1;
        } else {
                KP_WARN("%s: %s; aborting the transaction", what,
                        rd_kafka_error_string(error));
        }
        rd_kafka_error_destroy(error);
        return retry;
}

static kp_err_t txn_begin(kp_proc_t *proc) {
        if (proc->txn_open)
                return KP_OK;
        rd_kafka_error_t *error = rd_kafka_begin_transaction(proc->producer);
        if (error) {
                txn_error(proc, error, "begin_transaction");
                if (!proc->fatal)
                        proc->fatal = 1; /* begin only fails on misuse. */
                return KP_ERR_FATAL;
        }
        proc->txn_open       = 1;
        proc->txn_must_abort = 0;
        proc->txn_started_ms = kp_mono_ms();
        proc->txn_records    = 0;
        return KP_OK;
}

/* Seeks every input partition of the given tasks back to its committed
 * offset (all tasks when @p only is NULL). */
static void rewind_tasks(kp_proc_t *proc, task_t *only) {
        rd_kafka_topic_partition_list_t *list =
            rd_kafka_topic_partition_list_new(proc->input_cnt * 4);
        for (int32_t p = 0; p < proc->partition_cnt; p++) {
                task_t *t = proc->tasks[p];
                if (!t || (only && t != only))
                        continue;
                for (int i = 0; i < proc->input_cnt; i++)
                        rd_kafka_topic_partition_list_add(list, proc->inputs[i],
                                                          p)
                            ->offset = t->in_committed[i];
        }
        if (list->cnt) {
                rd_kafka_error_t *error =
                    rd_kafka_seek_partitions(proc->consumer, list, 10000);
                if (error) {
                        KP_ERROR("rewinding after an abort: %s; exiting",
                                 rd_kafka_error_string(error));
                        rd_kafka_error_destroy(error);
                        proc->fatal = 1;
                } else {
                        for (int i = 0; i < list->cnt; i++)
                                if (list->elems[i].err) {
                                        KP_ERROR("rewinding %s [%d]: %s",
                                                 list->elems[i].topic,
                                                 (int)list->elems[i].partition,
                                                 rd_kafka_err2str(
                                                     list->elems[i].err));
                                        proc->fatal = 1;
                                }
                }
        }
        rd_kafka_topic_partition_list_destroy(list);
}

/* Forgets everything the open transaction did. */
static void drop_uncommitted(kp_proc_t *proc) {
        for (int32_t p = 0; p < proc->partition_cnt; p++) {
                task_t *t = proc->tasks[p];
                if (!t)
                        continue;
                for (int s = 0; s < proc->store_cnt; s++) {
                        kp_store_rollback(t->stores[s]);
                        t->cl_next[s] = -1;
                }
                for (int i = 0; i < proc->input_cnt; i++)
                        t->in_next[i] = -1;
        }
}

/* Aborts the open transaction, drops the uncommitted state and rewinds the
 * inputs to the committed offsets. */
static void txn_abort(kp_proc_t *proc) {
        if (!proc->txn_open)
                return;
        for (;;) {
                rd_kafka_error_t *error =
                    rd_kafka_abort_transaction(proc->producer, -1);
                if (!error)
                        break;
                if (!txn_error(proc, error, "abort_transaction"))
                        break;
        }
        proc->txn_open = 0;
        kp_counter_add(proc->m_aborted, 1);
        /* Serve the delivery reports of the purged messages now, while the
         * tasks they refer to still exist. */
        rd_kafka_poll(proc->producer, 0);
        drop_uncommitted(proc);
        if (!proc->fatal)
                rewind_tasks(proc, NULL);
}

static kp_err_t produce(kp_proc_t *proc, const char *topic, int32_t partition,
                        const void *key, size_t klen, const void *val,
                        size_t vlen, rd_kafka_headers_t *hdrs, void *opaque);

typedef struct changelog_ctx_s {
        kp_proc_t *proc;
        int store;
        int32_t partition;
} changelog_ctx_t;

static int changelog_one(const void *key, size_t klen, const void *val,
                         size_t vlen, void *opaque) {
        changelog_ctx_t *c = opaque;
        intptr_t tag       = ((intptr_t)c->store << 16) | c->partition;
        kp_counter_add(c->proc->m_changelog, 1);
        return produce(c->proc, c->proc->changelogs[c->store], c->partition,
                       key, klen, val, vlen, NULL, (void *)(tag + 1)) != KP_OK;
}

/* Writes every store's overlay to its changelog: one record per key written
 * in the transaction (its last value), however often it was written. Hot
 * keys (per-partition totals, a busy account) cost one record per commit
 * instead of one per input record. */
static void produce_changelogs(kp_proc_t *proc) {
        for (int32_t p = 0; p < proc->partition_cnt; p++) {
                task_t *t = proc->tasks[p];
                if (!t)
                        continue;
                for (int s = 0; s < proc->store_cnt; s++) {
                        changelog_ctx_t c = {proc, s, p};
                        if (kp_store_overlay_foreach(t->stores[s],
                                                     changelog_one, &c))
                                return; /* txn_must_abort is set. */
                }
        }
}

/* Commits the open transaction: changelog records (outputs are in
 * already), offsets, then the stores. On an abortable error, aborts and
 * rewinds instead. @returns KP_OK, KP_ERR_ABORTED or KP_ERR_FATAL. */
static kp_err_t txn_commit(kp_proc_t *proc) {
        if (!proc->txn_open)
                return KP_OK;
        if (!proc->txn_must_abort)
                produce_changelogs(proc);
        if (proc->txn_must_abort) {
                txn_abort(proc);
                return proc->fatal ? KP_ERR_FATAL : KP_ERR_ABORTED;
        }
        int64_t t0 = kp_mono_ms();
        rd_kafka_topic_partition_list_t *offsets =
            rd_kafka_topic_partition_list_new(proc->input_cnt * 4);
        for (int32_t p = 0; p < proc->partition_cnt; p++) {
                task_t *t = proc->tasks[p];
                if (!t)
                        continue;
                /* Every owned partition, even unchanged ones: the group
                 * generation check on these offsets is what fences a zombie
                 * (KIP-447), also in punctuation-only transactions. */
                for (int i = 0; i < proc->input_cnt; i++) {
                        int64_t off = t->in_next[i] >= 0 ? t->in_next[i]
                                                         : t->in_committed[i];
                        if (off >= 0)
                                rd_kafka_topic_partition_list_add(
                                    offsets, proc->inputs[i], p)
                                    ->offset = off;
                }
        }
        int ok = 1;
        while (offsets->cnt && ok) {
                rd_kafka_consumer_group_metadata_t *cgmd =
                    rd_kafka_consumer_group_metadata(proc->consumer);
                rd_kafka_error_t *error = rd_kafka_send_offsets_to_transaction(
                    proc->producer, offsets, cgmd, -1);
                rd_kafka_consumer_group_metadata_destroy(cgmd);
                if (!error)
                        break;
                if (!txn_error(proc, error, "send_offsets_to_transaction"))
                        ok = 0;
        }
        rd_kafka_topic_partition_list_destroy(offsets);
        while (ok) {
                rd_kafka_error_t *error =
                    rd_kafka_commit_transaction(proc->producer, -1);
                if (!error)
                        break;
                if (!txn_error(proc, error, "commit_transaction"))
                        ok = 0;
        }
        if (!ok) {
                if (proc->fatal)
                        return KP_ERR_FATAL;
                txn_abort(proc);
                return proc->fatal ? KP_ERR_FATAL : KP_ERR_ABORTED;
        }
        proc->txn_open = 0;
        /* The changelog offsets arrive in delivery reports. */
        rd_kafka_poll(proc->producer, 0);

        for (int32_t p = 0; p < proc->partition_cnt; p++) {
                task_t *t = proc->tasks[p];
                if (!t)
                        continue;
                for (int s = 0; s < proc->store_cnt; s++) {
                        char errstr[512];
                        if (t->cl_next[s] < 0 &&
                            !kp_store_overlay_count(t->stores[s]))
                                continue;
                        int64_t cp = t->cl_next[s] >= 0
                                         ? t->cl_next[s]
                                         : kp_store_checkpoint(t->stores[s]);
                        if (kp_store_commit(t->stores[s], cp, errstr,
                                            sizeof(errstr))) {
                                /* Kafka has the data; the restart replays
                                 * the changelog from the old checkpoint. */
                                KP_ERROR("store %s [%d]: %s; exiting",
                                         proc->def.stores[s], (int)p, errstr);
                                proc->fatal = 1;
                                return KP_ERR_FATAL;
                        }
                        t->cl_next[s] = -1;
                }
                for (int i = 0; i < proc->input_cnt; i++) {
                        if (t->in_next[i] >= 0)
                                t->in_committed[i] = t->in_next[i];
                        t->in_next[i] = -1;
                }
        }
        kp_counter_add(proc->m_committed, 1);
        kp_histogram_observe(proc->m_commit_latency,
                             (double)(kp_mono_ms() - t0) / 1000.0);
        return KP_OK;
}

/* ------------------------------------------------------------------------
 * Emitting. */

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                      void *opaque) {
        kp_proc_t *proc = opaque;
        (void)rk;
        if (m->err) {
                /* The transaction cannot commit; commit_transaction reports
                 * it and the transaction is aborted. */
                KP_WARN("delivery to %s failed: %s",
                        rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
                return;
        }
        if (!m->_private)
                return;
        intptr_t tag = (intptr_t)m->_private - 1;
        int store    = (int)(tag >> 16);
        int32_t part = (int32_t)(tag & 0xffff);
        if (part >= proc->partition_cnt || store >= proc->store_cnt)
                return;
        task_t *t = proc->tasks[part];
        if (t && m->offset + 1 > t->cl_next[store])
                t->cl_next[store] = m->offset + 1;
}

static const char *header_value(const rd_kafka_headers_t *hdrs,
                                const char *name, size_t *lenp) {
        const void *v;
        size_t len;
        if (!hdrs || rd_kafka_header_get_last(hdrs, name, &v, &len) != 0 || !v)
                return NULL;
        *lenp = len;
        return v;
}

static kp_err_t produce(kp_proc_t *proc, const char *topic, int32_t partition,
                        const void *key, size_t klen, const void *val,
                        size_t vlen, rd_kafka_headers_t *hdrs, void *opaque) {
        for (;;) {
                rd_kafka_resp_err_t err = rd_kafka_producev(
                    proc->producer, RD_KAFKA_V_TOPIC(topic),
                    RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA
                                                       : partition),
                    RD_KAFKA_V_KEY((void *)key, klen),
                    RD_KAFKA_V_VALUE((void *)val, vlen),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque),
                    RD_KAFKA_V_END);
                if (!err) {
                        kp_counter_add(proc->m_out, 1);
                        return KP_OK;
                }
                if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        rd_kafka_poll(proc->producer, 50);
                        continue;
                }
                if (hdrs)
                        rd_kafka_headers_destroy(hdrs);
                KP_WARN("producing to %s: %s; the transaction will abort",
                        topic, rd_kafka_err2str(err));
                proc->txn_must_abort = 1;
                if (rd_kafka_fatal_error(proc->producer, NULL, 0))
                        proc->fatal = 1;
                return KP_ERR_KAFKA;
        }
}

kp_err_t kp_ctx_emit(kp_ctx_t *ctx, const char *topic, int32_t partition,
                     const void *key, size_t klen, const void *val, size_t vlen,
                     const rd_kafka_headers_t *headers) {
        kp_proc_t *proc = ctx->proc;
        char name[256];
        if (txn_begin(proc))
                return KP_ERR_FATAL;
        snprintf(name, sizeof(name), "%s%s", proc->prefix, topic);
        rd_kafka_headers_t *hdrs =
            headers ? rd_kafka_headers_copy(headers) : rd_kafka_headers_new(2);
        size_t len;
        const char *trace;
        if (!header_value(hdrs, "kpay-trace", &len) && ctx->rec &&
            (trace = header_value(ctx->rec->headers, "kpay-trace", &len)))
                rd_kafka_header_add(hdrs, "kpay-trace", -1, trace,
                                    (ssize_t)len);
        rd_kafka_header_remove(hdrs, "kpay-hop");
        rd_kafka_header_add(hdrs, "kpay-hop", -1, proc->def.service, -1);
        return produce(proc, name, partition, key, klen, val, vlen, hdrs, NULL);
}

kp_err_t kp_ctx_dead_letter(kp_ctx_t *ctx, const char *error,
                            const char *detail) {
        kp_proc_t *proc        = ctx->proc;
        const kp_record_t *rec = ctx->rec;
        char num[32];
        if (!rec)
                return KP_ERR_INVALID_ARG;
        if (txn_begin(proc))
                return KP_ERR_FATAL;
        rd_kafka_headers_t *hdrs = rec->headers
                                       ? rd_kafka_headers_copy(rec->headers)
                                       : rd_kafka_headers_new(8);
        rd_kafka_header_add(hdrs, "kpay-error", -1, error, -1);
        rd_kafka_header_add(hdrs, "kpay-error-detail", -1, detail ? detail : "",
                            -1);
        rd_kafka_header_add(hdrs, "kpay-source-topic", -1, rec->topic, -1);
        snprintf(num, sizeof(num), "%d", (int)rec->partition);
        rd_kafka_header_add(hdrs, "kpay-source-partition", -1, num, -1);
        snprintf(num, sizeof(num), "%" PRId64, rec->offset);
        rd_kafka_header_add(hdrs, "kpay-source-offset", -1, num, -1);
        rd_kafka_header_add(hdrs, "kpay-service", -1, proc->def.service, -1);
        rd_kafka_header_remove(hdrs, "kpay-hop");
        rd_kafka_header_add(hdrs, "kpay-hop", -1, proc->def.service, -1);
        kp_err_t err =
            produce(proc, proc->dlq_topic, -1, rec->key, rec->key_len,
                    rec->value, rec->value_len, hdrs, NULL);
        if (!err)
                kp_counter_add(proc->m_dlq, 1);
        return err;
}

/* ------------------------------------------------------------------------
 * Stores from inside process(). */

int32_t kp_ctx_partition(const kp_ctx_t *ctx) {
        return ctx->task->partition;
}

int32_t kp_ctx_partition_count(const kp_ctx_t *ctx) {
        return ctx->proc->partition_cnt;
}

int64_t kp_ctx_now_ms(const kp_ctx_t *ctx) {
        return ctx->now_ms;
}

int kp_ctx_store_index(const kp_ctx_t *ctx, const char *name) {
        for (int s = 0; s < ctx->proc->store_cnt; s++)
                if (!strcmp(ctx->proc->def.stores[s], name))
                        return s;
        return -1;
}

kp_err_t kp_ctx_get(kp_ctx_t *ctx, int store, const void *key, size_t klen,
                    void **valp, size_t *vlenp) {
        if (store < 0 || store >= ctx->proc->store_cnt)
                return KP_ERR_INVALID_ARG;
        return kp_store_get(ctx->task->stores[store], key, klen, valp, vlenp);
}

kp_err_t kp_ctx_get_decoded(kp_ctx_t *ctx, int store, const void *key,
                            size_t klen, kp_ctx_decode_cb *decode, void *out) {
        void *val;
        size_t vlen;
        kp_err_t err = kp_ctx_get(ctx, store, key, klen, &val, &vlen);
        if (err)
                return err;
        err = decode(val, vlen, out);
        kp_free(val);
        if (err) {
                KP_ERROR(
                    "store %s [%d]: a value of %zu bytes under a key of "
                    "%zu bytes does not decode: %s",
                    ctx->proc->def.stores[store], (int)ctx->task->partition,
                    vlen, klen, kp_err2str(err));
                return KP_ERR_STORE;
        }
        return KP_OK;
}

kp_err_t kp_ctx_scan(kp_ctx_t *ctx, int store, const void *after,
                     size_t after_len, kp_ctx_scan_cb *cb, void *opaque) {
        if (store < 0 || store >= ctx->proc->store_cnt || !cb)
                return KP_ERR_INVALID_ARG;
        return kp_store_scan_committed(ctx->task->stores[store], after,
                                       after_len, cb, opaque);
}

kp_err_t kp_ctx_put(kp_ctx_t *ctx, int store, const void *key, size_t klen,
                    const void *val, size_t vlen) {
        /* An empty value would be a tombstone on the compacted changelog
         * (and vanish on restore): refuse it. */
        if (store < 0 || store >= ctx->proc->store_cnt || !val || !vlen)
                return KP_ERR_INVALID_ARG;
        if (txn_begin(ctx->proc))
                return KP_ERR_FATAL;
        /* The changelog record is produced at commit, once per key. */
        kp_store_put(ctx->task->stores[store], key, klen, val, vlen);
        return KP_OK;
}

kp_err_t kp_ctx_delete(kp_ctx_t *ctx, int store, const void *key, size_t klen) {
        if (store < 0 || store >= ctx->proc->store_cnt)
                return KP_ERR_INVALID_ARG;
        if (txn_begin(ctx->proc))
                return KP_ERR_FATAL;
        kp_store_delete(ctx->task->stores[store], key, klen);
        return KP_OK;
}

/* ------------------------------------------------------------------------
 * Restore. */

typedef struct restore_s {
        task_t *task;
        int store;
        int64_t end;     /* the changelog's end offset when restore began */
        int64_t last;    /* offset after the last applied record */
        int64_t pending; /* records applied since the last store commit */
        int done;
} restore_t;

/* Opens the stores of a new task and works out what each must replay.
 * Appends to @p rs. @returns KP_OK or an error (reason logged). */
static kp_err_t restore_plan(kp_proc_t *proc, task_t *t, restore_t *rs,
                             int *rcntp) {
        char path[1024], errstr[512];
        for (int s = 0; s < proc->store_cnt; s++) {
                task_path(proc, s, t->partition, path, sizeof(path));
                t->stores[s] =
                    kp_store_open(proc->env, path, errstr, sizeof(errstr));
                if (!t->stores[s]) {
                        KP_ERROR("opening store %s: %s", path, errstr);
                        return KP_ERR_STORE;
                }
                int64_t lo, hi;
                rd_kafka_resp_err_t err;
                while ((err = rd_kafka_query_watermark_offsets(
                            proc->restorer, proc->changelogs[s], t->partition,
                            &lo, &hi, 10000))) {
                        KP_WARN("end offsets of %s [%d]: %s; retrying",
                                proc->changelogs[s], (int)t->partition,
                                rd_kafka_err2str(err));
                        if (!kp_app_running())
                                return KP_ERR_STATE;
                }
                int64_t cp = kp_store_checkpoint(t->stores[s]);
                if (cp >= 0 && (cp > hi || cp < lo)) {
                        /* The log no longer has what the checkpoint says
                         * (recreated, or truncated past it): rebuild. */
                        KP_WARN("store %s: checkpoint %" PRId64
                                " is outside the changelog [%" PRId64
                                ", %" PRId64 "]; rebuilding from the start",
                                path, cp, lo, hi);
                        kp_store_close(t->stores[s]);
                        t->stores[s] = NULL;
                        if (kp_store_wipe(path, errstr, sizeof(errstr)) ||
                            !(t->stores[s] = kp_store_open(
                                  proc->env, path, errstr, sizeof(errstr)))) {
                                KP_ERROR("rebuilding store %s: %s", path,
                                         errstr);
                                return KP_ERR_STORE;
                        }
                        cp = -1;
                }
                int64_t start = cp >= 0 ? cp : lo;
                if (start >= hi)
                        continue;
                restore_t *r = &rs[(*rcntp)++];
                r->task      = t;
                r->store     = s;
                r->end       = hi;
                r->last      = start;
                r->pending   = 0;
                r->done      = 0;
                KP_INFO("restoring store %s [%d] from offset %" PRId64
                        " to %" PRId64 "%s",
                        proc->def.stores[s], (int)t->partition, start, hi,
                        cp < 0 ? " (no local state)" : "");
        }
        return KP_OK;
}

static kp_err_t restore_flush(kp_proc_t *proc, restore_t *r, int64_t cp) {
        char errstr[512];
        if (kp_store_commit(r->task->stores[r->store], cp, errstr,
                            sizeof(errstr))) {
                KP_ERROR("restoring store %s [%d]: %s",
                         proc->def.stores[r->store], (int)r->task->partition,
                         errstr);
                return KP_ERR_STORE;
        }
        r->pending = 0;
        return KP_OK;
}

/* Replays the changelogs of @p rs until each reaches its end offset. The
 * end is detected by the consumer position, not by the last record seen:
 * under read_committed the last offsets are transaction markers that are
 * never delivered. */
static kp_err_t restore_run(kp_proc_t *proc, restore_t *rs, int rcnt) {
        if (!rcnt)
                return KP_OK;
        rd_kafka_topic_partition_list_t *list =
            rd_kafka_topic_partition_list_new(rcnt);
        int64_t remaining = 0;
        for (int i = 0; i < rcnt; i++) {
                rd_kafka_topic_partition_list_add(
                    list, proc->changelogs[rs[i].store], rs[i].task->partition)
                    ->offset = rs[i].last;
                remaining += rs[i].end - rs[i].last;
        }
        kp_gauge_set(proc->m_restore_remaining, (double)remaining);
        rd_kafka_resp_err_t err = rd_kafka_assign(proc->restorer, list);
        if (err) {
                KP_ERROR("assigning changelogs: %s", rd_kafka_err2str(err));
                rd_kafka_topic_partition_list_destroy(list);
                return KP_ERR_KAFKA;
        }
        kp_err_t result  = KP_OK;
        int left         = rcnt;
        int64_t restored = 0, t0 = kp_mono_ms(), next_log = t0 + 5000;
        while (left > 0 && result == KP_OK) {
                if (!kp_app_running()) {
                        result = KP_ERR_STATE;
                        break;
                }
                rd_kafka_message_t *m =
                    rd_kafka_consumer_poll(proc->restorer, 100);
                if (m && m->err) {
                        if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
                            m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
                                /* The changelog lost the records after the
                                 * checkpoint: exit, and the restart, seeing
                                 * the checkpoint outside the log, rebuilds. */
                                KP_ERROR("restore: %s",
                                         rd_kafka_message_errstr(m));
                                result = KP_ERR_STORE;
                        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                                KP_WARN("restore: %s",
                                        rd_kafka_message_errstr(m));
                        }
                } else if (m) {
                        for (int i = 0; i < rcnt; i++) {
                                restore_t *r = &rs[i];
                                if (r->done ||
                                    r->task->partition != m->partition ||
                                    strcmp(proc->changelogs[r->store],
                                           rd_kafka_topic_name(m->rkt)))
                                        continue;
                                kp_store_t *st = r->task->stores[r->store];
                                if (m->payload)
                                        kp_store_put(st, m->key, m->key_len,
                                                     m->payload, m->len);
                                else
                                        kp_store_delete(st, m->key, m->key_len);
                                r->last = m->offset + 1;
                                r->pending++;
                                restored++;
                                kp_counter_add(proc->m_restored, 1);
                                if (r->pending >= RESTORE_BATCH &&
                                    restore_flush(proc, r, r->last))
                                        result = KP_ERR_STORE;
                                break;
                        }
                }
                if (m)
                        rd_kafka_message_destroy(m);

                /* Which partitions have reached their end? */
                if (rd_kafka_position(proc->restorer, list)) {
                        result = KP_ERR_KAFKA;
                        break;
                }
                remaining = 0;
                for (int i = 0; i < rcnt && result == KP_OK; i++) {
                        restore_t *r = &rs[i];
                        if (r->done)
                                continue;
                        int64_t pos = list->elems[i].offset;
                        if (pos >= r->end) {
                                if (restore_flush(proc, r, r->end)) {
                                        result = KP_ERR_STORE;
                                        break;
                                }
                                r->done = 1;
                                left--;
                        } else {
                                remaining +=
                                    r->end - (pos > r->last ? pos : r->last);
                        }
                }
                kp_gauge_set(proc->m_restore_remaining, (double)remaining);
                if (kp_mono_ms() > next_log) {
                        KP_INFO("restoring: %" PRId64
                                " records so far, %" PRId64 " to go",
                                restored, remaining);
                        next_log = kp_mono_ms() + 5000;
                }
        }
        rd_kafka_resp_err_t uerr = rd_kafka_assign(proc->restorer, NULL);
        if (uerr && result == KP_OK) {
                KP_ERROR("releasing the changelogs: %s",
                         rd_kafka_err2str(uerr));
                result = KP_ERR_KAFKA;
        }
        rd_kafka_topic_partition_list_destroy(list);
        kp_gauge_set(proc->m_restore_remaining, 0);
        if (result == KP_OK)
                KP_INFO("restored %" PRId64 " changelog records in %" PRId64
                        " ms",
                        restored, kp_mono_ms() - t0);
        return result;
}

/* ------------------------------------------------------------------------
 * Rebalancing. */

static void update_partition_gauge(kp_proc_t *proc) {
        int n = 0;
        for (int32_t p = 0; p < proc->partition_cnt; p++)
                n += proc->tasks[p] != NULL;
        kp_gauge_set(proc->m_partitions, n);
}

/* Creates, restores and publishes the tasks of newly assigned partitions,
 * and sets each partition's start offset to its committed offset. */
static kp_err_t on_assign(kp_proc_t *proc,
                          rd_kafka_topic_partition_list_t *parts) {
        /* The committed offsets are where an abort rewinds to. */
        /* Under read_committed the broker answers UNSTABLE_OFFSET_COMMIT
         * for a partition while an earlier owner's transaction with offsets
         * for it is pending: wait for it, never fall back to the start. */
        for (int attempt = 0;; attempt++) {
                rd_kafka_resp_err_t err =
                    rd_kafka_committed(proc->consumer, parts, 10000);
                const char *why = err ? rd_kafka_err2str(err) : NULL;
                for (int i = 0; !why && i < parts->cnt; i++)
                        if (parts->elems[i].err)
                                why = rd_kafka_err2str(parts->elems[i].err);
                if (!why)
                        break;
                if (attempt % 10 == 0)
                        KP_WARN("fetching committed offsets: %s; retrying",
                                why);
                if (!kp_app_running())
                        return KP_ERR_STATE;
                struct timespec ts = {0, 200 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        task_t **fresh = kp_calloc((size_t)proc->partition_cnt, sizeof(*fresh));
        restore_t *rs  = kp_calloc(
             (size_t)proc->partition_cnt * (size_t)(proc->store_cnt + 1),
             sizeof(*rs));
        int rcnt        = 0;
        kp_err_t result = KP_OK;

        for (int i = 0; i < parts->cnt; i++) {
                rd_kafka_topic_partition_t *tp = &parts->elems[i];
                int in                         = input_index(proc, tp->topic);
                if (in < 0 || tp->partition < 0 ||
                    tp->partition >= proc->partition_cnt) {
                        KP_ERROR(
                            "assigned %s [%d], which this processor "
                            "does not read",
                            tp->topic, (int)tp->partition);
                        result = KP_ERR_STATE;
                        break;
                }
                if (tp->offset < 0)
                        tp->offset = RD_KAFKA_OFFSET_BEGINNING;
                task_t *t = proc->tasks[tp->partition];
                if (!t)
                        t = fresh[tp->partition];
                if (!t) {
                        t = fresh[tp->partition] =
                            task_new(proc, tp->partition);
                        if ((result = restore_plan(proc, t, rs, &rcnt)))
                                break;
                }
                t->in_committed[in] = tp->offset;
        }

        if (result == KP_OK) {
                kp_gauge_set(proc->m_restoring, 1);
                result = restore_run(proc, rs, rcnt);
                kp_gauge_set(proc->m_restoring, 0);
        }
        pthread_rwlock_wrlock(&proc->tasks_lock);
        for (int32_t p = 0; p < proc->partition_cnt; p++) {
                if (!fresh[p])
                        continue;
                if (result == KP_OK) {
                        fresh[p]->ready = 1;
                        proc->tasks[p]  = fresh[p];
                        fresh[p]        = NULL;
                }
        }
        pthread_rwlock_unlock(&proc->tasks_lock);
        for (int32_t p = 0; p < proc->partition_cnt; p++)
                task_free(proc, fresh[p]);
        kp_free(fresh);
        kp_free(rs);
        update_partition_gauge(proc);
        return result;
}

/* Closes the tasks of revoked partitions (all of them when @p parts is
 * NULL). The open transaction must be finished before. */
static void close_tasks(kp_proc_t *proc,
                        const rd_kafka_topic_partition_list_t *parts) {
        task_t **gone = kp_calloc((size_t)proc->partition_cnt, sizeof(*gone));
        pthread_rwlock_wrlock(&proc->tasks_lock);
        for (int32_t p = 0; p < proc->partition_cnt; p++) {
                int revoked = !parts;
                for (int i = 0; parts && i < parts->cnt; i++)
                        if (parts->elems[i].partition == p)
                                revoked = 1;
                if (revoked && proc->tasks[p]) {
                        gone[p]        = proc->tasks[p];
                        proc->tasks[p] = NULL;
                }
        }
        pthread_rwlock_unlock(&proc->tasks_lock);
        /* No HTTP thread can see them any more: close outside the lock. */
        for (int32_t p = 0; p < proc->partition_cnt; p++)
                task_free(proc, gone[p]);
        kp_free(gone);
        update_partition_gauge(proc);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
        kp_proc_t *proc = opaque;
        int cooperative =
            !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
        rd_kafka_error_t *error = NULL;
        /* Not ready from here until the new partitions are restored. */
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
                atomic_store(&proc->restoring, 1);
        atomic_store(&proc->joined, 1);

        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                KP_INFO("assigned %d partition(s)", parts->cnt);
                /* Finish the open transaction first: the restore below may
                 * outlast transaction.timeout.ms. */
                if (proc->fatal)
                        txn_abort(proc);
                else
                        txn_commit(proc);
                if (on_assign(proc, parts) != KP_OK) {
                        if (kp_app_running())
                                proc->fatal = 1;
                        /* Assign anyway so that the consumer can leave the
                         * group cleanly; nothing is processed. */
                }
                atomic_store(&proc->restoring, 0);
                if (cooperative)
                        error = rd_kafka_incremental_assign(rk, parts);
                else
                        err = rd_kafka_assign(rk, parts);
        } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
                int lost = rd_kafka_assignment_lost(rk);
                KP_INFO("%s %d partition(s)", lost ? "lost" : "revoked",
                        parts->cnt);
                /* On revoke commit what was done; on a lost assignment
                 * another instance may already own the partitions, so
                 * abort. */
                if (lost || proc->fatal)
                        txn_abort(proc);
                else
                        txn_commit(proc);
                close_tasks(proc, cooperative ? parts : NULL);
                if (cooperative)
                        error = rd_kafka_incremental_unassign(rk, parts);
                else
                        err = rd_kafka_assign(rk, NULL);
        } else {
                KP_ERROR("rebalance: %s", rd_kafka_err2str(err));
                err = rd_kafka_assign(rk, NULL);
        }
        if (error) {
                KP_ERROR("rebalance: %s", rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
                proc->fatal = 1;
        } else if (err && err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS &&
                   err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
                KP_ERROR("rebalance: %s", rd_kafka_err2str(err));
                proc->fatal = 1;
        }
        proc->assignment_changed = 1;
}

/* ------------------------------------------------------------------------
 * Discovery: InstanceInfo on kpay.metadata. */

static void announce(kp_proc_t *proc, const char *state, int tombstone) {
        char key[512];
        snprintf(key, sizeof(key), "%s/%s", proc->def.service,
                 proc->conf->instance_id);
        char *json = NULL;
        if (!tombstone) {
                kp_instance_info_t info = {0};
                int32_t parts[10000];
                size_t pcnt = 0;
                for (int32_t p = 0; p < proc->partition_cnt && pcnt < 10000;
                     p++)
                        if (proc->tasks[p])
                                parts[pcnt++] = p;
                info.service         = (char *)proc->def.service;
                info.instance        = proc->conf->instance_id;
                info.endpoint        = proc->endpoint;
                info.state           = (char *)state;
                info.stores          = (char **)proc->def.stores;
                info.store_cnt       = (size_t)proc->store_cnt;
                info.partitions      = parts;
                info.partition_cnt   = pcnt;
                info.partition_count = proc->partition_cnt;
                info.ts              = kp_wall_ms();
                json                 = kp_instance_info_to_json(&info);
        }
        rd_kafka_resp_err_t err = rd_kafka_producev(
            proc->announcer, RD_KAFKA_V_TOPIC(proc->metadata_topic),
            RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE(json, json ? strlen(json) : 0),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err)
                KP_WARN("publishing InstanceInfo: %s", rd_kafka_err2str(err));
        kp_free(json);
}

/* ------------------------------------------------------------------------
 * HTTP: health, metrics and interactive queries. */

static void h_healthz(const kp_http_req_t *req, const char *rest,
                      kp_http_resp_t *resp, void *opaque) {
        kp_proc_t *proc = opaque;
        (void)req;
        (void)rest;
        kp_http_resp_json(
            resp, 200,
            json_pack("{s:s, s:s, s:s}", "status", "ok", "service",
                      proc->def.service, "instance", proc->conf->instance_id));
}

static void h_readyz(const kp_http_req_t *req, const char *rest,
                     kp_http_resp_t *resp, void *opaque) {
        kp_proc_t *proc = opaque;
        (void)req;
        (void)rest;
        const char *status = !atomic_load(&proc->joined)     ? "starting"
                             : atomic_load(&proc->restoring) ? "restoring"
                                                             : "ready";
        kp_http_resp_json(resp, strcmp(status, "ready") ? 503 : 200,
                          json_pack("{s:s}", "status", status));
}

static void h_metrics(const kp_http_req_t *req, const char *rest,
                      kp_http_resp_t *resp, void *opaque) {
        kp_proc_t *proc = opaque;
        (void)req;
        (void)rest;
        size_t len;
        char *text         = kp_metrics_render(proc->metrics, &len);
        resp->status       = 200;
        resp->body         = text;
        resp->body_len     = len;
        resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static int store_index(const kp_proc_t *proc, const char *name, size_t len) {
        for (int s = 0; s < proc->store_cnt; s++)
                if (strlen(proc->def.stores[s]) == len &&
                    !strncmp(proc->def.stores[s], name, len))
                        return s;
        return -1;
}

/* A store value as JSON: itself when it is JSON, else a string when it is
 * UTF-8, else hex under "value_hex". */
static void set_value(json_t *obj, const void *val, size_t vlen) {
        json_error_t jerr;
        json_t *v =
            json_loadb(val, vlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!v)
                v = json_stringn(val, vlen);
        if (v) {
                json_object_set_new(obj, "value", v);
                return;
        }
        char *hex = kp_malloc(vlen * 2 + 1);
        for (size_t i = 0; i < vlen; i++)
                snprintf(hex + i * 2, 3, "%02x",
                         ((const unsigned char *)val)[i]);
        json_object_set_new(obj, "value_hex", json_string(hex));
        kp_free(hex);
}

static json_t *key_json(const void *key, size_t klen) {
        json_t *k = json_stringn(key, klen);
        return k ? k : json_string("(binary key)");
}

static void h_store_list(kp_proc_t *proc, kp_http_resp_t *resp) {
        json_t *stores = json_array();
        pthread_rwlock_rdlock(&proc->tasks_lock);
        for (int s = 0; s < proc->store_cnt; s++) {
                json_t *parts   = json_array();
                json_int_t keys = 0;
                for (int32_t p = 0; p < proc->partition_cnt; p++) {
                        task_t *t = proc->tasks[p];
                        if (!t || !t->ready)
                                continue;
                        json_array_append_new(parts, json_integer(p));
                        keys +=
                            (json_int_t)kp_store_estimate_keys(t->stores[s]);
                }
                json_array_append_new(
                    stores,
                    json_pack("{s:s, s:o, s:I}", "name", proc->def.stores[s],
                              "partitions", parts, "keys_estimate", keys));
        }
        pthread_rwlock_unlock(&proc->tasks_lock);
        kp_http_resp_json(
            resp, 200,
            json_pack("{s:s, s:s, s:i, s:o}", "service", proc->def.service,
                      "instance", proc->conf->instance_id, "partition_count",
                      (int)proc->partition_cnt, "stores", stores));
}

static void h_store_key(kp_proc_t *proc, int s, const char *key,
                        kp_http_resp_t *resp) {
        size_t klen = strlen(key);
        if (!klen) {
                kp_http_resp_error(resp, 400, "bad_request", "empty key");
                return;
        }
        pthread_rwlock_rdlock(&proc->tasks_lock);
        if (!proc->tasks || proc->partition_cnt <= 0) {
                pthread_rwlock_unlock(&proc->tasks_lock);
                kp_http_resp_error(resp, 503, "starting",
                                   "this instance has not joined yet");
                return;
        }
        int32_t p = kp_partition_for_key(key, klen, proc->partition_cnt);
        task_t *t = proc->tasks[p];
        if (!t || !t->ready) {
                pthread_rwlock_unlock(&proc->tasks_lock);
                json_t *e = json_pack(
                    "{s:s, s:s, s:i}", "error", "not_owned", "message",
                    "this instance does not serve the key's partition now; "
                    "look the owner up in kpay.metadata",
                    "partition", (int)p);
                kp_http_resp_json(resp, t ? 503 : 404, e);
                return;
        }
        void *val = NULL;
        size_t vlen;
        kp_err_t err =
            kp_store_get_committed(t->stores[s], key, klen, &val, &vlen);
        pthread_rwlock_unlock(&proc->tasks_lock);
        if (err == KP_ERR_NOT_FOUND) {
                json_t *e =
                    json_pack("{s:s, s:s, s:i}", "error", "not_found",
                              "message", "no such key", "partition", (int)p);
                kp_http_resp_json(resp, 404, e);
                return;
        }
        if (err) {
                kp_http_resp_error(resp, 500, "store_error", "%s",
                                   kp_err2str(err));
                return;
        }
        json_t *obj = json_pack("{s:s, s:s, s:i}", "store", proc->def.stores[s],
                                "key", key, "partition", (int)p);
        set_value(obj, val, vlen);
        kp_free(val);
        kp_http_resp_json(resp, 200, obj);
}

typedef struct scan_item_s {
        char *key;
        size_t klen;
        char *val;
        size_t vlen;
        int32_t partition;
} scan_item_t;

typedef struct scan_acc_s {
        scan_item_t *items;
        size_t cnt, cap, limit, from; /* items of this partition start at
                                         from */
        int32_t partition;
} scan_acc_t;

static int scan_collect(const void *key, size_t klen, const void *val,
                        size_t vlen, void *opaque) {
        scan_acc_t *acc = opaque;
        if (acc->cnt == acc->cap) {
                acc->cap = acc->cap ? acc->cap * 2 : 64;
                acc->items =
                    kp_realloc(acc->items, acc->cap * sizeof(*acc->items));
        }
        scan_item_t *it = &acc->items[acc->cnt++];
        it->key         = kp_malloc(klen + 1);
        memcpy(it->key, key, klen);
        it->key[klen] = '\0';
        it->klen      = klen;
        it->val       = kp_malloc(vlen + 1);
        memcpy(it->val, val, vlen);
        it->vlen      = vlen;
        it->partition = acc->partition;
        return acc->cnt - acc->from >= acc->limit;
}

static int item_cmp(const void *a, const void *b) {
        const scan_item_t *x = a, *y = b;
        size_t n = x->klen < y->klen ? x->klen : y->klen;
        int c    = memcmp(x->key, y->key, n);
        if (c)
                return c;
        return x->klen < y->klen ? -1 : x->klen > y->klen;
}

static void h_store_scan(kp_proc_t *proc, int s, const kp_http_req_t *req,
                         kp_http_resp_t *resp) {
        const char *after = kp_http_req_query(req, "after");
        const char *lim   = kp_http_req_query(req, "limit");
        int64_t limit     = 100;
        if (lim && (kp_parse_int64(lim, &limit) || limit < 1 || limit > 1000)) {
                kp_http_resp_error(resp, 400, "bad_request",
                                   "limit must be an integer from 1 to 1000");
                return;
        }
        /* Each partition contributes at most `limit` keys after `after`;
         * the merged first `limit` are the page. */
        scan_acc_t acc = {.limit = (size_t)limit};
        kp_err_t err   = KP_OK;
        pthread_rwlock_rdlock(&proc->tasks_lock);
        for (int32_t p = 0; p < proc->partition_cnt && !err; p++) {
                task_t *t = proc->tasks[p];
                if (!t || !t->ready)
                        continue;
                acc.partition = p;
                acc.from      = acc.cnt;
                err           = kp_store_scan_committed(t->stores[s], after,
                                              after ? strlen(after) : 0,
                                                        scan_collect, &acc);
        }
        pthread_rwlock_unlock(&proc->tasks_lock);
        if (!err) {
                qsort(acc.items, acc.cnt, sizeof(*acc.items), item_cmp);
                json_t *items = json_array();
                size_t n = acc.cnt < (size_t)limit ? acc.cnt : (size_t)limit;
                for (size_t i = 0; i < n; i++) {
                        json_t *o = json_object();
                        json_object_set_new(
                            o, "key",
                            key_json(acc.items[i].key, acc.items[i].klen));
                        json_object_set_new(
                            o, "partition",
                            json_integer(acc.items[i].partition));
                        set_value(o, acc.items[i].val, acc.items[i].vlen);
                        json_array_append_new(items, o);
                }
                json_t *next =
                    acc.cnt > (size_t)limit
                        ? key_json(acc.items[n - 1].key, acc.items[n - 1].klen)
                        : json_null();
                kp_http_resp_json(
                    resp, 200,
                    json_pack("{s:s, s:o, s:o}", "store", proc->def.stores[s],
                              "items", items, "next", next));
        } else {
                kp_http_resp_error(resp, 500, "store_error", "%s",
                                   kp_err2str(err));
        }
        for (size_t i = 0; i < acc.cnt; i++) {
                kp_free(acc.items[i].key);
                kp_free(acc.items[i].val);
        }
        kp_free(acc.items);
}

/* /v1/stores, /v1/stores/{store}, /v1/stores/{store}/keys/{key} */
static void h_stores(const kp_http_req_t *req, const char *rest,
                     kp_http_resp_t *resp, void *opaque) {
        kp_proc_t *proc = opaque;
        if (!strcmp(kp_http_req_path(req), "/v1/stores")) {
                h_store_list(proc, resp);
                return;
        }
        const char *slash = strchr(rest, '/');
        size_t nlen       = slash ? (size_t)(slash - rest) : strlen(rest);
        int s             = store_index(proc, rest, nlen);
        if (s < 0) {
                kp_http_resp_error(resp, 404, "unknown_store",
                                   "no store \"%.*s\" in service %s", (int)nlen,
                                   rest, proc->def.service);
                return;
        }
        if (!slash || !slash[1]) {
                h_store_scan(proc, s, req, resp);
                return;
        }
        if (strncmp(slash, "/keys/", 6)) {
                kp_http_resp_error(resp, 404, "not_found",
                                   "expected /v1/stores/{store}/keys/{key}");
                return;
        }
        h_store_key(proc, s, slash + 6, resp);
}

/* ------------------------------------------------------------------------
 * Consumer lag from librdkafka's statistics. */

static int stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque) {
        kp_proc_t *proc = opaque;
        (void)rk;
        json_error_t jerr;
        json_t *root = json_loadb(json, json_len, 0, &jerr);
        if (!root)
                return 0;
        json_t *topics = json_object_get(root, "topics");
        const char *tname;
        json_t *topic;
        json_object_foreach(topics, tname, topic) {
                const char *pname;
                json_t *part;
                json_object_foreach(json_object_get(topic, "partitions"), pname,
                                    part) {
                        json_t *lag = json_object_get(part, "consumer_lag");
                        if (!json_is_integer(lag) ||
                            json_integer_value(lag) < 0 || !strcmp(pname, "-1"))
                                continue;
                        char labels[600], esc[300];
                        snprintf(
                            labels, sizeof(labels),
                            "topic=\"%s\",partition=\"%s\"",
                            kp_metrics_escape_label(esc, sizeof(esc), tname),
                            pname);
                        kp_gauge_set(
                            kp_metrics_gauge(proc->metrics, "kpay_consumer_lag",
                                             "Records between the committed "
                                             "position and the end of an "
                                             "input partition.",
                                             labels),
                            (double)json_integer_value(lag));
                }
        }
        json_decref(root);
        return 0;
}

/* ------------------------------------------------------------------------
 * The loop. */

static void process_one(kp_proc_t *proc, rd_kafka_message_t *m) {
        const char *topic = rd_kafka_topic_name(m->rkt);
        int in            = input_index(proc, topic);
        task_t *t = (m->partition >= 0 && m->partition < proc->partition_cnt)
                        ? proc->tasks[m->partition]
                        : NULL;
        if (in < 0 || !t || !t->ready) {
                /* A late record of a partition just revoked: the next owner
                 * processes it from the committed offset. */
                KP_DEBUG("skipping %s [%d] @%" PRId64 ": not owned", topic,
                         (int)m->partition, m->offset);
                return;
        }
        if (txn_begin(proc))
                return;
        rd_kafka_headers_t *hdrs = NULL;
        if (rd_kafka_message_headers(m, &hdrs))
                hdrs = NULL;
        rd_kafka_timestamp_type_t tstype;
        kp_record_t rec = {
            .topic     = topic,
            .input     = in,
            .partition = m->partition,
            .offset    = m->offset,
            .timestamp = rd_kafka_message_timestamp(m, &tstype),
            .key       = m->key,
            .key_len   = m->key_len,
            .value     = m->payload,
            .value_len = m->len,
            .headers   = hdrs,
        };
        kp_ctx_t ctx = {
            .proc = proc, .task = t, .rec = &rec, .now_ms = kp_wall_ms()};
        kp_counter_add(proc->m_in, 1);
        kp_err_t err = proc->def.process(&ctx, &rec, proc->def.opaque);
        if (err == KP_ERR_STORE || err == KP_ERR_FATAL) {
                KP_ERROR("processing %s [%d] @%" PRId64
                         ": %s; exiting "
                         "without committing",
                         topic, (int)m->partition, m->offset, kp_err2str(err));
                proc->fatal = 1;
                return;
        }
        if (err && !proc->txn_must_abort) {
                kp_counter_add(proc->m_process_errors, 1);
                kp_ctx_dead_letter(&ctx, kp_err2name(err), kp_err2str(err));
        }
        t->in_next[in] = m->offset + 1;
        proc->txn_records++;
}

static void punctuate_all(kp_proc_t *proc) {
        int64_t now = kp_wall_ms();
        for (int32_t p = 0; p < proc->partition_cnt && !proc->fatal; p++) {
                task_t *t = proc->tasks[p];
                if (!t || !t->ready)
                        continue;
                kp_ctx_t ctx = {
                    .proc = proc, .task = t, .rec = NULL, .now_ms = now};
                proc->def.punctuate(&ctx, now, proc->def.opaque);
        }
}

static void update_store_gauges(kp_proc_t *proc) {
        for (int s = 0; s < proc->store_cnt; s++) {
                double keys = 0;
                for (int32_t p = 0; p < proc->partition_cnt; p++)
                        if (proc->tasks[p])
                                keys += (double)kp_store_estimate_keys(
                                    proc->tasks[p]->stores[s]);
                char labels[300], esc[200];
                snprintf(labels, sizeof(labels), "store=\"%s\"",
                         kp_metrics_escape_label(esc, sizeof(esc),
                                                 proc->def.stores[s]));
                kp_gauge_set(kp_metrics_gauge(proc->metrics, "kpay_store_keys",
                                              "Estimated keys in the local "
                                              "stores.",
                                              labels),
                             keys);
        }
        kp_gauge_set(
            kp_metrics_gauge(proc->metrics, "kpay_store_block_cache_bytes",
                             "Bytes in the shared RocksDB block "
                             "cache.",
                             NULL),
            (double)kp_store_env_cache_usage(proc->env));
}

/* Connects the clients, checks the topics and joins the group. */
static kp_err_t start(kp_proc_t *proc) {
        char errstr[512], buf[64];
        const kp_app_conf_t *c = proc->conf;
        rd_kafka_conf_t *conf;

        /* The transactional producer. */
        char cid[300];
        snprintf(cid, sizeof(cid), "kpay-%s-%s", proc->def.service,
                 c->instance_id);
        if (!(conf = kp_kafka_conf_new(c, NULL, cid, errstr, sizeof(errstr))))
                goto conf_fail;
        snprintf(buf, sizeof(buf), "%" PRId64,
                 proc->pconf.transaction_timeout_ms);
        char mto[64];
        snprintf(mto, sizeof(mto), "%" PRId64,
                 proc->pconf.transaction_timeout_ms - 500);
        if (kp_kafka_conf_set(conf, "transactional.id", proc->txn_id, errstr,
                              sizeof(errstr)) ||
            kp_kafka_conf_set(conf, "transaction.timeout.ms", buf, errstr,
                              sizeof(errstr)) ||
            kp_kafka_conf_set(conf, "message.timeout.ms", mto, errstr,
                              sizeof(errstr)) ||
            kp_kafka_conf_set(conf, "partitioner", "murmur2_random", errstr,
                              sizeof(errstr)) ||
            kp_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof(errstr))) {
                rd_kafka_conf_destroy(conf);
                goto conf_fail;
        }
        rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
        rd_kafka_conf_set_opaque(conf, proc);
        if (!(proc->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
                                            sizeof(errstr)))) {
                rd_kafka_conf_destroy(conf);
                goto conf_fail;
        }

        /* The announcer: idempotent, outside transactions. */
        if (!(conf = kp_kafka_conf_new(c, NULL, cid, errstr, sizeof(errstr))))
                goto conf_fail;
        if (kp_kafka_conf_set(conf, "enable.idempotence", "true", errstr,
                              sizeof(errstr))) {
                rd_kafka_conf_destroy(conf);
                goto conf_fail;
        }
        if (!(proc->announcer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
                                             sizeof(errstr)))) {
                rd_kafka_conf_destroy(conf);
                goto conf_fail;
        }

        /* The restorer: assign-only, read_committed. */
        if (!(conf = kp_kafka_conf_new(c, NULL, cid, errstr, sizeof(errstr))))
                goto conf_fail;
        /* librdkafka's assign() wants a group.id even though this consumer
         * never joins a group nor commits. */
        char rgroup[600];
        snprintf(rgroup, sizeof(rgroup), "%s-restore", proc->txn_id);
        if (kp_kafka_conf_set(conf, "group.id", rgroup, errstr,
                              sizeof(errstr)) ||
            kp_kafka_conf_set(conf, "isolation.level", "read_committed", errstr,
                              sizeof(errstr)) ||
            kp_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
                              sizeof(errstr)) ||
            kp_kafka_conf_set(conf, "enable.partition.eof", "false", errstr,
                              sizeof(errstr)) ||
            /* A start offset that vanished must never silently become
             * "the end": that would skip records. */
            kp_kafka_conf_set(conf, "auto.offset.reset", "error", errstr,
                              sizeof(errstr))) {
                rd_kafka_conf_destroy(conf);
                goto conf_fail;
        }
        if (!(proc->restorer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr,
                                            sizeof(errstr)))) {
                rd_kafka_conf_destroy(conf);
                goto conf_fail;
        }

        /* The input topics must exist and be co-partitioned. */
        if (kp_kafka_wait_ready(proc->producer, 60000)) {
                KP_ERROR("no Kafka broker answered at %s within 60 s",
                         c->bootstrap_servers);
                return KP_ERR_TIMED_OUT;
        }
        const struct rd_kafka_metadata *md;
        rd_kafka_resp_err_t err =
            rd_kafka_metadata(proc->producer, 1, NULL, &md, 30000);
        if (err) {
                KP_ERROR("listing topics: %s", rd_kafka_err2str(err));
                return KP_ERR_KAFKA;
        }
        int32_t partition_cnt = -1;
        for (int i = 0; i < proc->input_cnt; i++) {
                int n = -1;
                for (int t = 0; t < md->topic_cnt; t++)
                        if (!strcmp(md->topics[t].topic, proc->inputs[i]) &&
                            !md->topics[t].err)
                                n = md->topics[t].partition_cnt;
                if (n < 0) {
                        KP_ERROR(
                            "input topic %s does not exist (create the "
                            "topics with `kpay-admin topics` or "
                            "`./kpay topics`)",
                            proc->inputs[i]);
                        rd_kafka_metadata_destroy(md);
                        return KP_ERR_CONFIG;
                }
                if (partition_cnt >= 0 && n != partition_cnt) {
                        KP_ERROR(
                            "input topics %s and %s have %d and %d "
                            "partitions: they must be co-partitioned",
                            proc->inputs[0], proc->inputs[i],
                            (int)partition_cnt, n);
                        rd_kafka_metadata_destroy(md);
                        return KP_ERR_CONFIG;
                }
                partition_cnt = n;
        }
        rd_kafka_metadata_destroy(md);
        if (partition_cnt != proc->conf->partitions)
                KP_WARN(
                    "the input topics have %d partitions, --partitions "
                    "says %d: using %d (the changelogs follow the inputs)",
                    (int)partition_cnt, (int)proc->conf->partitions,
                    (int)partition_cnt);
        /* HTTP threads may already be asking: publish both at once. */
        task_t **tasks = kp_calloc((size_t)partition_cnt, sizeof(*tasks));
        pthread_rwlock_wrlock(&proc->tasks_lock);
        proc->tasks         = tasks;
        proc->partition_cnt = partition_cnt;
        pthread_rwlock_unlock(&proc->tasks_lock);

        /* Changelogs, and the topics the runtime itself writes. */
        kp_topic_plan_t plan = {0};
        for (int s = 0; s < proc->store_cnt; s++)
                kp_topic_plan_add(&plan, proc->changelogs[s],
                                  proc->partition_cnt,
                                  (int)c->replication_factor, "compact", NULL);
        kp_err_t kerr = kp_admin_ensure_topics(proc->producer, &plan, 30000,
                                               NULL, errstr, sizeof(errstr));
        kp_topic_plan_clear(&plan);
        if (kerr) {
                KP_ERROR("changelog topics: %s", errstr);
                return kerr;
        }

        rd_kafka_error_t *error;
        while ((error = rd_kafka_init_transactions(proc->producer, 60000))) {
                int retry = rd_kafka_error_is_retriable(error);
                KP_ERROR("init_transactions: %s%s",
                         rd_kafka_error_string(error),
                         retry ? "; retrying" : "");
                rd_kafka_error_destroy(error);
                if (!retry || !kp_app_running())
                        return KP_ERR_KAFKA;
        }

        /* The consumer. */
        if (!(conf = kp_kafka_conf_new(c, NULL, cid, errstr, sizeof(errstr))))
                goto conf_fail;
        /* Cooperative-sticky keeps partitions in place during a rebalance,
         * but it does not co-partition several topics: with more than one
         * input, partition p of every input must go to the same instance,
         * which the range assignor guarantees (docs/runtime.md). */
        const char *assignor =
            proc->input_cnt > 1 ? "range" : "cooperative-sticky";
        if (kp_kafka_conf_set(conf, "group.id", proc->group_id, errstr,
                              sizeof(errstr)) ||
            kp_kafka_conf_set(conf, "isolation.level", "read_committed", errstr,
                              sizeof(errstr)) ||
            kp_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
                              sizeof(errstr)) ||
            kp_kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr,
                              sizeof(errstr)) ||
            kp_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr,
                              sizeof(errstr)) ||
            kp_kafka_conf_set(conf, "partition.assignment.strategy", assignor,
                              errstr, sizeof(errstr)) ||
            kp_kafka_conf_set(conf, "session.timeout.ms", "10000", errstr,
                              sizeof(errstr)) ||
            kp_kafka_conf_set(conf, "heartbeat.interval.ms", "1000", errstr,
                              sizeof(errstr)) ||
            kp_kafka_conf_set(conf, "statistics.interval.ms", "5000", errstr,
                              sizeof(errstr)) ||
            (proc->pconf.static_membership &&
             kp_kafka_conf_set(conf, "group.instance.id", c->instance_id,
                               errstr, sizeof(errstr)))) {
                rd_kafka_conf_destroy(conf);
                goto conf_fail;
        }
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
        rd_kafka_conf_set_stats_cb(conf, stats_cb);
        rd_kafka_conf_set_opaque(conf, proc);
        if (!(proc->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr,
                                            sizeof(errstr)))) {
                rd_kafka_conf_destroy(conf);
                goto conf_fail;
        }
        rd_kafka_poll_set_consumer(proc->consumer);
        rd_kafka_topic_partition_list_t *subs =
            rd_kafka_topic_partition_list_new(proc->input_cnt);
        for (int i = 0; i < proc->input_cnt; i++)
                rd_kafka_topic_partition_list_add(subs, proc->inputs[i],
                                                  RD_KAFKA_PARTITION_UA);
        err = rd_kafka_subscribe(proc->consumer, subs);
        rd_kafka_topic_partition_list_destroy(subs);
        if (err) {
                KP_ERROR("subscribing: %s", rd_kafka_err2str(err));
                return KP_ERR_KAFKA;
        }
        KP_INFO(
            "started: group %s, transactional.id %s, %d partitions, "
            "%s assignment, HTTP on %s",
            proc->group_id, proc->txn_id, (int)proc->partition_cnt, assignor,
            proc->endpoint);
        return KP_OK;

conf_fail:
        KP_ERROR("Kafka client: %s", errstr);
        return KP_ERR_CONFIG;
}

int kp_proc_run(kp_proc_t *proc) {
        char errstr[512];
        kp_err_t err = kp_http_start(proc->http, errstr, sizeof(errstr));
        if (err) {
                KP_ERROR("HTTP server on %s: %s", proc->conf->listen, errstr);
                return 1;
        }
        if (!proc->endpoint) {
                /* --listen's host with the port actually bound. */
                const char *colon = strrchr(proc->conf->listen, ':');
                int hlen = colon ? (int)(colon - proc->conf->listen) : 0;
                const char *host = proc->conf->listen;
                if (hlen == 0 || (hlen == 7 && !strncmp(host, "0.0.0.0", 7))) {
                        host = "127.0.0.1";
                        hlen = 9;
                }
                proc->endpoint = kp_asprintf("%.*s:%d", hlen, host,
                                             kp_http_port(proc->http));
        }
        if ((err = start(proc)))
                return kp_app_running() ? 1 : 0;

        int64_t now             = kp_mono_ms();
        proc->next_heartbeat_ms = now;
        proc->next_punctuate_ms = now + proc->def.punctuate_interval_ms;
        announce(proc, "STARTING", 0);

        while (kp_app_running() && !proc->fatal) {
                int64_t wait = 100;
                if (proc->txn_open) {
                        int64_t due = proc->txn_started_ms +
                                      proc->conf->commit_interval_ms - now;
                        wait = due < 0 ? 0 : due < wait ? due : wait;
                }
                rd_kafka_message_t *m =
                    rd_kafka_consumer_poll(proc->consumer, (int)wait);
                if (m) {
                        if (m->err) {
                                if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                                        KP_ERROR("consumer: fatal: %s",
                                                 rd_kafka_message_errstr(m));
                                        proc->fatal = 1;
                                } else if (m->err !=
                                           RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                                        KP_WARN("consumer: %s",
                                                rd_kafka_message_errstr(m));
                                }
                        } else if (!proc->fatal) {
                                process_one(proc, m);
                        }
                        rd_kafka_message_destroy(m);
                }
                if (proc->fatal)
                        break;
                rd_kafka_poll(proc->producer, 0);
                rd_kafka_poll(proc->announcer, 0);
                now = kp_mono_ms();
                if (proc->txn_open &&
                    (proc->txn_must_abort ||
                     proc->txn_records >= proc->pconf.commit_max_records ||
                     now - proc->txn_started_ms >=
                         proc->conf->commit_interval_ms))
                        txn_commit(proc);
                if (proc->def.punctuate && now >= proc->next_punctuate_ms) {
                        punctuate_all(proc);
                        proc->next_punctuate_ms =
                            now + proc->def.punctuate_interval_ms;
                }
                if (proc->assignment_changed ||
                    now >= proc->next_heartbeat_ms) {
                        announce(proc, "RUNNING", 0);
                        update_store_gauges(proc);
                        proc->assignment_changed = 0;
                        proc->next_heartbeat_ms =
                            now + proc->pconf.heartbeat_ms;
                }
        }

        int rc = proc->fatal ? 1 : 0;
        if (!proc->fatal) {
                /* Clean shutdown: finish the transaction, say goodbye, leave
                 * the group (its revoke callback closes the stores). */
                KP_INFO("shutting down");
                if (txn_commit(proc) == KP_ERR_FATAL)
                        rc = 1;
                announce(proc, "STOPPING", 1);
                rd_kafka_resp_err_t ferr =
                    rd_kafka_flush(proc->announcer, 5000);
                if (ferr)
                        KP_WARN("flushing the metadata tombstone: %s",
                                rd_kafka_err2str(ferr));
        } else if (proc->txn_open) {
                /* Nothing of the failed transaction may commit, not even
                 * through the revoke that closing the consumer triggers. */
                if (!rd_kafka_fatal_error(proc->producer, NULL, 0))
                        txn_abort(proc);
                else
                        drop_uncommitted(proc);
        }
        rd_kafka_resp_err_t cerr = rd_kafka_consumer_close(proc->consumer);
        if (cerr && !proc->fatal)
                KP_WARN("closing the consumer: %s", rd_kafka_err2str(cerr));
        if (proc->txn_open)
                drop_uncommitted(proc);
        close_tasks(proc, NULL);
        KP_INFO("stopped (exit status %d)", rc);
        return rc;
}

kp_proc_t *kp_proc_new(kp_app_t *app, const kp_proc_conf_t *pconf,
                       const kp_proc_def_t *def, char *errstr,
                       size_t errstr_size) {
        const kp_app_conf_t *c = kp_app_conf(app);
        if (!def->inputs || !def->inputs[0] || !def->process || !def->service ||
            (def->punctuate && def->punctuate_interval_ms <= 0)) {
                snprintf(errstr, errstr_size,
                         "a processor needs a service, inputs and process(), "
                         "and a positive punctuate interval with punctuate()");
                return NULL;
        }
        if (!c->state_dir || !c->instance_id || !c->listen) {
                snprintf(errstr, errstr_size,
                         "a processor needs --state-dir, --instance-id and "
                         "--listen");
                return NULL;
        }
        kp_proc_t *proc = kp_calloc(1, sizeof(*proc));
        proc->app       = app;
        proc->conf      = c;
        proc->pconf     = *pconf;
        proc->def       = *def;
        proc->prefix    = kp_strdup(c->topic_prefix ? c->topic_prefix : "");
        while (def->inputs[proc->input_cnt])
                proc->input_cnt++;
        while (def->stores && def->stores[proc->store_cnt])
                proc->store_cnt++;
        static const char *const no_stores[] = {NULL};
        if (!def->stores)
                proc->def.stores = no_stores;
        proc->inputs = kp_calloc((size_t)proc->input_cnt, sizeof(char *));
        for (int i = 0; i < proc->input_cnt; i++)
                proc->inputs[i] =
                    kp_asprintf("%s%s", proc->prefix, def->inputs[i]);
        proc->changelogs =
            kp_calloc((size_t)proc->store_cnt + 1, sizeof(char *));
        for (int s = 0; s < proc->store_cnt; s++) {
                char name[256];
                kp_changelog_name(name, sizeof(name), proc->prefix,
                                  def->service, def->stores[s]);
                proc->changelogs[s] = kp_strdup(name);
        }
        kp_topic_name(proc->dlq_topic, sizeof(proc->dlq_topic), proc->prefix,
                      KP_TOPIC_DLQ);
        kp_topic_name(proc->metadata_topic, sizeof(proc->metadata_topic),
                      proc->prefix, KP_TOPIC_METADATA);
        proc->group_id = kp_asprintf("%skpay-%s", proc->prefix, def->service);
        proc->txn_id   = kp_asprintf("%skpay-%s-%s", proc->prefix, def->service,
                                     c->instance_id);
        if (c->advertise && *c->advertise)
                proc->endpoint = kp_strdup(c->advertise);
        /* Writers (rebalances) must not starve behind a stream of queries. */
        pthread_rwlockattr_t rwattr;
        pthread_rwlockattr_init(&rwattr);
        pthread_rwlockattr_setkind_np(
            &rwattr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&proc->tasks_lock, &rwattr);
        pthread_rwlockattr_destroy(&rwattr);

        proc->env  = kp_store_env_new((size_t)pconf->block_cache_mb << 20,
                                      (size_t)pconf->write_buffer_mb << 20);
        proc->http = kp_http_new(c->listen, (int)pconf->http_threads, errstr,
                                 errstr_size);
        if (!proc->http) {
                kp_proc_destroy(proc);
                return NULL;
        }
        kp_http_route(proc->http, "GET", "/healthz", h_healthz, proc);
        kp_http_route(proc->http, "GET", "/readyz", h_readyz, proc);
        kp_http_route(proc->http, "GET", "/metrics", h_metrics, proc);
        kp_http_route(proc->http, "GET", "/v1/stores", h_stores, proc);
        kp_http_route(proc->http, "GET", "/v1/stores/", h_stores, proc);

        kp_metrics_t *m = proc->metrics = kp_metrics_new();
        proc->m_in  = kp_metrics_counter(m, "kpay_records_in_total",
                                         "Input records processed.", NULL);
        proc->m_out = kp_metrics_counter(
            m, "kpay_records_out_total",
            "Records produced (outputs, changelogs, dead letters).", NULL);
        proc->m_dlq =
            kp_metrics_counter(m, "kpay_records_dead_lettered_total",
                               "Input records sent to kpay.dlq.", NULL);
        proc->m_process_errors = kp_metrics_counter(
            m, "kpay_process_errors_total",
            "Records whose processing failed (and were dead-lettered).", NULL);
        proc->m_changelog = kp_metrics_counter(
            m, "kpay_changelog_records_total",
            "Changelog records written (one per key and transaction).", NULL);
        proc->m_committed =
            kp_metrics_counter(m, "kpay_transactions_committed_total",
                               "Kafka transactions committed.", NULL);
        proc->m_aborted =
            kp_metrics_counter(m, "kpay_transactions_aborted_total",
                               "Kafka transactions aborted.", NULL);
        static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,  0.1,    0.25,  0.5,  1,
                                        2.5,   5,      10};
        proc->m_commit_latency       = kp_metrics_histogram(
                  m, "kpay_commit_latency_seconds",
                  "Time to commit a transaction (offsets, outputs, stores).", NULL,
                  bounds, sizeof(bounds) / sizeof(bounds[0]));
        proc->m_restored = kp_metrics_counter(
            m, "kpay_restore_records_total",
            "Changelog records replayed into local stores.", NULL);
        proc->m_restore_remaining =
            kp_metrics_gauge(m, "kpay_restore_remaining_records",
                             "Changelog records left to replay.", NULL);
        proc->m_restoring = kp_metrics_gauge(
            m, "kpay_restoring", "1 while stores are being restored.", NULL);
        proc->m_partitions =
            kp_metrics_gauge(m, "kpay_assigned_partitions",
                             "Partitions this instance owns.", NULL);
        return proc;
}

kp_metrics_t *kp_proc_metrics(kp_proc_t *proc) {
        return proc->metrics;
}

void kp_proc_destroy(kp_proc_t *proc) {
        if (!proc)
                return;
        kp_http_destroy(proc->http);
        if (proc->tasks)
                close_tasks(proc, NULL);
        if (proc->consumer)
                rd_kafka_destroy(proc->consumer);
        if (proc->producer)
                rd_kafka_destroy(proc->producer);
        if (proc->announcer)
                rd_kafka_destroy(proc->announcer);
        if (proc->restorer) {
                rd_kafka_consumer_close(proc->restorer);
                rd_kafka_destroy(proc->restorer);
        }
        kp_store_env_destroy(proc->env);
        kp_metrics_destroy(proc->metrics);
        for (int i = 0; i < proc->input_cnt; i++)
                kp_free(proc->inputs[i]);
        kp_free(proc->inputs);
        for (int s = 0; s < proc->store_cnt; s++)
                kp_free(proc->changelogs[s]);
        kp_free(proc->changelogs);
        kp_free(proc->tasks);
        kp_free(proc->prefix);
        kp_free(proc->group_id);
        kp_free(proc->txn_id);
        kp_free(proc->endpoint);
        pthread_rwlock_destroy(&proc->tasks_lock);
        kp_free(proc);
}
